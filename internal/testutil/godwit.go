package testutil

import (
	"context"
	"encoding/json"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"
)

// Result is what one run of godwit did.
type Result struct {
	Args     []string
	Stdout   string
	Stderr   string
	ExitCode int // -1 when killed by a signal
	Duration time.Duration
}

func (r Result) String() string {
	return fmt.Sprintf("godwit %s: exit %d\nstdout: %s\nstderr: %s",
		strings.Join(r.Args, " "), r.ExitCode, r.Stdout, r.Stderr)
}

// ErrorJSON is the error object godwit writes on stderr with
// --log-format json.
type ErrorJSON struct {
	Code   string         `json:"code"`
	Error  string         `json:"error"`
	Detail map[string]any `json:"detail"`
}

// JSONError parses the stderr of a run made with --log-format json: it must
// be exactly one line holding one JSON object with a code.
func (r Result) JSONError(t testing.TB) ErrorJSON {
	t.Helper()
	lines := strings.Split(strings.TrimRight(r.Stderr, "\n"), "\n")
	if len(lines) != 1 {
		t.Fatalf("stderr has %d lines, want one JSON object\n%s", len(lines), r)
	}
	var e ErrorJSON
	if err := json.Unmarshal([]byte(lines[0]), &e); err != nil || e.Code == "" {
		t.Fatalf("stderr is not a JSON error object with a code (%v)\n%s", err, r)
	}
	return e
}

// RunOptions changes how RunGodwitWith runs godwit.
type RunOptions struct {
	Stdin      *os.File            // default /dev/null
	Credential *syscall.Credential // run as another user
	Timeout    time.Duration       // default 5 minutes; then godwit is killed
}

// RunGodwit runs the godwit binary built by BuildGodwit with args and
// returns what it did; a non-zero exit is not a test failure.
func RunGodwit(t testing.TB, args ...string) Result {
	t.Helper()
	return RunGodwitWith(t, RunOptions{}, args...)
}

// RunGodwitWith is RunGodwit with options. Stdout and stderr go through
// files, not pipes, so a process that inherits them by mistake cannot make
// the run hang.
func RunGodwitWith(t testing.TB, opts RunOptions, args ...string) Result {
	t.Helper()
	if opts.Timeout == 0 {
		opts.Timeout = 5 * time.Minute
	}
	ctx, cancel := context.WithTimeout(context.Background(), opts.Timeout)
	defer cancel()
	cmd := GodwitCommand(t, ctx, opts, args...)
	out := CaptureOutput(t, cmd)
	start := time.Now()
	err := cmd.Run()
	r := Result{Args: args, Duration: time.Since(start), ExitCode: cmd.ProcessState.ExitCode()}
	if err != nil && cmd.ProcessState == nil {
		t.Fatalf("run godwit %v: %v", args, err)
	}
	if ctx.Err() != nil {
		t.Errorf("godwit %v did not finish within %v and was killed", args, opts.Timeout)
	}
	r.Stdout, r.Stderr = out.Read()
	return r
}

// Output is where CaptureOutput sends a command's stdout and stderr.
type Output struct{ Stdout, Stderr *os.File }

// CaptureOutput sends cmd's stdout and stderr to files in a temporary
// directory, not pipes, so that a process that inherits them by mistake
// cannot make the run hang. The files are closed when the test ends.
func CaptureOutput(t testing.TB, cmd *exec.Cmd) *Output {
	t.Helper()
	dir := t.TempDir()
	o := &Output{Stdout: createFile(t, filepath.Join(dir, "stdout"), nil), Stderr: createFile(t, filepath.Join(dir, "stderr"), nil)}
	t.Cleanup(func() { o.Stdout.Close(); o.Stderr.Close() })
	cmd.Stdout, cmd.Stderr = o.Stdout, o.Stderr
	return o
}

// Read returns what the command wrote so far.
func (o *Output) Read() (stdout, stderr string) {
	a, _ := os.ReadFile(o.Stdout.Name())
	b, _ := os.ReadFile(o.Stderr.Name())
	return string(a), string(b)
}

// GodwitCommand returns an unstarted command running godwit with args, its
// stdin set from opts (default /dev/null) and its stdout and stderr unset.
func GodwitCommand(t testing.TB, ctx context.Context, opts RunOptions, args ...string) *exec.Cmd {
	t.Helper()
	closeInherited(t)
	cmd := exec.CommandContext(ctx, BuildGodwit(t), args...)
	if opts.Stdin != nil {
		cmd.Stdin = opts.Stdin
	} else {
		null, err := os.Open(os.DevNull)
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { null.Close() })
		cmd.Stdin = null
	}
	if opts.Credential != nil {
		cmd.SysProcAttr = &syscall.SysProcAttr{Credential: opts.Credential}
	}
	cmd.WaitDelay = 10 * time.Second
	return cmd
}
