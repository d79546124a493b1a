package main

import (
	"github.com/spf13/cobra"

	"github.com/godwit-dev/godwit/container/runtime"
)

func init() {
	register(func() *cobra.Command {
		return &cobra.Command{
			Use:   "start ID",
			Short: "start the process of a created container",
			Args:  cobra.ExactArgs(1),
			RunE: func(cmd *cobra.Command, args []string) error {
				return runtime.Start(global.root, args[0])
			},
		}
	})
}
