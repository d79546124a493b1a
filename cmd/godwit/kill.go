package main

import (
	"strconv"
	"strings"

	"github.com/spf13/cobra"
	"golang.org/x/sys/unix"

	"github.com/godwit-dev/godwit/container/runtime"
	"github.com/godwit-dev/godwit/fault"
)

func init() {
	register(func() *cobra.Command {
		var all bool
		cmd := &cobra.Command{
			Use:   "kill ID [SIGNAL]",
			Short: "send a signal (default SIGTERM) to a container",
			Args:  cobra.RangeArgs(1, 2),
			RunE: func(cmd *cobra.Command, args []string) error {
				sig := unix.SIGTERM
				if len(args) == 2 {
					s, err := parseSignal(args[1])
					if err != nil {
						return err
					}
					sig = s
				}
				return runtime.Kill(global.root, args[0], sig, all)
			},
		}
		cmd.Flags().BoolVarP(&all, "all", "a", false, "kill every process of the container")
		return cmd
	})
}

func parseSignal(s string) (unix.Signal, error) {
	if n, err := strconv.Atoi(s); err == nil && n > 0 && n < 65 {
		return unix.Signal(n), nil
	}
	name := strings.ToUpper(s)
	if !strings.HasPrefix(name, "SIG") {
		name = "SIG" + name
	}
	if sig := unix.SignalNum(name); sig != 0 {
		return sig, nil
	}
	return 0, &fault.Error{Code: fault.CodeInvalidArgument, Op: "kill", Msg: "unknown signal " + s}
}
