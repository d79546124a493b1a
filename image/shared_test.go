package image_test

import (
	"encoding/json"
	"errors"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"

	"github.com/godwit-dev/godwit/image"
)

// sharedMeta is sampleMeta as a shell job on /dev/pts/3 that has attached
// two SysV segments: 7 (key 0x1234, 3 pages and 100 bytes, attached whole
// with its last page made read-only) and 8 (removed, one page).
func sharedMeta() *image.Meta {
	m := sampleMeta()
	cc := make([]byte, image.NCCS)
	cc[0] = 3
	m.Terminal = &image.Terminal{Rdev: 136<<8 | 3, Index: 3, Foreground: 4242,
		Termios: &image.Termios{Iflag: 0o2400, Oflag: 0o5, Cflag: 0o277, Lflag: 0o105073, Cc: cc}}
	m.Files = append(m.Files,
		image.FileBlob{ID: 2, Size: 3*4096 + 100, Mode: 0o640, Path: "/SYSV00001234", SysV: true},
		image.FileBlob{ID: 3, Size: 4096, Mode: 0o600, Path: "/SYSV00000000", SysV: true})
	m.SysVShm = []image.SysVShm{
		{ID: 7, Key: 0x1234, Mode: 0o640, Size: 3*4096 + 100, UID: 1000, GID: 1000, CUID: 1000, CGID: 1000, FileID: 2},
		{ID: 8, Key: 0, Mode: 0o600, Size: 4096, UID: 1000, GID: 1000, CUID: 1000, CGID: 1000, Removed: true, FileID: 3},
	}
	p := &m.Processes[0]
	p.CTTY = true
	p.FDs[0] = image.FD{FD: 0, Kind: image.FDTTY, Path: "/dev/pts/3", Flags: 0o100002, Mode: 0o20620, Rdev: 136<<8 | 3,
		SameAs: -1, TTY: &image.TTY{Index: 3}}
	p.FDs = append(p.FDs, image.FD{FD: 6, Kind: image.FDTTY, Path: "/dev/tty", Flags: 0o100002, Mode: 0o20666, Rdev: 5 << 8,
		SameAs: -1, TTY: &image.TTY{Index: 3, DevTTY: true}})
	// Between the shared file mapping and the deleted file: 0x7f0000004000-0x7f0000010000.
	vmas := []image.VMA{
		{Start: 0x7f0000004000, End: 0x7f0000007000, Prot: 3, Flags: 1, Kind: image.VMASysVShm, Path: "/SYSV00001234", Inode: 7},
		{Start: 0x7f0000007000, End: 0x7f0000008000, Prot: 1, Flags: 1, Kind: image.VMASysVShm, Path: "/SYSV00001234", Inode: 7, Offset: 3 * 4096},
		{Start: 0x7f0000008000, End: 0x7f0000009000, Prot: 1, Flags: 1, Kind: image.VMASysVShm, Path: "/SYSV00000000", Inode: 8},
	}
	p.VMAs = append(p.VMAs[:3], append(vmas, p.VMAs[3:]...)...)
	return m
}

// TestValidateShared breaks the terminal and SysV parts of sharedMeta one
// rule at a time.
func TestValidateShared(t *testing.T) {
	if err := sharedMeta().Validate(); err != nil {
		t.Fatalf("sharedMeta is not valid: %v", err)
	}
	proc := func(m *image.Meta) *image.Process { return &m.Processes[0] }
	sysv := func(m *image.Meta, i int) *image.VMA { return &m.Processes[0].VMAs[3+i] }
	tests := []struct {
		name   string
		mutate func(m *image.Meta)
		want   string
	}{
		{"terminal device 0", func(m *image.Meta) { m.Terminal.Rdev = 0 }, "terminal /dev/pts/3 with device 0x0"},
		{"terminal index negative", func(m *image.Meta) { m.Terminal.Index = -1 }, "terminal /dev/pts/-1"},
		{"terminal index huge", func(m *image.Meta) { m.Terminal.Index = 1 << 20 }, "terminal /dev/pts/1048576"},
		{"terminal foreground", func(m *image.Meta) { m.Terminal.Foreground = -5 }, "terminal foreground process group -5"},
		{"termios control characters", func(m *image.Meta) { m.Terminal.Termios.Cc = m.Terminal.Termios.Cc[:18] }, "18 control characters, want 19"},
		{"ctty without terminal", func(m *image.Meta) {
			m.Terminal = nil
			proc(m).FDs[0], proc(m).FDs[6] = sampleMeta().Processes[0].FDs[0], sampleMeta().Processes[0].FDs[5]
			proc(m).FDs[6].FD = 6
		}, "process 4242: controlling terminal without a terminal"},
		{"ctty of two sessions", func(m *image.Meta) {
			q := m.Processes[0]
			q.PID, q.SID, q.Threads, q.FDs, q.VMAs = 5000, 5000, q.Threads[:1], nil, nil
			q.Threads = []image.Thread{q.Threads[0]}
			q.Threads[0].TID = 5000
			m.Processes = append(m.Processes, q)
		}, "process 5000: controlling terminal of sessions 4242 and 5000"},
		{"tty fd without terminal", func(m *image.Meta) { m.Terminal, proc(m).CTTY = nil, false }, "process 4242 fd 0: terminal descriptor without a terminal"},
		{"tty fd without description", func(m *image.Meta) { proc(m).FDs[0].TTY = nil }, "process 4242 fd 0: terminal descriptor without a terminal"},
		{"tty fd of another terminal", func(m *image.Meta) { proc(m).FDs[0].TTY.Index = 4 }, "/dev/pts/4 is not the terminal /dev/pts/3"},
		{"tty description on a file", func(m *image.Meta) { proc(m).FDs[1].TTY = &image.TTY{Index: 3} }, `process 4242 fd 1: terminal description on a "file" descriptor`},
		{"tty fd deleted", func(m *image.Meta) { proc(m).FDs[0].Deleted, proc(m).FDs[0].FileID = true, 1 }, "process 4242 fd 0: deleted terminal"},
		{"tty path relative", func(m *image.Meta) { proc(m).FDs[0].Path = "pts/3" }, `fd 0: path "pts/3" is not absolute`},
		{"segment id negative", func(m *image.Meta) { m.SysVShm[0].ID = -1 }, "SysV segment id -1 invalid or repeated"},
		{"segment id repeated", func(m *image.Meta) { m.SysVShm[1].ID = 7 }, "SysV segment id 7 invalid or repeated"},
		{"segment id too large", func(m *image.Meta) { m.SysVShm[1].ID = 1 << 31 }, "SysV segment id 2147483648 invalid or repeated"},
		{"segment key repeated", func(m *image.Meta) { m.SysVShm[1].Key, m.SysVShm[1].Removed = 0x1234, false }, "SysV segment 8: key 0x1234 repeated"},
		{"removed segment with a key", func(m *image.Meta) { m.SysVShm[0].Removed = true }, "SysV segment 7: removed but still has key 0x1234"},
		{"segment size 0", func(m *image.Meta) { m.SysVShm[1].Size = 0 }, "SysV segment 8: size 0"},
		{"segment size huge", func(m *image.Meta) { m.SysVShm[1].Size = 1<<40 + 1 }, "SysV segment 8: size 1099511627777"},
		{"segment mode", func(m *image.Meta) { m.SysVShm[0].Mode = 0o1640 }, "SysV segment 7: mode 01640"},
		{"segment contents missing", func(m *image.Meta) { m.SysVShm[0].FileID = 9 }, "SysV segment 7: contents (file blob 9)"},
		{"segment contents not SysV", func(m *image.Meta) { m.SysVShm[0].FileID = 1 }, "SysV segment 7: contents (file blob 1)"},
		{"segment contents shared", func(m *image.Meta) { m.SysVShm[1].FileID, m.Files[2].Size = 2, 3*4096+100 }, "SysV segment 8: contents (file blob 2)"},
		{"segment contents of another size", func(m *image.Meta) { m.Files[1].Size = 4096 }, "SysV segment 7: contents (file blob 2)"},
		{"SysV contents of no segment", func(m *image.Meta) {
			m.Files = append(m.Files, image.FileBlob{ID: 4, Size: 1, Path: "/SYSV1", SysV: true})
		}, "file blob 4: SysV contents of no segment"},
		{"SysV contents as shmem", func(m *image.Meta) { m.Files[2].Shmem = true }, "file blob 3: SysV contents of no segment"},
		{"mapping of a missing segment", func(m *image.Meta) { sysv(m, 2).Inode = 9 }, "mapping 0x7f0000008000-0x7f0000009000 of SysV segment 9, which is not in the image"},
		{"mapping beyond the segment", func(m *image.Meta) { sysv(m, 1).Offset = 4 * 4096 }, "at offset 16384 is outside SysV segment 7"},
		{"mapping larger than the segment", func(m *image.Meta) { sysv(m, 2).End += 4096 }, "outside SysV segment 8"},
		{"mapping offset misaligned", func(m *image.Meta) { sysv(m, 1).Offset = 100 }, "at offset 100 is outside SysV segment 7"},
		{"mapping not shared", func(m *image.Meta) { sysv(m, 0).Flags = 2 }, "SysV segment 7: flags 0x2"},
		{"mapping with pages", func(m *image.Meta) { sysv(m, 0).Pages = 1 }, "SysV segment 7: flags 0x1, 1 pages"},
		{"segment attached by no process", func(m *image.Meta) {
			p := proc(m)
			p.VMAs = append(p.VMAs[:5], p.VMAs[6:]...)
		}, "SysV segment 8 is attached by no process"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			m := sharedMeta()
			tt.mutate(m)
			err := m.Validate()
			if !errors.Is(err, image.ErrInconsistent) {
				t.Fatalf("got %v, want ErrInconsistent", err)
			}
			if !strings.Contains(err.Error(), tt.want) {
				t.Errorf("message %q does not say %q", err, tt.want)
			}
		})
	}
}

// TestSharedSeeds checks that the committed seeds of FuzzMetaValidate for
// the terminal and SysV parts are sharedMeta and a broken variant of it (go
// test ./image -run TestSharedSeeds -update rewrites them).
func TestSharedSeeds(t *testing.T) {
	good, err := json.Marshal(sharedMeta())
	if err != nil {
		t.Fatal(err)
	}
	bad := sharedMeta()
	bad.Processes[0].VMAs[4].Offset = 8 * 4096
	broken, err := json.Marshal(bad)
	if err != nil {
		t.Fatal(err)
	}
	dir := filepath.Join("testdata", "fuzz", "FuzzMetaValidate")
	for name, b := range map[string][]byte{"shell-job-sysv": good, "sysv-mapping-outside": broken} {
		data := "go test fuzz v1\n[]byte(" + strconv.Quote(string(b)) + ")\n"
		path := filepath.Join(dir, name)
		if *update {
			if err := os.WriteFile(path, []byte(data), 0o644); err != nil {
				t.Fatal(err)
			}
			continue
		}
		got, err := os.ReadFile(path)
		if err != nil || string(got) != data {
			t.Errorf("seed %s is missing or stale (%v): run go test ./image -run TestSharedSeeds -update", path, err)
		}
	}
}
