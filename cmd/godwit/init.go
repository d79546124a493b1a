package main

import (
	"github.com/spf13/cobra"

	"github.com/godwit-dev/godwit/container/runtime"
)

// init registers the hidden verb under which godwit re-executes itself as a
// container's shim, init or exec stage (Go cannot fork without exec).
func init() {
	register(func() *cobra.Command {
		return &cobra.Command{
			Use:                runtime.InitVerb + " ROLE",
			Short:              "internal: container shim, init and exec stage",
			Hidden:             true,
			Args:               cobra.ExactArgs(1),
			DisableFlagParsing: true,
			RunE: func(cmd *cobra.Command, args []string) error {
				return runtime.Main(args)
			},
		}
	})
}
