package migrate

import (
	"bufio"
	"bytes"
	"context"
	"fmt"
	"net"
	"os"
	"os/exec"
	"strconv"
	"strings"
	"time"

	"github.com/godwit-dev/godwit/fault"
)

// NotifyEnv is the environment variable through which a process asks to be
// told about its migration: the path of a unix stream socket it listens on.
// godwit connects before the migration and writes "pre-migrate\n"; the
// process prepares (flushes, quiesces) and answers "ok\n" within the hook
// timeout, or "refuse <reason>\n" to refuse. After the tree runs on the
// destination, godwit there connects again and writes "post-migrate\n"
// (the answer is read but not required).
const NotifyEnv = "GODWIT_NOTIFY"

// Actions run by an action script, named by GODWIT_ACTION.
const (
	ActionPreDump       = "pre-dump"
	ActionPostDump      = "post-dump"
	ActionPreRestore    = "pre-restore"
	ActionPostRestore   = "post-restore"
	ActionNetworkLock   = "network-lock"
	ActionNetworkUnlock = "network-unlock"
)

// runAction runs script (when set) with GODWIT_ACTION=action and
// GODWIT_PID=pid; a failing script fails the step.
func runAction(ctx context.Context, script, action string, pid int) error {
	if script == "" {
		return nil
	}
	cmd := exec.CommandContext(ctx, script)
	cmd.Env = append(os.Environ(), "GODWIT_ACTION="+action, "GODWIT_PID="+strconv.Itoa(pid))
	out, err := cmd.CombinedOutput()
	if err != nil {
		return &fault.Error{Code: fault.CodeMigration, Op: "action " + action, PID: pid, Path: script,
			Msg: strings.TrimSpace(string(out)), Err: err, Remedy: "fix the action script or run without it"}
	}
	return nil
}

// notifySocket returns the socket path pid asked to be notified on, as
// reachable from here (through its root), or "".
func notifySocket(pid int) string {
	env, err := os.ReadFile("/proc/" + strconv.Itoa(pid) + "/environ")
	if err != nil {
		return ""
	}
	for _, kv := range bytes.Split(env, []byte{0}) {
		if v, ok := bytes.CutPrefix(kv, []byte(NotifyEnv+"=")); ok && len(v) > 0 {
			p := string(v)
			if !strings.HasPrefix(p, "/") {
				return ""
			}
			return "/proc/" + strconv.Itoa(pid) + "/root" + p
		}
	}
	return ""
}

// notifyApp tells pid, when it asked for it, that phase is coming, and
// waits for its acknowledgement within timeout (pre-migrate only).
func notifyApp(ctx context.Context, pid int, phase string, timeout time.Duration) error {
	path := notifySocket(pid)
	if path == "" {
		return nil
	}
	fail := func(msg string, err error) error {
		return &fault.Error{Code: fault.CodeMigration, Op: "notify " + phase, PID: pid, Path: strings.TrimPrefix(path, "/proc/"+strconv.Itoa(pid)+"/root"),
			Msg: msg, Err: err, Remedy: "the process asked to be told through " + NotifyEnv + "; make it answer \"ok\" or unset it"}
	}
	ctx, cancel := context.WithTimeout(ctx, timeout)
	defer cancel()
	var d net.Dialer
	c, err := d.DialContext(ctx, "unix", path)
	if err != nil {
		if phase != "pre-migrate" {
			return nil
		}
		return fail("connect", err)
	}
	defer c.Close()
	deadline, _ := ctx.Deadline()
	c.SetDeadline(deadline)
	if _, err := fmt.Fprintf(c, "%s\n", phase); err != nil {
		return fail("write", err)
	}
	line, err := bufio.NewReader(c).ReadString('\n')
	if phase != "pre-migrate" {
		return nil
	}
	if err != nil {
		return fail("no acknowledgement within "+timeout.String(), err)
	}
	line = strings.TrimSpace(line)
	if line != "ok" {
		return fail("the process refused: "+line, nil)
	}
	return nil
}
