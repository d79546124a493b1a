package mount

import (
	"errors"
	"os"
	"testing"

	"golang.org/x/sys/unix"

	"github.com/godwit-dev/godwit/fault"
)

func TestParseOptions(t *testing.T) {
	f := ParseOptions([]string{"ro", "nosuid", "nodev", "rbind", "rslave", "mode=755", "size=1k", "newinstance"})
	if f.Set != unix.MOUNT_ATTR_RDONLY|unix.MOUNT_ATTR_NOSUID|unix.MOUNT_ATTR_NODEV || !f.Bind || !f.Rec || f.Propagation != unix.MS_SLAVE {
		t.Errorf("flags: %+v", f)
	}
	if len(f.Data) != 3 || f.Data[0] != (Option{"mode", "755"}) || f.Data[2] != (Option{"newinstance", ""}) {
		t.Errorf("data: %+v", f.Data)
	}
}

// Errors are classified: a filesystem type the kernel does not know is an
// invalid argument, not a missing kernel feature.
func TestErrorClasses(t *testing.T) {
	_, err := New("no-such-fs-godwit", "", nil, 0)
	if err == nil {
		t.Fatal("unknown filesystem accepted")
	}
	if errors.Is(err, fault.ErrKernel) {
		t.Errorf("unknown fs reported as kernel feature missing: %v", err)
	}
	if e := wrap(unix.ENOSYS, "fsopen", "tmpfs", ""); !errors.Is(e, ErrKernel) || !errors.Is(e, unix.ENOSYS) {
		t.Errorf("ENOSYS: %v", e)
	}
	if e := wrap(unix.EINVAL, "mount_setattr", "overlay", ""); !errors.Is(e, ErrNotSupported) {
		t.Errorf("EINVAL: %v", e)
	}
}

// tmpfs made with fsopen/fsmount can be id-mapped directly on its fd
// (needs root: the id-mapping namespace has an arbitrary mapping).
func TestTmpfsIDMap(t *testing.T) {
	if os.Geteuid() != 0 {
		t.Skip("needs root to create a mount and an id-mapping user namespace")
	}
	m, err := New("tmpfs", "tmpfs", []Option{{"size", "1m"}}, 0)
	if err != nil {
		t.Fatal(err)
	}
	defer m.Close()
	ns, err := userNSForTest()
	if err != nil {
		t.Skipf("user namespace: %v", err)
	}
	defer ns.Close()
	if err := m.IDMap(int(ns.Fd()), false); err != nil {
		t.Fatalf("idmap tmpfs: %v", err)
	}
	var st unix.Stat_t
	if err := unix.Fstat(m.FD(), &st); err != nil {
		t.Fatal(err)
	}
	if st.Uid != 100000 {
		t.Errorf("tmpfs root owner through the id-mapped mount: %d, want 100000", st.Uid)
	}
}
