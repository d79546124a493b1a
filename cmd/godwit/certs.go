package main

import (
	"fmt"
	"io"
	"path/filepath"

	"github.com/spf13/cobra"

	"github.com/godwit-dev/godwit/transport"
)

func init() { register(newCertsCommand) }

type certsOptions struct {
	dir   string
	hosts []string
}

func newCertsCommand() *cobra.Command {
	var opts certsOptions
	cmd := &cobra.Command{
		Use:   "certs --dir DIR [--host HOST]...",
		Short: "create the CA and certificates that authenticate a migration",
		Long: `Create a new certificate authority and, signed by it, a server certificate for
the receiving host (godwit serve) and a client certificate for the sending host
(godwit migrate). Both sides of a migration verify each other against the CA.

The server certificate is valid for every --host (name or IP address; repeat
the flag or separate with commas) and for localhost, 127.0.0.1 and ::1. Keys
are ECDSA P-256 and written with mode 0600; certificates are valid for a year.
Existing files are never overwritten.

Copy ca.pem, server.pem and server-key.pem to the receiving host, and ca.pem,
client.pem and client-key.pem to the sending host. Keep ca-key.pem private.`,
		Example: `  godwit certs --dir ./pki --host dest.example.com --host 10.0.0.7`,
		Args:    cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			return runCerts(cmd.OutOrStdout(), opts)
		},
	}
	f := cmd.Flags()
	f.StringVar(&opts.dir, "dir", "", "directory to write the PEM files into (created with mode 0700 if missing)")
	f.StringSliceVar(&opts.hosts, "host", nil, "host name or IP address of the receiving host (repeatable)")
	cmd.MarkFlagRequired("dir")
	return cmd
}

func runCerts(w io.Writer, opts certsOptions) error {
	if err := transport.GeneratePKI(opts.dir, opts.hosts); err != nil {
		return err
	}
	for _, f := range []struct{ name, use string }{
		{transport.CACertFile, "CA certificate: both hosts"},
		{transport.CAKeyFile, "CA key: keep private, needed only to issue more certificates"},
		{transport.ServerCertFile, "server certificate: receiving host"},
		{transport.ServerKeyFile, "server key: receiving host"},
		{transport.ClientCertFile, "client certificate: sending host"},
		{transport.ClientKeyFile, "client key: sending host"},
	} {
		fmt.Fprintf(w, "%s\t%s\n", filepath.Join(opts.dir, f.name), f.use)
	}
	return nil
}
