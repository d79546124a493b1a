package main

import (
	"encoding/json"
	"os"

	specs "github.com/opencontainers/runtime-spec/specs-go"
	"github.com/spf13/cobra"

	"github.com/godwit-dev/godwit/container/runtime"
	"github.com/godwit-dev/godwit/fault"
)

func init() {
	register(func() *cobra.Command {
		var cwd, processFile string
		var env []string
		cmd := &cobra.Command{
			Use:   "exec ID [COMMAND [ARG...]]",
			Short: "run a process inside a running container",
			Args:  cobra.MinimumNArgs(1),
			RunE: func(cmd *cobra.Command, args []string) error {
				p := &specs.Process{Args: args[1:], Cwd: cwd, Env: env}
				if processFile != "" {
					b, err := os.ReadFile(processFile)
					if err != nil {
						return &fault.Error{Code: fault.CodeIO, Op: "read process file", Path: processFile, Err: err}
					}
					p = new(specs.Process)
					if err := json.Unmarshal(b, p); err != nil {
						return &fault.Error{Code: fault.CodeInvalidArgument, Op: "parse process file", Path: processFile, Err: err}
					}
				}
				code, err := runtime.Exec(global.root, args[0], runtime.ExecOptions{Process: p})
				if err != nil {
					return err
				}
				if code != 0 {
					return exitError(code)
				}
				return nil
			},
		}
		cmd.Flags().SetInterspersed(false)
		cmd.Flags().StringVar(&cwd, "cwd", "/", "working directory inside the container")
		cmd.Flags().StringArrayVarP(&env, "env", "e", nil, "environment variable KEY=VALUE (default: the container's)")
		cmd.Flags().StringVarP(&processFile, "process", "p", "", "an OCI process JSON file")
		return cmd
	})
}
