package main

import (
	"github.com/spf13/cobra"

	"github.com/godwit-dev/godwit/container/runtime"
)

func init() {
	register(func() *cobra.Command {
		var force bool
		cmd := &cobra.Command{
			Use:   "delete ID",
			Short: "delete a container and everything it left",
			Args:  cobra.ExactArgs(1),
			RunE: func(cmd *cobra.Command, args []string) error {
				return runtime.Delete(global.root, args[0], force)
			},
		}
		cmd.Flags().BoolVarP(&force, "force", "f", false, "kill a running container first")
		return cmd
	})
}
