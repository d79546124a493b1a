package checkpoint

import (
	"errors"
	"os"
	"os/exec"
	"testing"

	"golang.org/x/sys/unix"

	"github.com/godwit-dev/godwit/fault"
	"github.com/godwit-dev/godwit/image"
	"github.com/godwit-dev/godwit/internal/procfs"
)

func TestPTS(t *testing.T) {
	for _, tt := range []struct {
		rdev  uint64
		pts   bool
		index int
	}{
		{unix.Mkdev(136, 0), true, 0},
		{unix.Mkdev(136, 255), true, 255},
		{unix.Mkdev(137, 1), true, 257},
		{unix.Mkdev(143, 255), true, 8*256 - 1},
		{unix.Mkdev(144, 0), false, 0},
		{unix.Mkdev(5, 0), false, 0}, // /dev/tty: a terminal, not a pts
		{unix.Mkdev(4, 1), false, 0}, // a virtual console
	} {
		if got := isPTS(tt.rdev); got != tt.pts {
			t.Errorf("isPTS(%d:%d) = %v", unix.Major(tt.rdev), unix.Minor(tt.rdev), got)
		}
		if tt.pts && ptsIndex(tt.rdev) != tt.index {
			t.Errorf("ptsIndex(%d:%d) = %d, want %d", unix.Major(tt.rdev), unix.Minor(tt.rdev), ptsIndex(tt.rdev), tt.index)
		}
	}
	if !isTerminalDevice(devTTY) || isTerminalDevice(unix.Mkdev(1, 3)) {
		t.Error("isTerminalDevice: /dev/tty is one, /dev/null is not")
	}
}

func TestSharedErrorMessage(t *testing.T) {
	e := &SharedError{PID: 10, Other: 11, Shares: []string{"address space", "descriptor table", "signal handlers"},
		Flags: []string{"CLONE_VM", "CLONE_FILES", "CLONE_SIGHAND"}}
	want := "pid 10 and pid 11 share their address space, descriptor table and signal handlers " +
		"(clone with CLONE_VM|CLONE_FILES|CLONE_SIGHAND but without CLONE_THREAD)"
	if e.Error() != want {
		t.Errorf("got  %q\nwant %q", e.Error(), want)
	}
}

// TestCheckShared checks two processes made by fork (the test and a child):
// they share nothing; the same process listed twice shares everything.
func TestCheckShared(t *testing.T) {
	cmd := exec.Command("sleep", "60")
	if err := cmd.Start(); err != nil {
		t.Skipf("cannot start sleep: %v", err)
	}
	defer func() { cmd.Process.Kill(); cmd.Wait() }()
	if err := checkShared([]int{os.Getpid(), cmd.Process.Pid}); err != nil {
		t.Errorf("a forked child: %v", err)
	}
	err := checkShared([]int{os.Getpid(), os.Getpid()})
	var se *SharedError
	if !errors.Is(err, fault.ErrUnsupported) || !errors.As(err, &se) || len(se.Shares) != 4 {
		t.Errorf("a process with itself: %v", err)
	}
}

func TestWholeAttachment(t *testing.T) {
	m := func(start, end, off uint64, ino uint64) procfs.Mapping {
		return procfs.Mapping{Start: start, End: end, Offset: off, Inode: ino, Shared: true, Path: "/SYSV00001234"}
	}
	whole := []procfs.Mapping{m(0x10000, 0x12000, 0, 7), m(0x12000, 0x14000, 0x2000, 7), m(0x20000, 0x21000, 0, 8)}
	if !wholeAttachment(whole, whole[1], 3*4096+1) {
		t.Error("an attachment split in two is whole")
	}
	if wholeAttachment(whole, whole[0], 5*4096) {
		t.Error("an attachment shorter than its segment is whole")
	}
	holed := []procfs.Mapping{m(0x10000, 0x11000, 0, 7), m(0x12000, 0x14000, 0x2000, 7)}
	if wholeAttachment(holed, holed[0], 4*4096) {
		t.Error("an attachment with a hole is whole")
	}
	headless := []procfs.Mapping{m(0x12000, 0x14000, 0x2000, 7)}
	if wholeAttachment(headless, headless[0], 4*4096) {
		t.Error("an attachment without its first page is whole")
	}
}

// TestSysVVMA attaches a SysV segment in the test process and describes its
// mapping: an attachment of kind sysv-shm, the segment recorded once with its
// contents; then, with a page of the attachment unmapped, refused.
func TestSysVVMA(t *testing.T) {
	id, err := unix.SysvShmGet(unix.IPC_PRIVATE, 3*4096, unix.IPC_CREAT|0o600)
	if err != nil {
		t.Skipf("SysV shared memory is not available: %v", err)
	}
	defer unix.SysvShmCtl(id, unix.IPC_RMID, nil)
	b, err := unix.SysvShmAttach(id, 0, 0)
	if err != nil {
		t.Fatal(err)
	}
	copy(b[4096:], "hello")
	pid := os.Getpid()
	find := func() (procfs.Mapping, bool) {
		maps, err := procfs.ReadMaps(pid)
		if err != nil {
			t.Fatal(err)
		}
		for _, m := range maps {
			if isSysV(m.Path) && m.Inode == uint64(id) {
				return m, true
			}
		}
		return procfs.Mapping{}, false
	}
	m, ok := find()
	if !ok {
		t.Fatalf("no mapping of segment %d", id)
	}
	d := &dumper{pid: pid, blobIDs: map[[2]uint64]int{}}
	v := image.VMA{Start: m.Start, End: m.End, Inode: m.Inode, Flags: unix.MAP_SHARED, Prot: unix.PROT_READ | unix.PROT_WRITE}
	if err := d.sysvVMA(pid, m, &v); err != nil {
		t.Fatal(err)
	}
	if v.Kind != image.VMASysVShm || v.Path != "/SYSV00000000" {
		t.Errorf("mapping described as %+v", v)
	}
	if err := d.recordSysV(pid, []image.VMA{v, v}); err != nil {
		t.Fatal(err)
	}
	if len(d.meta.SysVShm) != 1 || len(d.meta.Files) != 1 {
		t.Fatalf("segments %+v, files %+v: want one of each", d.meta.SysVShm, d.meta.Files)
	}
	s, f := d.meta.SysVShm[0], d.meta.Files[0]
	if s.ID != id || s.Size != 3*4096 || s.Mode != 0o600 || s.Removed || s.FileID != f.ID || !f.SysV ||
		string(d.blobData[0][4096:4101]) != "hello" {
		t.Errorf("segment %+v, blob %+v", s, f)
	}
	if err := checkAttachments([]int{pid}); err != nil {
		t.Errorf("every attachment is in the process: %v", err)
	}

	if _, _, e := unix.Syscall(unix.SYS_MUNMAP, uintptr(m.Start+4096), 4096, 0); e != 0 {
		t.Fatal(e)
	}
	defer unix.SysvShmDetach(b)
	m, _ = find()
	err = d.sysvVMA(pid, m, &v)
	if !errors.Is(err, fault.ErrUnsupported) {
		t.Errorf("an attachment with a hole: %v, want unsupported", err)
	}
}
