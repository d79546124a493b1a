package main

import (
	"github.com/spf13/cobra"

	"github.com/godwit-dev/godwit/container/runtime"
)

func init() {
	register(func() *cobra.Command {
		var o runtime.CreateOptions
		cmd := &cobra.Command{
			Use:   "create ID",
			Short: "create a container from an OCI bundle; its process waits for start",
			Args:  cobra.ExactArgs(1),
			RunE: func(cmd *cobra.Command, args []string) error {
				o.Root, o.ID = global.root, args[0]
				_, err := runtime.Create(o)
				return err
			},
		}
		cmd.Flags().StringVarP(&o.Bundle, "bundle", "b", ".", "bundle directory")
		cmd.Flags().StringVar(&o.PidFile, "pid-file", "", "write the init's pid here")
		return cmd
	})
}
