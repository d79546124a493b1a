// Command godwit checkpoints, restores and migrates Linux processes, and runs
// rootless containers. This package is wiring only: each verb lives in its
// own file, turns flags into an options struct and makes one library call.
package main

import (
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"runtime/pprof"

	"github.com/spf13/cobra"

	"github.com/godwit-dev/godwit/fault"
)

// globals are the flags every verb shares.
type globals struct {
	logFormat string // "text" or "json"
	logFile   string // --log: where errors are also written
	root      string // --root: state directory of the container runtime
	profile   string // --cpuprofile: where to write a CPU profile (hidden)
}

var global globals

func newRootCommand() *cobra.Command {
	root := &cobra.Command{
		Use:           "godwit",
		Short:         "checkpoint, restore and live-migrate Linux processes and containers",
		SilenceUsage:  true,
		SilenceErrors: true,
	}
	pf := root.PersistentFlags()
	pf.StringVar(&global.logFormat, "log-format", "text", "error format on stderr: text or json")
	pf.StringVar(&global.logFile, "log", "", "also append errors to this file")
	pf.StringVar(&global.root, "root", defaultStateRoot(), "state directory of the container runtime")
	pf.StringVar(&global.profile, "cpuprofile", "", "write a CPU profile of this run to the file")
	pf.MarkHidden("cpuprofile")
	root.PersistentPreRunE = func(*cobra.Command, []string) error {
		if global.profile == "" {
			return nil
		}
		f, err := os.Create(global.profile)
		if err != nil {
			return err
		}
		return pprof.StartCPUProfile(f)
	}
	root.PersistentPostRun = func(*cobra.Command, []string) { pprof.StopCPUProfile() }
	for _, add := range subcommands {
		root.AddCommand(add())
	}
	return root
}

// subcommands is filled by the init functions of the verb files.
var subcommands []func() *cobra.Command

func register(f func() *cobra.Command) { subcommands = append(subcommands, f) }

func defaultStateRoot() string {
	if os.Geteuid() == 0 {
		return "/run/godwit"
	}
	if d := os.Getenv("XDG_RUNTIME_DIR"); d != "" {
		return d + "/godwit"
	}
	return fmt.Sprintf("/tmp/godwit-%d", os.Geteuid())
}

func main() {
	err := newRootCommand().Execute()
	pprof.StopCPUProfile()
	if err == nil {
		return
	}
	reportError(err)
	var ee exitError
	if errors.As(err, &ee) {
		os.Exit(int(ee))
	}
	os.Exit(1)
}

// exitError asks main to exit with a specific status without printing more.
type exitError int

func (e exitError) Error() string { return fmt.Sprintf("exit status %d", int(e)) }

// reportError writes err as one line of text, or one JSON object, on stderr
// (and to --log when given).
func reportError(err error) {
	var ee exitError
	if errors.As(err, &ee) {
		return
	}
	var line []byte
	if global.logFormat == "json" {
		obj := map[string]any{"code": fault.CodeOf(err), "error": err.Error()}
		var fe *fault.Error
		if errors.As(err, &fe) {
			obj["detail"] = fe
		}
		line, _ = json.Marshal(obj)
	} else {
		line = []byte("godwit: " + err.Error())
	}
	line = append(line, '\n')
	os.Stderr.Write(line)
	if global.logFile != "" {
		if f, ferr := os.OpenFile(global.logFile, os.O_WRONLY|os.O_APPEND|os.O_CREATE, 0o600); ferr == nil {
			f.Write(line)
			f.Close()
		}
	}
}
