package main

import (
	"encoding/json"
	"fmt"
	"os"
	"text/tabwriter"
	"time"

	"github.com/spf13/cobra"

	"github.com/godwit-dev/godwit/container/runtime"
	"github.com/godwit-dev/godwit/fault"
)

func init() {
	register(func() *cobra.Command {
		var format string
		var quiet bool
		cmd := &cobra.Command{
			Use:   "list",
			Short: "list containers",
			Args:  cobra.NoArgs,
			RunE: func(cmd *cobra.Command, args []string) error {
				sts, err := runtime.List(global.root)
				if err != nil {
					return err
				}
				switch {
				case quiet:
					for _, st := range sts {
						fmt.Println(st.ID)
					}
				case format == "json":
					out := make([]runtime.Public, 0, len(sts))
					for _, st := range sts {
						out = append(out, st.Public())
					}
					return json.NewEncoder(os.Stdout).Encode(out)
				case format == "table":
					w := tabwriter.NewWriter(os.Stdout, 12, 1, 3, ' ', 0)
					fmt.Fprintln(w, "ID\tPID\tSTATUS\tBUNDLE\tCREATED\tOWNER")
					for _, st := range sts {
						p := st.Public()
						fmt.Fprintf(w, "%s\t%d\t%s\t%s\t%s\t%s\n", p.ID, p.PID, p.Status, p.Bundle, p.Created.Format(time.RFC3339Nano), p.Owner)
					}
					return w.Flush()
				default:
					return &fault.Error{Code: fault.CodeInvalidArgument, Op: "list", Msg: "unknown format " + format}
				}
				return nil
			},
		}
		cmd.Flags().StringVarP(&format, "format", "f", "table", "table or json")
		cmd.Flags().BoolVarP(&quiet, "quiet", "q", false, "print only ids")
		return cmd
	})
}
