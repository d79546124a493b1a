package main

import (
	"context"
	"fmt"
	"io"
	"os"
	"strconv"

	"github.com/spf13/cobra"

	"github.com/godwit-dev/godwit/checkpoint"
	"github.com/godwit-dev/godwit/fault"
)

func init() { register(newDumpCommand) }

func newDumpCommand() *cobra.Command {
	var opts checkpoint.Options
	var imagePath string
	var verbose, tcpEstablished, tcpClose bool
	cmd := &cobra.Command{
		Use:   "dump [--leave-running] --image FILE PID",
		Short: "checkpoint a running process into an image (FILE may be - for stdout)",
		Args:  cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			pid, err := strconv.Atoi(args[0])
			if err != nil || pid <= 0 {
				return &fault.Error{Code: fault.CodeInvalidArgument, Op: "dump", Msg: fmt.Sprintf("%q is not a pid", args[0])}
			}
			switch {
			case tcpEstablished && tcpClose:
				return &fault.Error{Code: fault.CodeInvalidArgument, Op: "dump", Msg: "--tcp-established and --tcp-close exclude each other"}
			case tcpEstablished:
				opts.TCP = checkpoint.TCPEstablished
			case tcpClose:
				opts.TCP = checkpoint.TCPClose
			}
			if imagePath == "" {
				return &fault.Error{Code: fault.CodeInvalidArgument, Op: "dump", Msg: "--image is required"}
			}
			var w io.Writer = os.Stdout
			var f *os.File
			if imagePath != "-" {
				f, err = os.OpenFile(imagePath, os.O_WRONLY|os.O_CREATE|os.O_TRUNC, 0o600)
				if err != nil {
					return &fault.Error{Code: fault.CodeIO, Op: "dump", Path: imagePath, Msg: "create image", Err: err}
				}
				w = f
			}
			st, err := checkpoint.Dump(context.Background(), pid, w, opts)
			if f != nil {
				if cerr := f.Close(); err == nil && cerr != nil {
					err = &fault.Error{Code: fault.CodeIO, Op: "dump", Path: imagePath, Msg: "close image", Err: cerr}
				}
				if err != nil {
					os.Remove(imagePath)
				}
			}
			if err != nil {
				return err
			}
			if verbose {
				fmt.Fprintf(os.Stderr, "dumped pid %d: frozen %v, %d pages (%d zero), %d bytes, total %v\n",
					pid, st.FrozenTime, st.Pages, st.ZeroPages, st.ImageBytes, st.TotalTime)
			}
			return nil
		},
	}
	cmd.Flags().BoolVar(&opts.LeaveRunning, "leave-running", false, "resume the process after the dump instead of killing it")
	cmd.Flags().BoolVar(&opts.ShellJob, "shell-job", false, "dump the tree's terminal (/dev/pts/N) descriptors for a restore --shell-job onto another terminal")
	cmd.Flags().BoolVar(&tcpEstablished, "tcp-established", false, "dump established TCP connections with TCP_REPAIR (restore where the same addresses are)")
	cmd.Flags().BoolVar(&tcpClose, "tcp-close", false, "dump established TCP connections to be restored closed (the application reconnects)")
	cmd.Flags().StringVar(&imagePath, "image", "", "image file to write, - for stdout")
	cmd.Flags().BoolVarP(&verbose, "verbose", "v", false, "print statistics on stderr")
	return cmd
}
