package e2e

import (
	"bufio"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// godwit mount makes a host directory appear in a running container:
// id-mapped as root (its owner appears as the container's root); refused
// with a clear error for an unprivileged caller, whom the kernel does not
// let clone a host mount into another mount namespace.
func TestMountInject(t *testing.T) {
	for _, c := range callers(t) {
		t.Run(c.name, func(t *testing.T) {
			e := newEnv(t, c, []string{"sh", "-c", "echo ready; exec cat"}, nil)
			src := hostTarget(t)
			if err := os.WriteFile(filepath.Join(src, "hello"), []byte("from host\n"), 0o644); err != nil {
				t.Fatal(err)
			}
			// Owned by some uid that is neither the caller nor mapped.
			os.Chown(src, 4242, 4242)
			os.Chown(filepath.Join(src, "hello"), 4242, 4242)
			r, w, _ := os.Pipe()
			defer w.Close()
			outR, outW, _ := os.Pipe()
			defer outR.Close()
			cmd := e.cmd("run", "--detach", "mnt1")
			cmd.Stdin, cmd.Stdout, cmd.Stderr = r, outW, outW
			if err := cmd.Run(); err != nil {
				t.Fatalf("run: %v", err)
			}
			r.Close()
			outW.Close()
			if l, _ := bufio.NewReader(outR).ReadString('\n'); l != "ready\n" {
				t.Fatalf("container said %q", l)
			}
			defer e.godwit("delete", "--force", "mnt1")
			out, errs, code := e.godwit("mount", "--idmap", "mnt1", src, "/mnt/host")
			if !c.root {
				if code == 0 || !strings.Contains(errs, "EPERM") {
					t.Errorf("rootless --idmap: exit %d, %s", code, errs)
				}
				_, errs, code = e.godwit("mount", "mnt1", src, "/mnt/host")
				if code == 0 {
					t.Skip("this kernel lets an unprivileged caller clone a host mount into the container: extend the test")
				}
				if !strings.Contains(errs, "invalid argument") {
					t.Errorf("rootless mount: %s", errs)
				}
				return
			}
			if code != 0 {
				t.Fatalf("mount: %s %s", out, errs)
			}
			out = e.must("exec", "mnt1", "sh", "-c", "cat /mnt/host/hello; ls -ln /mnt/host; touch /mnt/host/new")
			if !strings.Contains(out, "from host") || !strings.Contains(out, " 0        0 ") {
				t.Errorf("mounted directory inside:\n%s", out)
			}
			var st os.FileInfo
			if st, _ = os.Stat(filepath.Join(src, "new")); st == nil {
				t.Fatal("file created through the mount is missing")
			}
			// Destination through a symlink stays inside the container.
			e.must("exec", "mnt1", "sh", "-c", "ln -s /../../../../"+src+" /mnt/link && mkdir -p "+src)
			before, _ := os.ReadDir(src)
			if _, _, code := e.godwit("mount", "mnt1", hostTarget(t), "/mnt/link/sub"); code != 0 {
				t.Fatal("mount through a symlink failed")
			}
			after, _ := os.ReadDir(src)
			if len(after) != len(before) {
				t.Errorf("mount through a symlink reached the host directory")
			}
		})
	}
}
