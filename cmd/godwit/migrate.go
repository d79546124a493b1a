package main

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"os/signal"
	"strconv"
	"strings"
	"syscall"
	"time"

	"github.com/spf13/cobra"
	"golang.org/x/sys/unix"

	"github.com/godwit-dev/godwit/fault"
	"github.com/godwit-dev/godwit/migrate"
	"github.com/godwit-dev/godwit/transport"
)

func init() { register(newMigrateCommand) }

// tlsFlags are the certificate flags of serve and migrate.
type tlsFlags struct{ cert, key, ca string }

func (f *tlsFlags) add(cmd *cobra.Command) {
	cmd.Flags().StringVar(&f.cert, "cert", "", "this host's certificate (PEM)")
	cmd.Flags().StringVar(&f.key, "key", "", "its private key (PEM)")
	cmd.Flags().StringVar(&f.ca, "ca", "", "the CA that signs the other side's certificate (PEM)")
}

func (f *tlsFlags) check(op string) error {
	if f.cert == "" || f.key == "" || f.ca == "" {
		return &fault.Error{Code: fault.CodeInvalidArgument, Op: op, Msg: "--cert, --key and --ca are required",
			Remedy: "make a test set with: godwit certs --dir DIR"}
	}
	return nil
}

func newMigrateCommand() *cobra.Command {
	var tf tlsFlags
	var to, precopy, serverName string
	var opts migrate.Options
	var tcpEstablished, tcpClose, asJSON, postcopy bool
	cmd := &cobra.Command{
		Use:   "migrate PID --to HOST:PORT --cert C --key K --ca CA",
		Short: "move a running process tree to the host where godwit serve runs",
		Args:  cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			pid, err := strconv.Atoi(args[0])
			if err != nil || pid <= 0 {
				return &fault.Error{Code: fault.CodeInvalidArgument, Op: "migrate", Msg: fmt.Sprintf("%q is not a pid", args[0])}
			}
			if to == "" {
				return &fault.Error{Code: fault.CodeInvalidArgument, Op: "migrate", Msg: "--to is required"}
			}
			if postcopy {
				opts.Postcopy = true
				// --postcopy alone is post-copy; with --precopy, the hybrid.
				if !cmd.Flags().Changed("precopy") {
					precopy = "off"
				}
			}
			if err := tf.check("migrate"); err != nil {
				return err
			}
			switch precopy {
			case "auto":
				opts.Precopy = migrate.PrecopyAuto
			case "off":
				opts.Precopy = migrate.PrecopyOff
			default:
				n, err := strconv.Atoi(precopy)
				if err != nil || n < 1 || n > 100 {
					return &fault.Error{Code: fault.CodeInvalidArgument, Op: "migrate", Msg: "--precopy is auto, off or a number of rounds (1-100)"}
				}
				opts.Precopy = n
			}
			switch {
			case tcpEstablished && tcpClose:
				return &fault.Error{Code: fault.CodeInvalidArgument, Op: "migrate", Msg: "--tcp-established and --tcp-close exclude each other"}
			case tcpEstablished:
				opts.TCP = "established"
			case tcpClose:
				opts.TCP = "close"
			}
			cfg, err := transport.ClientConfig(tf.cert, tf.key, tf.ca, serverName)
			if err != nil {
				return err
			}
			ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
			defer stop()
			sess, err := transport.Dial(ctx, to, cfg)
			if err != nil {
				if asJSON {
					json.NewEncoder(os.Stdout).Encode(struct {
						PID          int          `json:"pid"`
						SourceResume bool         `json:"source_resumed"`
						Error        *fault.Error `json:"error"`
					}{pid, true, asFault(err)})
				}
				return err
			}
			defer sess.Close()
			tty := !asJSON && isTerminal(os.Stderr)
			opts.Progress = func(p migrate.Progress) {
				if !tty {
					return
				}
				mib := func(n int64) float64 { return float64(n) / (1 << 20) }
				line := fmt.Sprintf("%s: %.1f", p.Phase, mib(p.Sent))
				if p.Expect > 0 {
					line += fmt.Sprintf("/%.1f", mib(p.Expect))
				}
				line += fmt.Sprintf(" MiB, %.0f MiB/s", p.Rate/(1<<20))
				if p.ETA > 0 {
					line += fmt.Sprintf(", ETA %v", p.ETA.Round(100*time.Millisecond))
				}
				line += fmt.Sprintf("; %.1f MiB in all, %v elapsed", mib(p.Total), p.Elapsed.Round(100*time.Millisecond))
				if p.Done != nil {
					fmt.Fprintf(os.Stderr, "\r\033[Kround %d done: %d pages, %.1f MiB in %v\n", p.Done.N, p.Done.Pages, mib(p.Done.Bytes), p.Done.Duration.Round(time.Millisecond))
					return
				}
				fmt.Fprintf(os.Stderr, "\r\033[K%s", line)
			}
			rep, err := migrate.Migrate(ctx, pid, sess, opts)
			if tty {
				fmt.Fprintln(os.Stderr)
			}
			if asJSON {
				out := struct {
					*migrate.Report
					Error *fault.Error `json:"error,omitempty"`
				}{Report: rep}
				if err != nil {
					out.Error = asFault(err)
				}
				json.NewEncoder(os.Stdout).Encode(out)
			} else if rep != nil && err == nil {
				printReport(rep)
			}
			return err
		},
	}
	tf.add(cmd)
	cmd.Flags().StringVar(&to, "to", "", "HOST:PORT where godwit serve listens")
	cmd.Flags().StringVar(&serverName, "server-name", "", "name the destination's certificate must carry (default: the host of --to)")
	cmd.Flags().StringVar(&precopy, "precopy", "auto", "pre-copy rounds: auto, off or a number")
	cmd.Flags().BoolVar(&opts.Compress, "compress", false, "compress pre-copy rounds and the image with zstd (zero pages never travel)")
	cmd.Flags().BoolVar(&postcopy, "postcopy", false, "resume on the destination at once; memory follows in the background and on demand (with --precopy: pre-copy rounds first, the hybrid)")
	cmd.Flags().BoolVar(&tcpEstablished, "tcp-established", false, "carry established TCP connections over (the destination has the same addresses)")
	cmd.Flags().BoolVar(&tcpClose, "tcp-close", false, "close established TCP connections on the destination (the application reconnects)")
	cmd.Flags().StringVar(&opts.ActionScript, "action-script", "", "script run at pre-dump, network-lock, post-dump, network-unlock")
	cmd.Flags().DurationVar(&opts.HookTimeout, "hook-timeout", 10*time.Second, "how long a process that asked to be told (GODWIT_NOTIFY) may take to answer")
	cmd.Flags().DurationVar(&opts.Budget, "downtime", 50*time.Millisecond, "downtime that automatic pre-copy aims at")
	cmd.Flags().BoolVar(&asJSON, "json", false, "print the report as JSON on stdout")
	return cmd
}

func asFault(err error) *fault.Error {
	if fe := new(fault.Error); errors.As(err, &fe) {
		return fe
	}
	return &fault.Error{Code: fault.CodeInternal, Msg: err.Error()}
}

func printReport(r *migrate.Report) {
	var b strings.Builder
	fmt.Fprintf(&b, "migrated pid %d (%s): now pid %d on the destination\n", r.PID, r.Mode, r.DestPID)
	for _, rd := range r.Rounds {
		kind := "round"
		if rd.Final {
			kind = "final"
		}
		fmt.Fprintf(&b, "  %s %d: %d pages, %d zero, %.1f MiB, %v\n", kind, rd.N, rd.Pages, rd.Zero, float64(rd.Bytes)/(1<<20), rd.Duration.Round(time.Microsecond))
	}
	fmt.Fprintf(&b, "  total %v, downtime %v (frozen %v, restore %v), %.1f MiB sent, %d pages sent again\n",
		r.Total.Round(time.Millisecond), r.Downtime.Round(time.Microsecond), r.Frozen.Round(time.Microsecond),
		r.RestoreTime.Round(time.Microsecond), float64(r.Bytes)/(1<<20), r.PagesTwice)
	for _, w := range r.Warnings {
		fmt.Fprintf(&b, "  warning: %s\n", w)
	}
	fmt.Print(b.String())
}

func isTerminal(f *os.File) bool {
	_, err := unix.IoctlGetTermios(int(f.Fd()), unix.TCGETS)
	return err == nil
}
