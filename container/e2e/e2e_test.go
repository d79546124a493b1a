// Package e2e runs the godwit binary's container verbs against real
// busybox (busybox-static) bundles, as root and as a throwaway
// unprivileged user.
package e2e

import (
	"bytes"
	"crypto/sha256"
	"encoding/json"
	"fmt"
	"os"
	"os/exec"
	"os/user"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"

	specs "github.com/opencontainers/runtime-spec/specs-go"
	"golang.org/x/sys/unix"
)

var (
	godwit   string // the binary under test
	workDir  string // world-traversable scratch directory
	setupErr string
)

func TestMain(m *testing.M) {
	os.Exit(run(m))
}

func run(m *testing.M) int {
	dir, err := os.MkdirTemp("", "godwit-e2e-")
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		return 1
	}
	defer os.RemoveAll(dir)
	defer func() {
		if testUser != nil {
			exec.Command("userdel", testUser.name).Run()
		}
	}()
	os.Chmod(dir, 0o755)
	workDir = dir
	godwit = filepath.Join(dir, "godwit")
	build := exec.Command("go", "build", "-o", godwit, "github.com/godwit-dev/godwit/cmd/godwit")
	build.Env = append(os.Environ(), "CGO_ENABLED=0")
	if out, err := build.CombinedOutput(); err != nil {
		setupErr = fmt.Sprintf("go build: %v\n%s", err, out)
	}
	return m.Run()
}

// caller is who runs godwit: root, or an unprivileged user.
type caller struct {
	name     string
	uid, gid uint32
	root     bool
}

func requireRoot(t *testing.T) {
	t.Helper()
	if setupErr != "" {
		t.Fatal(setupErr)
	}
	if os.Geteuid() != 0 {
		t.Skip("needs root (to run as root and to create a throwaway user)")
	}
	if _, err := os.Stat("/bin/busybox"); err != nil {
		t.Skip("needs busybox-static (apt-get install busybox-static)")
	}
}

var testUser *caller

// unprivileged returns a throwaway user, created once per run.
func unprivileged(t *testing.T) *caller {
	t.Helper()
	if testUser != nil {
		return testUser
	}
	name := fmt.Sprintf("gwe2e%d", os.Getpid()%100000)
	if out, err := exec.Command("useradd", "-M", "-s", "/bin/sh", name).CombinedOutput(); err != nil {
		t.Skipf("cannot create a throwaway user with useradd: %v: %s", err, out)
	}
	u, err := user.Lookup(name)
	if err != nil {
		t.Skipf("lookup %s: %v", name, err)
	}
	uid, _ := strconv.Atoi(u.Uid)
	gid, _ := strconv.Atoi(u.Gid)
	testUser = &caller{name: name, uid: uint32(uid), gid: uint32(gid)}
	return testUser
}

// callers returns root and the throwaway user, for subtests.
func callers(t *testing.T) []*caller {
	requireRoot(t)
	return []*caller{{name: "root", root: true}, unprivileged(t)}
}

// env is one container environment: a bundle and a state root owned by c.
type env struct {
	t      *testing.T
	c      *caller
	bundle string
	state  string
}

// newEnv builds a busybox bundle owned by the caller.
func newEnv(t *testing.T, c *caller, args []string, edit func(*specs.Spec)) *env {
	t.Helper()
	dir, err := os.MkdirTemp(workDir, "bundle-")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { os.RemoveAll(dir) })
	os.Chmod(dir, 0o755)
	rootfs := filepath.Join(dir, "rootfs")
	for _, d := range []string{"bin", "dev", "proc", "sys", "tmp", "etc", "mnt"} {
		if err := os.MkdirAll(filepath.Join(rootfs, d), 0o755); err != nil {
			t.Fatal(err)
		}
	}
	os.Chmod(filepath.Join(rootfs, "tmp"), 0o1777)
	bb, err := os.ReadFile("/bin/busybox")
	if err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(rootfs, "bin", "busybox"), bb, 0o755); err != nil {
		t.Fatal(err)
	}
	for _, applet := range []string{"sh", "ls", "cat", "echo", "mknod", "id", "mount", "stat", "touch", "head", "wc", "mkdir", "rm", "ln", "mv", "test", "od", "hostname", "readlink", "sleep", "true", "false", "grep"} {
		os.Symlink("busybox", filepath.Join(rootfs, "bin", applet))
	}
	sp := defaultSpec(c)
	sp.Process.Args = args
	if edit != nil {
		edit(sp)
	}
	b, _ := json.MarshalIndent(sp, "", " ")
	if err := os.WriteFile(filepath.Join(dir, "config.json"), b, 0o644); err != nil {
		t.Fatal(err)
	}
	state := filepath.Join(dir, "state")
	if !c.root {
		if err := chownR(dir, c.uid, c.gid); err != nil {
			t.Fatal(err)
		}
	}
	return &env{t: t, c: c, bundle: dir, state: state}
}

func chownR(dir string, uid, gid uint32) error {
	return filepath.Walk(dir, func(p string, _ os.FileInfo, err error) error {
		if err != nil {
			return err
		}
		return os.Lchown(p, int(uid), int(gid))
	})
}

// defaultSpec is `godwit spec` (or --rootless) with root's config given
// a subordinate mapping, so that the id-mapped rootfs really maps.
func defaultSpec(c *caller) *specs.Spec {
	var sp specs.Spec
	dir, _ := os.MkdirTemp(workDir, "spec-")
	defer os.RemoveAll(dir)
	flags := []string{"spec", "--bundle", dir}
	if !c.root {
		flags = append(flags, "--rootless")
	}
	cmd := exec.Command(godwit, flags...)
	if !c.root {
		cmd.SysProcAttr = &syscall.SysProcAttr{Credential: &syscall.Credential{Uid: c.uid, Gid: c.gid}}
		os.Chmod(dir, 0o777)
	}
	if out, err := cmd.CombinedOutput(); err != nil {
		panic(fmt.Sprintf("godwit spec: %v: %s", err, out))
	}
	b, _ := os.ReadFile(filepath.Join(dir, "config.json"))
	if err := json.Unmarshal(b, &sp); err != nil {
		panic(err)
	}
	if c.root {
		sp.Linux.UIDMappings = []specs.LinuxIDMapping{{ContainerID: 0, HostID: 200000, Size: 65536}}
		sp.Linux.GIDMappings = []specs.LinuxIDMapping{{ContainerID: 0, HostID: 200000, Size: 65536}}
	}
	return &sp
}

// cmd prepares godwit ARGS as the env's caller.
func (e *env) cmd(args ...string) *exec.Cmd {
	cmd := exec.Command(godwit, append([]string{"--root", e.state}, args...)...)
	cmd.Dir = e.bundle
	cmd.Env = []string{"PATH=/usr/sbin:/usr/bin:/sbin:/bin"}
	if !e.c.root {
		cmd.SysProcAttr = &syscall.SysProcAttr{Credential: &syscall.Credential{Uid: e.c.uid, Gid: e.c.gid}}
	}
	return cmd
}

// godwit runs godwit ARGS and returns stdout, stderr and the exit code.
func (e *env) godwit(args ...string) (string, string, int) {
	e.t.Helper()
	cmd := e.cmd(args...)
	var out, errb bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &errb
	err := cmd.Run()
	code := 0
	if ee, ok := err.(*exec.ExitError); ok {
		code = ee.ExitCode()
	} else if err != nil {
		e.t.Fatalf("godwit %v: %v", args, err)
	}
	return out.String(), errb.String(), code
}

// must runs godwit ARGS and fails the test unless it exits 0.
func (e *env) must(args ...string) string {
	e.t.Helper()
	out, errs, code := e.godwit(args...)
	if code != 0 {
		e.t.Fatalf("godwit %v: exit %d\nstdout: %s\nstderr: %s", args, code, out, errs)
	}
	return out
}

func (e *env) state_(id string) map[string]any {
	e.t.Helper()
	var st map[string]any
	if err := json.Unmarshal([]byte(e.must("state", id)), &st); err != nil {
		e.t.Fatal(err)
	}
	return st
}

// checkClean asserts that nothing of container id is left: state,
// processes, cgroup.
func (e *env) checkClean(id string, pid int) {
	e.t.Helper()
	if _, err := os.Stat(filepath.Join(e.state, id)); !os.IsNotExist(err) {
		e.t.Errorf("state of %s left behind (%v)", id, err)
	}
	if pid > 0 {
		if _, err := os.Stat(fmt.Sprintf("/proc/%d", pid)); err == nil {
			if b, _ := os.ReadFile(fmt.Sprintf("/proc/%d/cmdline", pid)); strings.Contains(string(b), "godwit") {
				e.t.Errorf("init %d still running", pid)
			}
		}
	}
	for _, base := range []string{"/sys/fs/cgroup/unified/godwit", "/sys/fs/cgroup/godwit"} {
		if _, err := os.Stat(filepath.Join(base, id)); err == nil {
			e.t.Errorf("cgroup %s/%s left behind", base, id)
		}
	}
}

// waitExit blocks until pid has exited (pidfd poll, no sleeping).
func waitExit(t *testing.T, pid int) {
	t.Helper()
	fd, err := unix.PidfdOpen(pid, 0)
	if err != nil {
		return
	}
	defer unix.Close(fd)
	for {
		p := []unix.PollFd{{Fd: int32(fd), Events: unix.POLLIN}}
		n, err := unix.Poll(p, 20000)
		if err == unix.EINTR {
			continue
		}
		if n == 0 {
			t.Fatalf("pid %d did not exit within 20 s", pid)
		}
		return
	}
}

func sha(t *testing.T, p string) [32]byte {
	b, err := os.ReadFile(p)
	if err != nil {
		t.Fatal(err)
	}
	return sha256.Sum256(b)
}
