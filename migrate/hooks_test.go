package migrate

import (
	"bufio"
	"context"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/godwit-dev/godwit/fault"
)

// listener is a python3 program that asks to be told about its migration
// and answers each notification with its first argument.
const listener = `
import os, socket, sys
path = os.environ["GODWIT_NOTIFY"]
s = socket.socket(socket.AF_UNIX)
s.bind(path)
s.listen(4)
print("ready", flush=True)
while True:
    c, _ = s.accept()
    line = c.makefile().readline().strip()
    print(line, flush=True)
    if sys.argv[1] != "silent":
        c.sendall((sys.argv[1] + "\n").encode())
    else:
        sys.stdin.readline()
    c.close()
`

func startListener(t *testing.T, answer string) (pid int, lines *bufio.Scanner) {
	t.Helper()
	py, err := exec.LookPath("python3")
	if err != nil {
		t.Skip("python3 not installed")
	}
	sock := filepath.Join(t.TempDir(), "notify.sock")
	cmd := exec.Command(py, "-c", listener, answer)
	cmd.Env = append(os.Environ(), NotifyEnv+"="+sock)
	out, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	stdin, _ := cmd.StdinPipe()
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { stdin.Close(); cmd.Process.Kill(); cmd.Wait() })
	sc := bufio.NewScanner(out)
	if !sc.Scan() || sc.Text() != "ready" {
		t.Fatalf("listener did not start: %q", sc.Text())
	}
	return cmd.Process.Pid, sc
}

func TestNotifyAcknowledged(t *testing.T) {
	pid, lines := startListener(t, "ok")
	if err := notifyApp(context.Background(), pid, "pre-migrate", 5*time.Second); err != nil {
		t.Fatal(err)
	}
	if !lines.Scan() || lines.Text() != "pre-migrate" {
		t.Fatalf("the process read %q", lines.Text())
	}
}

func TestNotifyRefused(t *testing.T) {
	pid, _ := startListener(t, "refuse busy")
	err := notifyApp(context.Background(), pid, "pre-migrate", 5*time.Second)
	if fault.CodeOf(err) != fault.CodeMigration || !strings.Contains(err.Error(), "refuse busy") {
		t.Fatalf("got %v", err)
	}
}

func TestNotifyTimeout(t *testing.T) {
	pid, _ := startListener(t, "silent")
	err := notifyApp(context.Background(), pid, "pre-migrate", 300*time.Millisecond)
	if fault.CodeOf(err) != fault.CodeMigration || !strings.Contains(err.Error(), "acknowledgement") {
		t.Fatalf("got %v", err)
	}
}

func TestNotifyNotAsked(t *testing.T) {
	// The test process itself did not set GODWIT_NOTIFY.
	if os.Getenv(NotifyEnv) != "" {
		t.Skip(NotifyEnv + " is set in the test's environment")
	}
	if err := notifyApp(context.Background(), os.Getpid(), "pre-migrate", time.Second); err != nil {
		t.Fatal(err)
	}
}

func TestActionScript(t *testing.T) {
	dir := t.TempDir()
	out := filepath.Join(dir, "log")
	script := filepath.Join(dir, "action.sh")
	body := "#!/bin/sh\necho \"$GODWIT_ACTION $GODWIT_PID\" >> " + out + "\n[ \"$GODWIT_ACTION\" != network-lock ]\n"
	if err := os.WriteFile(script, []byte(body), 0o700); err != nil {
		t.Fatal(err)
	}
	if err := runAction(context.Background(), script, ActionPreDump, 42); err != nil {
		t.Fatal(err)
	}
	err := runAction(context.Background(), script, ActionNetworkLock, 42)
	if fault.CodeOf(err) != fault.CodeMigration {
		t.Fatalf("a failing script: %v", err)
	}
	if err := runAction(context.Background(), "", ActionPreDump, 42); err != nil {
		t.Fatal(err)
	}
	b, _ := os.ReadFile(out)
	if got := string(b); got != "pre-dump 42\nnetwork-lock 42\n" {
		t.Fatalf("script saw %q", got)
	}
}
