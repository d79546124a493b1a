package main

import (
	"github.com/spf13/cobra"

	"github.com/godwit-dev/godwit/container/runtime"
)

func init() {
	register(func() *cobra.Command {
		var o runtime.MountOptions
		cmd := &cobra.Command{
			Use:   "mount ID SRC DST",
			Short: "make host path SRC appear at DST inside a running container",
			Args:  cobra.ExactArgs(3),
			RunE: func(cmd *cobra.Command, args []string) error {
				o.Source, o.Dest = args[1], args[2]
				return runtime.Mount(global.root, args[0], o)
			},
		}
		cmd.Flags().BoolVar(&o.IDMap, "idmap", false, "id-map the mount so SRC's owner appears as the container's root")
		cmd.Flags().BoolVar(&o.ReadOnly, "ro", false, "read-only")
		return cmd
	})
}
