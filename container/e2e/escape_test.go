package e2e

import (
	"bufio"
	"os"
	"path/filepath"
	"strings"
	"testing"

	specs "github.com/opencontainers/runtime-spec/specs-go"
)

// hostTarget makes a directory on the host that a container must not reach.
func hostTarget(t *testing.T) string {
	t.Helper()
	d, err := os.MkdirTemp(workDir, "host-target-")
	if err != nil {
		t.Fatal(err)
	}
	os.Chmod(d, 0o777)
	return d
}

func assertEmpty(t *testing.T, dir string) {
	t.Helper()
	ents, err := os.ReadDir(dir)
	if err != nil {
		t.Fatal(err)
	}
	if len(ents) != 0 {
		t.Errorf("host directory %s was written to: %v", dir, ents)
	}
}

// Mount destinations through symlinks that point outside the rootfs, and
// ".." chains, land inside the rootfs.
func TestEscapeMountDestinations(t *testing.T) {
	for _, c := range callers(t) {
		t.Run(c.name, func(t *testing.T) {
			outside := hostTarget(t)
			e := newEnv(t, c, []string{"sh", "-c", "ls -d /evil/x /dotdot-target/y && echo inside"}, func(s *specs.Spec) {
				s.Mounts = append(s.Mounts,
					specs.Mount{Destination: "/evil/x", Type: "tmpfs", Source: "tmpfs"},
					specs.Mount{Destination: "/../../../../../.." + outside + "/../../../dotdot-target/y", Type: "tmpfs", Source: "tmpfs"},
				)
			})
			// An absolute symlink to the host directory, and a relative
			// one climbing out of the rootfs.
			rootfs := filepath.Join(e.bundle, "rootfs")
			if err := os.Symlink(outside, filepath.Join(rootfs, "evil")); err != nil {
				t.Fatal(err)
			}
			// The symlink's target also exists inside the rootfs: that is
			// where the mount must land (a dangling one is refused).
			if err := os.MkdirAll(filepath.Join(rootfs, outside), 0o755); err != nil {
				t.Fatal(err)
			}
			if !c.root {
				chownR(rootfs, c.uid, c.gid)
			}
			out, errs, code := e.godwit("run", "e1")
			if code != 0 || !strings.Contains(out, "inside") {
				t.Fatalf("exit %d: %s %s", code, out, errs)
			}
			assertEmpty(t, outside)
			// The symlink target was created inside the rootfs instead.
			if _, err := os.Stat(filepath.Join(rootfs, outside, "x")); err != nil {
				t.Errorf("mount point not created inside the rootfs: %v", err)
			}
			if _, err := os.Stat("/dotdot-target"); err == nil {
				t.Error("a .. chain reached the host root")
			}
		})
	}
}

// A container swaps a path component between a directory and a symlink to
// the host directory while asking the (root, on the host) supervisor for
// device nodes through that path: nothing appears outside.
func TestEscapeSupervisorRace(t *testing.T) {
	for _, c := range callers(t) {
		t.Run(c.name, func(t *testing.T) {
			outside := hostTarget(t)
			script := `mkdir -p /race/real; i=0;
				( while [ $i -lt 100 ]; do mv /race/d /race/tmp 2>/dev/null; ln -sfn ` + outside + ` /race/d; rm -f /race/d; mv /race/tmp /race/d 2>/dev/null || mkdir -p /race/d; i=$((i+1)); done ) &
				j=0; while [ $j -lt 100 ]; do mknod /race/d/null$j c 1 3 2>/dev/null; j=$((j+1)); done; wait; echo finished`
			e := newEnv(t, c, []string{"sh", "-c", script}, nil)
			out, errs, code := e.godwit("run", "race1")
			if code != 0 || !strings.Contains(out, "finished") {
				t.Fatalf("exit %d: %s %s", code, out, errs)
			}
			assertEmpty(t, outside)
		})
	}
}

// No host descriptor reaches the container's processes (CVE-2024-21626),
// a cwd through /proc/self/fd is refused, and the init's binary cannot be
// overwritten through /proc/1/exe or /proc/self/exe (CVE-2019-5736).
func TestEscapeFDsAndExe(t *testing.T) {
	for _, c := range callers(t) {
		t.Run(c.name, func(t *testing.T) {
			before := sha(t, godwit)
			e := newEnv(t, c, []string{"sh", "-c", "echo ready; exec cat"}, nil)
			r, w, _ := os.Pipe()
			defer w.Close()
			outR, outW, _ := os.Pipe()
			defer outR.Close()
			cmd := e.cmd("run", "--detach", "fd1")
			cmd.Stdin, cmd.Stdout, cmd.Stderr = r, outW, outW
			if err := cmd.Run(); err != nil {
				t.Fatalf("run: %v", err)
			}
			r.Close()
			outW.Close()
			if l, _ := bufio.NewReader(outR).ReadString('\n'); l != "ready\n" {
				t.Fatalf("container said %q", l)
			}
			defer e.godwit("delete", "--force", "fd1")
			out, _, _ := e.godwit("exec", "fd1", "sh", "-c", "ls /proc/self/fd | grep -v '^[0-2]$' | wc -l; for f in /proc/1/fd/*; do readlink $f; done")
			lines := strings.Split(out, "\n")
			if lines[0] != "1" { // ls's own directory fd
				t.Errorf("the exec'd process has extra descriptors:\n%s", out)
			}
			for _, l := range lines[1:] {
				if strings.Contains(l, "cgroup") || strings.Contains(l, "cpu.") || strings.HasPrefix(l, workDir) {
					t.Errorf("the container's init holds a host file: %s", l)
				}
			}
			for _, cwd := range []string{"/proc/self/fd/3", "/proc/1/fd/3", "/proc/1/cwd/.."} {
				if o, _, code := e.godwit("exec", "--cwd", cwd, "fd1", "sh", "-c", "ls /"); code == 0 && strings.Contains(o, "godwit") {
					t.Errorf("exec with cwd %s escaped: %s", cwd, o)
				}
			}
			out, _, _ = e.godwit("exec", "fd1", "sh", "-c", "echo pwned > /proc/1/exe; echo rc=$?; echo pwned > /proc/self/exe; echo rc=$?; ls /proc/1/root/ | grep -c godwit")
			if strings.Count(out, "rc=1") != 2 {
				t.Errorf("a write through /proc/*/exe succeeded:\n%s", out)
			}
			if after := sha(t, godwit); after != before {
				t.Fatal("the godwit binary was modified")
			}
		})
	}
}
