package procfs

import (
	"bytes"
	"reflect"
	"testing"

	"golang.org/x/sys/unix"
)

func TestParseSysVShmFixture(t *testing.T) {
	segs, err := ParseSysVShm(bytes.NewReader(fixture(t, "sysvipc-shm/two-segments.txt")))
	if err != nil {
		t.Fatal(err)
	}
	want := []SysVShm{
		{Key: 0x1234abcd, ID: 7, Perms: 0o640, Size: 8192, CPID: 31752, LPID: 31752, Nattch: 1},
		{Key: 0, ID: 8, Perms: ShmDest | 0o600, Size: 4096, CPID: 31752, LPID: 31752, Nattch: 1, UID: 1000, GID: 1000},
	}
	if !reflect.DeepEqual(segs, want) {
		t.Errorf("got  %+v\nwant %+v", segs, want)
	}
	segs, err = ParseSysVShm(bytes.NewReader(fixture(t, "sysvipc-shm/empty.txt")))
	if err != nil || len(segs) != 0 {
		t.Errorf("no segments: got %+v, %v", segs, err)
	}
}

func TestParseSysVShmMalformed(t *testing.T) {
	const header = "key shmid perms size cpid lpid nattch uid gid cuid cgid\n"
	checkBad(t, []badCase{
		{"empty", "", "no header line", 0},
		{"column missing", "key shmid perms size cpid lpid nattch uid gid cuid\n", `no column "cgid"`, 1},
		{"short line", header + "1 2 600 4096 1 1 1 0 0 0\n", "10 fields, the header names 11", 2},
		{"key", header + "x 2 600 4096 1 1 1 0 0 0 0\n", `bad key "x"`, 2},
		{"key too large", header + "4294967296 2 600 4096 1 1 1 0 0 0 0\n", `bad key`, 2},
		{"negative id", header + "1 -2 600 4096 1 1 1 0 0 0 0\n", `bad shmid "-2"`, 2},
		{"perms not octal", header + "1 2 689 4096 1 1 1 0 0 0 0\n", `bad perms "689"`, 2},
		{"size", header + "1 2 600 -1 1 1 1 0 0 0 0\n", `bad size "-1"`, 2},
		{"uid", header + "1 2 600 1 1 1 1 u 0 0 0\n", `bad uid "u"`, 2},
	}, func(r *bytes.Reader) error { _, err := ParseSysVShm(r); return err })
}

// TestReadSysVShmLive creates a segment and finds it, with its mode, size
// and the marks of a removed segment once it is removed while attached.
func TestReadSysVShmLive(t *testing.T) {
	id, err := unix.SysvShmGet(unix.IPC_PRIVATE, 12345, unix.IPC_CREAT|0o640)
	if err != nil {
		t.Skipf("SysV shared memory is not available: %v", err)
	}
	defer unix.SysvShmCtl(id, unix.IPC_RMID, nil)
	b, err := unix.SysvShmAttach(id, 0, 0)
	if err != nil {
		t.Fatal(err)
	}
	defer unix.SysvShmDetach(b)
	find := func() SysVShm {
		t.Helper()
		segs, err := ReadSysVShm()
		if err != nil {
			t.Fatal(err)
		}
		for _, s := range segs {
			if s.ID == id {
				return s
			}
		}
		t.Fatalf("segment %d not in /proc/sysvipc/shm: %+v", id, segs)
		return SysVShm{}
	}
	s := find()
	if s.Size != 12345 || s.Perms != 0o640 || s.Nattch != 1 || s.Key != 0 || s.CPID != unix.Getpid() {
		t.Errorf("segment %+v: want size 12345, perms 0640, 1 attachment, created by %d", s, unix.Getpid())
	}
	if _, err := unix.SysvShmCtl(id, unix.IPC_RMID, nil); err != nil {
		t.Fatal(err)
	}
	if s := find(); s.Perms&ShmDest == 0 {
		t.Errorf("removed segment %+v: no SHM_DEST in perms", s)
	}
}

func FuzzParseSysVShm(f *testing.F) {
	seed(f, "sysvipc-shm", "key shmid perms size cpid lpid nattch uid gid cuid cgid\n1 2 600 4096 1 1 1 0 0 0 0\n")
	f.Fuzz(func(t *testing.T, data []byte) {
		segs, err := ParseSysVShm(bytes.NewReader(data))
		checkFuzzErr(t, err)
		for _, s := range segs {
			if s.ID < 0 {
				t.Fatalf("bad segment %+v", s)
			}
		}
	})
}
