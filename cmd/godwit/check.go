package main

import (
	"encoding/json"
	"fmt"
	"io"
	"strings"
	"text/tabwriter"

	"github.com/spf13/cobra"

	"github.com/godwit-dev/godwit/fault"
	"github.com/godwit-dev/godwit/internal/kernel"
)

func init() { register(newCheckCommand) }

type checkOptions struct {
	json bool
}

func newCheckCommand() *cobra.Command {
	var opts checkOptions
	cmd := &cobra.Command{
		Use:   "check",
		Short: "probe the kernel for the features godwit uses",
		Long: `Probe the running kernel, as this user, for every feature godwit uses, and
print what each is used for. The exit status is non-zero when a feature that
checkpoint or restore requires is missing or not permitted.`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			return runCheck(cmd.OutOrStdout(), opts)
		},
	}
	cmd.Flags().BoolVar(&opts.json, "json", false, "print the results as a JSON array")
	return cmd
}

func runCheck(w io.Writer, opts checkOptions) error {
	results := kernel.Check()
	var err error
	if opts.json {
		err = writeCheckJSON(w, results)
	} else {
		err = writeCheckTable(w, results)
	}
	if err != nil {
		return fmt.Errorf("write check results: %w", err)
	}
	for _, r := range results {
		if r.Failed() {
			return exitError(1)
		}
	}
	return nil
}

func writeCheckTable(w io.Writer, results []kernel.Result) error {
	tw := tabwriter.NewWriter(w, 0, 0, 2, ' ', 0)
	fmt.Fprintln(tw, "FEATURE\tSTATUS\tNEEDED\tUSED FOR")
	for _, r := range results {
		needed := "optional"
		switch {
		case r.Required:
			needed = "required"
		case r.Info:
			needed = "info"
		}
		fmt.Fprintf(tw, "%s\t%s\t%s\t%s\n", r.Name, r.Status, needed, r.UsedFor)
	}
	if err := tw.Flush(); err != nil {
		return err
	}

	var notes, failed []string
	for _, r := range results {
		switch {
		case r.Detail != "":
			notes = append(notes, fmt.Sprintf("%s: %s", r.Name, r.Detail))
		case r.Err != nil && r.Status == kernel.StatusDenied && r.Workaround != "":
			notes = append(notes, fmt.Sprintf("%s; instead: %s", errorNote(r), r.Workaround))
		case r.Err != nil:
			notes = append(notes, fmt.Sprintf("%s; without it: %s", errorNote(r), r.Disables))
		}
		if r.Failed() {
			failed = append(failed, r.Name)
		}
	}
	if len(notes) > 0 {
		fmt.Fprintln(w)
		for _, n := range notes {
			fmt.Fprintln(w, n)
		}
	}
	if len(failed) > 0 {
		fmt.Fprintf(w, "\nrequired features not usable: %s\n", strings.Join(failed, ", "))
	}
	return nil
}

// errorNote is the error of r, led by the feature's name unless the error
// already starts with it.
func errorNote(r kernel.Result) string {
	msg := r.Err.Error()
	if strings.HasPrefix(msg, r.Name) {
		return msg
	}
	return r.Name + ": " + msg
}

// checkJSON is one result of godwit check --json.
type checkJSON struct {
	Name       string        `json:"name"`
	Status     kernel.Status `json:"status"`
	Required   bool          `json:"required"`
	Info       bool          `json:"info,omitempty"`
	UsedFor    string        `json:"used_for"`
	Disables   string        `json:"disables"`
	MinKernel  string        `json:"min_kernel"`
	Detail     string        `json:"detail,omitempty"`
	Workaround string        `json:"workaround,omitempty"`
	Failed     bool          `json:"failed"`
	Error      string        `json:"error,omitempty"`
	Code       fault.Code    `json:"code,omitempty"`
}

func writeCheckJSON(w io.Writer, results []kernel.Result) error {
	out := make([]checkJSON, 0, len(results))
	for _, r := range results {
		j := checkJSON{
			Name: r.Name, Status: r.Status, Required: r.Required, Info: r.Info,
			UsedFor: r.UsedFor, Disables: r.Disables, MinKernel: r.MinKernel, Detail: r.Detail,
			Workaround: r.Workaround, Failed: r.Failed(),
		}
		if r.Err != nil {
			j.Error, j.Code = r.Err.Error(), fault.CodeOf(r.Err)
		}
		out = append(out, j)
	}
	enc := json.NewEncoder(w)
	enc.SetIndent("", "  ")
	return enc.Encode(out)
}
