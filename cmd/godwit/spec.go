package main

import (
	"encoding/json"
	"os"
	"path/filepath"

	"github.com/spf13/cobra"

	"github.com/godwit-dev/godwit/container/spec"
	"github.com/godwit-dev/godwit/fault"
)

func init() {
	register(func() *cobra.Command {
		var rootless bool
		var bundle string
		cmd := &cobra.Command{
			Use:   "spec",
			Short: "write a default config.json into the bundle directory",
			Args:  cobra.NoArgs,
			RunE: func(cmd *cobra.Command, args []string) error {
				s := spec.Default(spec.Options{Rootless: rootless, UID: uint32(os.Geteuid()), GID: uint32(os.Getegid())})
				b, err := json.MarshalIndent(s, "", "\t")
				if err != nil {
					return err
				}
				p := filepath.Join(bundle, "config.json")
				f, err := os.OpenFile(p, os.O_WRONLY|os.O_CREATE|os.O_EXCL, 0o644)
				if err != nil {
					return &fault.Error{Code: fault.CodeIO, Op: "write spec", Path: p, Err: err}
				}
				defer f.Close()
				_, err = f.Write(append(b, '\n'))
				return err
			},
		}
		cmd.Flags().BoolVar(&rootless, "rootless", false, "map the caller's ids to root (for unprivileged use)")
		cmd.Flags().StringVarP(&bundle, "bundle", "b", ".", "bundle directory")
		return cmd
	})
}
