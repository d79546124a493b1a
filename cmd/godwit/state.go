package main

import (
	"encoding/json"
	"os"

	"github.com/spf13/cobra"

	"github.com/godwit-dev/godwit/container/runtime"
)

func init() {
	register(func() *cobra.Command {
		return &cobra.Command{
			Use:   "state ID",
			Short: "print a container's state as JSON (runc-compatible)",
			Args:  cobra.ExactArgs(1),
			RunE: func(cmd *cobra.Command, args []string) error {
				st, err := runtime.Load(global.root, args[0])
				if err != nil {
					return err
				}
				enc := json.NewEncoder(os.Stdout)
				enc.SetIndent("", "  ")
				return enc.Encode(st.Public())
			},
		}
	})
}
