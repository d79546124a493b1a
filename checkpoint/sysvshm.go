package checkpoint

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"os"
	"sort"
	"strconv"
	"strings"

	"golang.org/x/sys/unix"

	"github.com/godwit-dev/godwit/fault"
	"github.com/godwit-dev/godwit/image"
	"github.com/godwit-dev/godwit/internal/mem"
	"github.com/godwit-dev/godwit/internal/procfs"
)

// SysV shared memory. A segment (shmget) is mapped by shmat as a shared
// mapping of its shm file: smaps names it "/SYSV<key as %08x> (deleted)" and
// shows the segment's id as the inode number. Each attachment becomes a
// mapping of kind image.VMASysVShm; each segment is recorded once in
// image.Meta.SysVShm, its contents in a FileBlob marked SysV.

// isSysV tells the maps name of a SysV segment's mapping.
func isSysV(path string) bool { return strings.HasPrefix(path, "/SYSV") }

// sysvVMA describes mapping m of pid, an attachment of a SysV segment, in v.
// collectVMAs calls it for every mapping whose name isSysV. It changes
// nothing, so it is also the up-front check: a segment of another IPC
// namespace, of huge pages or attached in part is refused (one attached by a
// process outside the tree too, by checkAttachments).
func (d *dumper) sysvVMA(pid int, m procfs.Mapping, v *image.VMA) error {
	where := fmt.Sprintf("mapping %#x-%#x of SysV segment %d", m.Start, m.End, m.Inode)
	refuse := func(format string, args ...any) error {
		return &fault.Error{Code: fault.CodeUnsupported, Op: "dump", PID: pid, Addr: m.Start,
			Msg: where + ": " + fmt.Sprintf(format, args...)}
	}
	if !m.Shared {
		return refuse("a private mapping of a segment")
	}
	if m.HasFlag("ht") {
		return refuse("huge-page segments (SHM_HUGETLB) are not supported yet")
	}
	same, err := sameIPCNamespace(pid)
	if err != nil {
		return &fault.Error{Code: fault.CodeNoProcess, Op: "dump", PID: pid, Msg: "read the IPC namespace", Err: err}
	}
	if !same {
		return refuse("the process is in another IPC namespace than godwit: its segments are not supported yet")
	}
	seg, err := findSegment(int(m.Inode))
	if err != nil {
		return &fault.Error{Code: fault.CodeDumpFailed, Op: "dump", PID: pid, Addr: m.Start, Msg: where, Err: err}
	}
	maps, err := procfs.ReadMaps(pid)
	if err != nil {
		return &fault.Error{Code: fault.CodeNoProcess, Op: "dump", PID: pid, Msg: "read mappings", Err: err}
	}
	if !wholeAttachment(maps, m, seg.Size) {
		return refuse("attached in part (a piece of the attachment was unmapped or remapped): not supported yet")
	}
	v.Kind, v.Path, v.Deleted, v.FileID = image.VMASysVShm, m.Path, false, 0
	return nil
}

// sameIPCNamespace tells whether pid is in godwit's IPC namespace, the one
// /proc/sysvipc describes.
func sameIPCNamespace(pid int) (bool, error) {
	var theirs, ours unix.Stat_t
	if err := unix.Stat("/proc/"+strconv.Itoa(pid)+"/ns/ipc", &theirs); err != nil {
		return false, err
	}
	if err := unix.Stat("/proc/self/ns/ipc", &ours); err != nil {
		return false, err
	}
	return theirs.Dev == ours.Dev && theirs.Ino == ours.Ino, nil
}

// findSegment returns segment id of godwit's IPC namespace.
func findSegment(id int) (*procfs.SysVShm, error) {
	segs, err := procfs.ReadSysVShm()
	if err != nil {
		return nil, err
	}
	for i := range segs {
		if segs[i].ID == id {
			return &segs[i], nil
		}
	}
	return nil, fmt.Errorf("segment %d is not in /proc/sysvipc/shm", id)
}

// wholeAttachment tells whether the mappings of the attachment m belongs to
// (those of the same segment at the same base address) cover the whole
// segment, without gaps: shmat maps it whole, and restore attaches it so.
func wholeAttachment(maps []procfs.Mapping, m procfs.Mapping, size uint64) bool {
	base := m.Start - m.Offset
	var parts []procfs.Mapping
	for _, o := range maps {
		if isSysV(o.Path) && o.Inode == m.Inode && o.Start-o.Offset == base {
			parts = append(parts, o)
		}
	}
	sort.Slice(parts, func(i, j int) bool { return parts[i].Start < parts[j].Start })
	at := base
	for _, p := range parts {
		if p.Start != at {
			return false
		}
		at = p.End
	}
	return at == base+(size+mem.PageSize-1)/mem.PageSize*mem.PageSize
}

// checkAttachments refuses a SysV segment that the processes pids (the
// whole tree) do not hold every attachment of: another process uses it, and
// would no longer share it with the restored tree. The kernel counts one
// attachment per mapping.
func checkAttachments(pids []int) error {
	segs, err := procfs.ReadSysVShm()
	if errors.Is(err, os.ErrNotExist) {
		return nil // a kernel without SysV IPC
	}
	if err != nil {
		return &fault.Error{Code: fault.CodeDumpFailed, Op: "dump", Msg: "read /proc/sysvipc/shm", Err: err}
	}
	attached := false
	for _, s := range segs {
		attached = attached || s.Nattch > 0
	}
	if !attached {
		return nil // nothing to look for in the mappings
	}
	count := map[uint64]int{}
	first := map[uint64]procfs.Mapping{}
	who := map[uint64]int{}
	for _, pid := range pids {
		b, err := os.ReadFile("/proc/" + strconv.Itoa(pid) + "/maps")
		if err != nil {
			continue // gone
		}
		maps, err := procfs.ParseMaps(bytes.NewReader(b))
		if err != nil {
			return &fault.Error{Code: fault.CodeDumpFailed, Op: "dump", PID: pid, Msg: "read mappings", Err: err}
		}
		for _, m := range maps {
			if isSysV(m.Path) && m.Shared {
				if count[m.Inode] == 0 {
					first[m.Inode], who[m.Inode] = m, pid
				}
				count[m.Inode]++
			}
		}
	}
	for _, s := range segs {
		n, ok := count[uint64(s.ID)]
		if ok && s.Nattch > uint64(n) {
			m := first[uint64(s.ID)]
			return &fault.Error{Code: fault.CodeUnsupported, Op: "dump", PID: who[uint64(s.ID)], Addr: m.Start,
				Msg: fmt.Sprintf("SysV segment %d (key %#x) is attached %d times, %d of them in the tree: processes outside the tree use it",
					s.ID, uint32(s.Key), s.Nattch, n),
				Remedy: "dump the tree that holds every process attached to it, or detach the others first"}
		}
	}
	return nil
}

// recordSysV records, once per segment, the segments that the mappings of
// the frozen process pid attach, with their contents.
func (d *dumper) recordSysV(pid int, vmas []image.VMA) error {
	for _, v := range vmas {
		if v.Kind != image.VMASysVShm {
			continue
		}
		id := int(v.Inode)
		known := false
		for _, s := range d.meta.SysVShm {
			known = known || s.ID == id
		}
		if known {
			continue
		}
		seg, err := findSegment(id)
		if err != nil {
			return &fault.Error{Code: fault.CodeDumpFailed, Op: "dump", PID: pid, Addr: v.Start, Msg: "SysV segment", Err: err}
		}
		data, err := segmentContents(pid, v, seg)
		if err != nil {
			return &fault.Error{Code: fault.CodeDumpFailed, Op: "dump", PID: pid, Addr: v.Start,
				Msg: fmt.Sprintf("read the contents of SysV segment %d", id), Err: err}
		}
		blob := len(d.meta.Files) + 1
		d.meta.Files = append(d.meta.Files, image.FileBlob{ID: blob, Size: int64(len(data)), Mode: seg.Perms & 0o777,
			Path: v.Path, SysV: true})
		d.blobData = append(d.blobData, data)
		d.meta.SysVShm = append(d.meta.SysVShm, image.SysVShm{ID: id, Key: seg.Key, Mode: seg.Perms & 0o777,
			Size: seg.Size, UID: seg.UID, GID: seg.GID, CUID: seg.CUID, CGID: seg.CGID,
			Removed: seg.Perms&procfs.ShmDest != 0, Locked: seg.Perms&procfs.ShmLocked != 0, FileID: blob})
	}
	return nil
}

// segmentContents reads the whole segment: through the mapping's
// /proc/PID/map_files link (which opens the segment's file; it needs
// CAP_CHECKPOINT_RESTORE), or else by attaching it read-only in godwit.
// Reading the file leaves pages never touched unallocated.
func segmentContents(pid int, v image.VMA, seg *procfs.SysVShm) ([]byte, error) {
	mf := "/proc/" + strconv.Itoa(pid) + "/map_files/" + strconv.FormatUint(v.Start, 16) + "-" + strconv.FormatUint(v.End, 16)
	if f, err := os.Open(mf); err == nil {
		defer f.Close()
		data, err := io.ReadAll(io.LimitReader(f, int64(seg.Size)+1))
		if err != nil {
			return nil, err
		}
		if uint64(len(data)) != seg.Size {
			return nil, fmt.Errorf("read %d bytes of a %d-byte segment", len(data), seg.Size)
		}
		return data, nil
	}
	b, err := unix.SysvShmAttach(seg.ID, 0, unix.SHM_RDONLY)
	if err != nil {
		return nil, fmt.Errorf("shmat: %w", err)
	}
	defer unix.SysvShmDetach(b)
	if uint64(len(b)) != seg.Size {
		return nil, fmt.Errorf("attached %d bytes of a %d-byte segment", len(b), seg.Size)
	}
	return append([]byte(nil), b...), nil
}
