package securepath

import (
	"os"
	"path/filepath"
	"testing"
)

// Symlinks (absolute and relative) and ".." chains stay inside the root.
func TestResolveStaysInside(t *testing.T) {
	root := t.TempDir()
	outside := t.TempDir()
	os.MkdirAll(filepath.Join(root, "a/b"), 0o755)
	os.Symlink(outside, filepath.Join(root, "abs"))
	os.Symlink("../../../../../../"+outside, filepath.Join(root, "a/rel"))
	r, err := Open(root)
	if err != nil {
		t.Fatal(err)
	}
	defer r.Close()
	for _, p := range []string{"abs/x", "a/rel/y", "../../../" + outside + "/z", "/a/b/../../../../w"} {
		f, err := r.MountTarget(p, true)
		if err != nil {
			// Refusing (a dangling symlink) is fine too; escaping is not.
			continue
		}
		f.Close()
	}
	ents, _ := os.ReadDir(outside)
	if len(ents) != 0 {
		t.Fatalf("created outside the root: %v", ents)
	}
	if _, err := os.Stat(filepath.Join(root, "w")); err != nil {
		t.Errorf(".. chain not clamped to the root: %v", err)
	}
}

func TestMountTargetFile(t *testing.T) {
	root := t.TempDir()
	r, err := Open(root)
	if err != nil {
		t.Fatal(err)
	}
	defer r.Close()
	f, err := r.MountTarget("/dev/null", false)
	if err != nil {
		t.Fatal(err)
	}
	f.Close()
	st, err := os.Stat(filepath.Join(root, "dev/null"))
	if err != nil || !st.Mode().IsRegular() {
		t.Fatalf("file target: %v %v", st, err)
	}
	if Clean("../../x/../y") != "/y" || !IsInside("/a", "/a/b") || IsInside("/a", "/ab") {
		t.Error("Clean/IsInside")
	}
}
