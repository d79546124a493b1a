package procfs

import (
	"fmt"
	"io"
	"strings"
)

// SysVShm is one SysV shared memory segment of /proc/sysvipc/shm. The file
// lists the segments of the IPC namespace of the process that opens it.
type SysVShm struct {
	Key    int32  // IPC_PRIVATE (0) for a private or removed segment
	ID     int    // shmid
	Perms  uint32 // mode: permission bits, SHM_DEST (01000), SHM_LOCKED (02000)
	Size   uint64 // bytes
	CPID   int    // creator
	LPID   int    // last shmat or shmdt
	Nattch uint64 // attachments (mappings) in all processes
	UID    uint32
	GID    uint32
	CUID   uint32
	CGID   uint32
}

// Mode bits of SysVShm.Perms beyond the permissions.
const (
	ShmDest   = 0o1000 // marked for destruction (IPC_RMID while attached)
	ShmLocked = 0o2000 // SHM_LOCK
)

// sysvShmColumns are the columns ParseSysVShm needs, found by name in the
// header line.
var sysvShmColumns = []string{"key", "shmid", "perms", "size", "cpid", "lpid", "nattch", "uid", "gid", "cuid", "cgid"}

// ParseSysVShm parses /proc/sysvipc/shm: a header line naming the columns,
// then one line per segment.
func ParseSysVShm(r io.Reader) ([]SysVShm, error) {
	lr := newLineReader(r, "sysvipc/shm")
	if !lr.next() {
		if err := lr.err(); err != nil {
			return nil, err
		}
		return nil, &ParseError{File: "sysvipc/shm", Err: fmt.Errorf("no header line")}
	}
	header := strings.Fields(lr.text())
	col := map[string]int{}
	for i, h := range header {
		col[h] = i
	}
	for _, c := range sysvShmColumns {
		if _, ok := col[c]; !ok {
			return nil, lr.errorf("no column %q in the header", c)
		}
	}
	var out []SysVShm
	for lr.next() {
		f := strings.Fields(lr.text())
		if len(f) != len(header) {
			return nil, lr.errorf("%d fields, the header names %d", len(f), len(header))
		}
		var s SysVShm
		get := func(name string) string { return f[col[name]] }
		key, err := parseInt("key", get("key"), 32)
		if err != nil {
			return nil, lr.errorf("%w", err)
		}
		s.Key = int32(key)
		id, err := parseInt("shmid", get("shmid"), 32)
		if err != nil || id < 0 {
			return nil, lr.errorf("bad shmid %q", get("shmid"))
		}
		s.ID = int(id)
		perms, err := parseUint("perms", get("perms"), 8, 32)
		if err != nil {
			return nil, lr.errorf("%w", err)
		}
		s.Perms = uint32(perms)
		if s.Size, err = parseUint("size", get("size"), 10, 64); err != nil {
			return nil, lr.errorf("%w", err)
		}
		for _, p := range []struct {
			name string
			dst  *int
		}{{"cpid", &s.CPID}, {"lpid", &s.LPID}} {
			v, err := parseInt(p.name, get(p.name), 32)
			if err != nil {
				return nil, lr.errorf("%w", err)
			}
			*p.dst = int(v)
		}
		if s.Nattch, err = parseUint("nattch", get("nattch"), 10, 64); err != nil {
			return nil, lr.errorf("%w", err)
		}
		for _, p := range []struct {
			name string
			dst  *uint32
		}{{"uid", &s.UID}, {"gid", &s.GID}, {"cuid", &s.CUID}, {"cgid", &s.CGID}} {
			v, err := parseUint(p.name, get(p.name), 10, 32)
			if err != nil {
				return nil, lr.errorf("%w", err)
			}
			*p.dst = uint32(v)
		}
		out = append(out, s)
	}
	if err := lr.err(); err != nil {
		return nil, err
	}
	return out, nil
}

// ReadSysVShm reads /proc/sysvipc/shm: the segments of the caller's IPC
// namespace.
func ReadSysVShm() ([]SysVShm, error) {
	return readProc("/proc/sysvipc/shm", ParseSysVShm)
}
