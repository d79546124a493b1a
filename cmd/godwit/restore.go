package main

import (
	"context"
	"fmt"
	"io"
	"os"

	"github.com/spf13/cobra"

	"github.com/godwit-dev/godwit/fault"
	"github.com/godwit-dev/godwit/restore"
)

func init() { register(newRestoreCommand) }

func newRestoreCommand() *cobra.Command {
	var opts restore.Options
	var imagePath string
	var verbose bool
	cmd := &cobra.Command{
		Use:   "restore --image FILE",
		Short: "recreate a process from an image (FILE may be - for stdin) and print its PID",
		Args:  cobra.NoArgs,
		RunE: func(cmd *cobra.Command, args []string) error {
			if imagePath == "" {
				return &fault.Error{Code: fault.CodeInvalidArgument, Op: "restore", Msg: "--image is required"}
			}
			var r io.Reader = os.Stdin
			if imagePath != "-" {
				f, err := os.Open(imagePath)
				if err != nil {
					return &fault.Error{Code: fault.CodeIO, Op: "restore", Path: imagePath, Msg: "open image", Err: err}
				}
				defer f.Close()
				r = f
			}
			res, err := restore.Restore(context.Background(), r, opts)
			if err != nil {
				return err
			}
			for _, w := range res.Warnings {
				fmt.Fprintf(os.Stderr, "godwit: warning: %s\n", w)
			}
			if verbose {
				fmt.Fprintf(os.Stderr, "restored pid %d in %v\n", res.PID, res.Duration)
			}
			fmt.Println(res.PID)
			return nil
		},
	}
	cmd.Flags().StringVar(&imagePath, "image", "", "image file to read, - for stdin")
	cmd.Flags().BoolVar(&opts.UserNS, "userns", os.Geteuid() != 0, "restore into a new user and PID namespace (the default when not root)")
	cmd.Flags().BoolVar(&opts.ShellJob, "shell-job", false, "attach the terminal of an image dumped with --shell-job to this terminal (stdin, else /dev/tty)")
	cmd.Flags().DurationVar(&opts.PIDWait, "pid-wait", 0, "how long to wait for a zombie holding a PID of the image (default 5s)")
	cmd.Flags().BoolVarP(&verbose, "verbose", "v", false, "print statistics on stderr")
	return cmd
}
