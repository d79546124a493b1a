package main

import (
	"github.com/spf13/cobra"

	"github.com/godwit-dev/godwit/container/runtime"
)

func init() {
	register(func() *cobra.Command {
		var o runtime.CreateOptions
		var detach bool
		cmd := &cobra.Command{
			Use:   "run ID",
			Short: "create and start a container, wait for it and delete it",
			Args:  cobra.ExactArgs(1),
			RunE: func(cmd *cobra.Command, args []string) error {
				o.Root, o.ID = global.root, args[0]
				if detach {
					if _, err := runtime.Create(o); err != nil {
						return err
					}
					return runtime.Start(o.Root, o.ID)
				}
				code, err := runtime.Run(o)
				if err != nil {
					return err
				}
				if code != 0 {
					return exitError(code)
				}
				return nil
			},
		}
		cmd.Flags().StringVarP(&o.Bundle, "bundle", "b", ".", "bundle directory")
		cmd.Flags().StringVar(&o.PidFile, "pid-file", "", "write the init's pid here")
		cmd.Flags().BoolVarP(&detach, "detach", "d", false, "do not wait for the container")
		return cmd
	})
}
