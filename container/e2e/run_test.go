package e2e

import (
	"bufio"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"

	specs "github.com/opencontainers/runtime-spec/specs-go"
)

// A script runs in a fresh container; its output, exit status, namespaces,
// /proc, /dev and the ownership of what it creates are checked, and
// nothing is left behind.
func TestRunScript(t *testing.T) {
	for _, c := range callers(t) {
		t.Run(c.name, func(t *testing.T) {
			script := `echo hello; hostname; id -u; cat /proc/self/uid_map | head -1;
				test -c /dev/null && echo devnull-ok; echo x > /dev/null && echo devnull-works;
				test -e /dev/pts/ptmx && echo pts-ok; test -d /dev/shm && echo shm-ok;
				echo 1 > /sys/kernel/profiling 2>/dev/null || echo sys-ro;
				cat /proc/kcore 2>/dev/null | head -c 1 | wc -c;
				ls /proc | grep -c "^[0-9]"; touch /tmp/created-by-container; ls -ln / | grep " bin$"; exit 7`
			e := newEnv(t, c, []string{"sh", "-c", script}, nil)
			pidFile := filepath.Join(e.bundle, "pid")
			out, errs, code := e.godwit("run", "--pid-file", pidFile, "r1")
			if code != 7 {
				t.Fatalf("exit %d, want 7\nstdout: %s\nstderr: %s", code, out, errs)
			}
			for _, want := range []string{"hello\n", "godwit\n", "devnull-ok", "devnull-works", "pts-ok", "shm-ok", "sys-ro", "\n0\n"} {
				if !strings.Contains(out, want) {
					t.Errorf("output lacks %q:\n%s", want, out)
				}
			}
			lines := strings.Split(out, "\n")
			if len(lines) < 3 || lines[2] != "0" {
				t.Errorf("container uid is not 0:\n%s", out)
			}
			// A new PID namespace: only the init, the shell and ls.
			if !strings.Contains(out, "\n4\n") {
				t.Errorf("the container sees other processes:\n%s", out)
			}
			// The rootfs appears owned by the container's root.
			if !strings.Contains(out, " 0        0 ") {
				t.Errorf("rootfs /bin does not appear owned by root inside:\n%s", out)
			}
			// Files created inside are owned by the caller on the host.
			var st syscall.Stat_t
			if err := syscall.Stat(filepath.Join(e.bundle, "rootfs/tmp/created-by-container"), &st); err != nil {
				t.Fatal(err)
			}
			wantUID := uint32(0)
			if !c.root {
				wantUID = c.uid
			}
			if st.Uid != wantUID {
				t.Errorf("file created in the container is owned by %d on the host, want %d", st.Uid, wantUID)
			}
			pid, _ := strconv.Atoi(strings.TrimSpace(readFile(t, pidFile)))
			e.checkClean("r1", pid)
		})
	}
}

func readFile(t *testing.T, p string) string {
	t.Helper()
	b, err := os.ReadFile(p)
	if err != nil {
		t.Fatal(err)
	}
	return string(b)
}

// create, state, start, list, exec, kill, delete.
func TestLifecycle(t *testing.T) {
	for _, c := range callers(t) {
		t.Run(c.name, func(t *testing.T) {
			e := newEnv(t, c, []string{"sh", "-c", "echo ready; exec cat"}, nil)
			// The container's stdin and stdout are pipes we hold (so
			// create returns while the container keeps its ends).
			r, w, err := os.Pipe()
			if err != nil {
				t.Fatal(err)
			}
			defer w.Close()
			outR, outW, err := os.Pipe()
			if err != nil {
				t.Fatal(err)
			}
			defer outR.Close()
			cmd := e.cmd("create", "l1")
			cmd.Stdin, cmd.Stdout, cmd.Stderr = r, outW, outW
			if err := cmd.Run(); err != nil {
				t.Fatalf("create: %v", err)
			}
			r.Close()
			outW.Close()
			lines := bufio.NewReader(outR)
			st := e.state_("l1")
			if st["status"] != "created" || st["id"] != "l1" || st["ociVersion"] == "" {
				t.Fatalf("state after create: %v", st)
			}
			pid := int(st["pid"].(float64))
			e.must("start", "l1")
			if st := e.state_("l1"); st["status"] != "running" {
				t.Fatalf("state after start: %v", st)
			}
			if _, _, code := e.godwit("start", "l1"); code == 0 {
				t.Error("second start succeeded")
			}
			if list := e.must("list", "--format", "json"); !strings.Contains(list, `"id":"l1"`) || !strings.Contains(list, `"status":"running"`) {
				t.Errorf("list: %s", list)
			}
			if l, err := lines.ReadString('\n'); l != "ready\n" {
				t.Fatalf("container said %q (%v)", l, err)
			}
			w.Write([]byte("through-stdin\n"))
			if l, err := lines.ReadString('\n'); l != "through-stdin\n" {
				t.Fatalf("container echoed %q (%v)", l, err)
			}
			out, _, code := e.godwit("exec", "--cwd", "/tmp", "l1", "sh", "-c", "pwd; hostname; exit 5")
			if code != 5 || out != "/tmp\ngodwit\n" {
				t.Errorf("exec: exit %d, output %q", code, out)
			}
			e.must("kill", "l1", "TERM")
			waitExit(t, pid)
			if st := e.state_("l1"); st["status"] != "stopped" {
				t.Fatalf("state after kill: %v", st)
			}
			e.must("delete", "l1")
			e.checkClean("l1", pid)
			if _, _, code := e.godwit("state", "l1"); code == 0 {
				t.Error("state of a deleted container succeeded")
			}
		})
	}
}

// delete --force of a running container kills it and cleans up.
func TestDeleteForce(t *testing.T) {
	for _, c := range callers(t) {
		t.Run(c.name, func(t *testing.T) {
			e := newEnv(t, c, []string{"sh", "-c", "while :; do sleep 1; done"}, nil)
			cmd := e.cmd("run", "--detach", "d1")
			if err := cmd.Run(); err != nil { // stdio: /dev/null
				t.Fatalf("run --detach: %v", err)
			}
			st := e.state_("d1")
			pid := int(st["pid"].(float64))
			if _, _, code := e.godwit("delete", "d1"); code == 0 {
				t.Fatal("delete of a running container without --force succeeded")
			}
			e.must("delete", "--force", "d1")
			e.checkClean("d1", pid)
		})
	}
}

// The seccomp supervisor makes safe devices for the container and refuses
// the rest.
func TestMknodSupervisor(t *testing.T) {
	for _, c := range callers(t) {
		t.Run(c.name, func(t *testing.T) {
			script := `mknod /dev/null2 c 1 3 && echo made-null;
				echo data > /dev/null2 && echo null-works; head -c 5 /dev/null2 | wc -c;
				mknod /tmp/zero2 c 1 5 && head -c 4 /tmp/zero2 | od -An -tx1;
				mknod /tmp/sda b 8 0 2>&1 || echo sda-refused;
				mknod /tmp/tty1 c 4 1 2>&1 || echo tty1-refused;
				mknod /tmp/fifo p && test -p /tmp/fifo && echo fifo-ok;
				cd /tmp && mknod rel c 1 3 && test -c /tmp/rel -o -f /tmp/rel && echo relative-ok;
				ls -ln /dev/null2`
			e := newEnv(t, c, []string{"sh", "-c", script}, nil)
			out, errs, code := e.godwit("run", "m1")
			if code != 0 {
				log, _ := os.ReadFile(filepath.Join(e.state, "m1", "shim.log"))
				t.Fatalf("exit %d\n%s\n%s\nshim log: %s", code, out, errs, log)
			}
			for _, want := range []string{"made-null", "null-works", "\n0\n", "00 00 00 00", "sda-refused", "tty1-refused", "fifo-ok", "relative-ok"} {
				if !strings.Contains(out, want) {
					t.Errorf("output lacks %q:\n%s", want, out)
				}
			}
			if _, err := os.Stat(filepath.Join(e.bundle, "rootfs/tmp/sda")); err == nil {
				t.Error("block device node was created")
			}
		})
	}
}

// With the supervisor turned off, mknod of a device is refused by the
// kernel (EPERM in a user namespace).
func TestMknodWithoutSupervisor(t *testing.T) {
	c := callers(t)[1]
	e := newEnv(t, c, []string{"sh", "-c", "mknod /tmp/n c 1 3 2>&1; echo rc=$?"}, func(s *specs.Spec) {
		s.Annotations = map[string]string{"org.godwit.seccomp.supervisor": "off"}
	})
	out, _, _ := e.godwit("run", "n1")
	if !strings.Contains(out, "rc=1") {
		t.Errorf("mknod without supervisor: %s", out)
	}
}
