package main

import (
	"context"
	"fmt"
	"log/slog"
	"os"
	"os/signal"
	"sync"
	"syscall"

	"github.com/spf13/cobra"
	"golang.org/x/sys/unix"

	"github.com/godwit-dev/godwit/fault"
	"github.com/godwit-dev/godwit/migrate"
	"github.com/godwit-dev/godwit/transport"
)

func init() { register(newServeCommand) }

func newServeCommand() *cobra.Command {
	var tf tlsFlags
	var listen string
	var memLimitMiB int64
	var srv migrate.Server
	cmd := &cobra.Command{
		Use:   "serve --listen ADDR --cert C --key K --ca CA",
		Short: "receive migrations and restore them on this host",
		Args:  cobra.NoArgs,
		RunE: func(cmd *cobra.Command, args []string) error {
			if listen == "" {
				return &fault.Error{Code: fault.CodeInvalidArgument, Op: "serve", Msg: "--listen is required"}
			}
			if err := tf.check("serve"); err != nil {
				return err
			}
			cfg, err := transport.ServerConfig(tf.cert, tf.key, tf.ca)
			if err != nil {
				return err
			}
			srv.MemoryLimit = memLimitMiB << 20
			srv.UserNS = os.Geteuid() != 0
			log := slog.New(slog.NewTextHandler(os.Stderr, nil))
			if global.logFormat == "json" {
				log = slog.New(slog.NewJSONHandler(os.Stderr, nil))
			}
			srv.Log = log
			ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
			defer stop()
			ln, err := transport.Listen(listen, cfg)
			if err != nil {
				return err
			}
			defer ln.Close()
			// Restored trees are daemons: when this is the init of its PID
			// namespace or a subreaper, their orphans come here to be reaped.
			unix.Prctl(unix.PR_SET_CHILD_SUBREAPER, 1, 0, 0, 0)
			var active sync.WaitGroup
			var busy reapGate
			go busy.reap(ctx)
			// The listening address, for scripts that pass port 0.
			fmt.Fprintf(os.Stdout, "listening on %s\n", ln.Addr())
			for {
				sess, err := ln.Accept(ctx)
				if err != nil {
					if ctx.Err() != nil {
						break
					}
					log.Warn("connection refused", "err", err)
					continue
				}
				active.Add(1)
				busy.enter()
				go func() {
					defer active.Done()
					defer busy.leave()
					defer sess.Close()
					if _, err := srv.Handle(ctx, sess); err != nil {
						log.Error("migration failed", "err", err)
					}
				}()
			}
			active.Wait()
			return nil
		},
	}
	tf.add(cmd)
	cmd.Flags().StringVar(&listen, "listen", "", "address to listen on, HOST:PORT")
	cmd.Flags().Int64Var(&memLimitMiB, "memory-limit", 0, "MiB of pre-copied pages one migration may hold (0: no limit)")
	cmd.Flags().BoolVar(&srv.LazyFill, "lazy-fill", true, "after a pre-copy, resume first and fill the pages of the rounds through userfaultfd (root only)")
	cmd.Flags().StringVar(&srv.ActionScript, "action-script", "", "script run at pre-restore, network-unlock, post-restore")
	return cmd
}
