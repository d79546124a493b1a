package restore

import (
	"errors"
	"fmt"
	"os"
	"strconv"

	"golang.org/x/sys/unix"

	"github.com/godwit-dev/godwit/fault"
	"github.com/godwit-dev/godwit/image"
	"github.com/godwit-dev/godwit/internal/procfs"
)

// SysV shared memory segments (image.Meta.SysVShm) are recreated by godwit
// itself, in its own IPC namespace (the processes are restored into it),
// with their ids: the id is written to /proc/sys/kernel/shm_next_id before
// shmget, which needs CAP_CHECKPOINT_RESTORE (or CAP_SYS_ADMIN) over the
// namespace. godwit attaches each segment to write its contents from the
// FileData records, then each process attaches it at its address with an
// injected shmat (attachSysV). Owner and mode are set, and a segment that was
// marked for destruction is removed again, once every process is whole
// (commitShared); a failed restore removes them all (closeObjects).

// Kernel constants that x/sys lacks.
const (
	shmRemap = 0o40000 // shmat: replace what is mapped there
	shmLock  = 11      // shmctl: lock the pages in memory
)

const shmNextID = "/proc/sys/kernel/shm_next_id"

// segment is a SysV segment recreated by this restore.
type segment struct {
	img  *image.SysVShm
	data []byte // godwit's attachment while the contents are written
}

// createSegments recreates every SysV segment of the image, empty, and
// attaches each in godwit for its contents.
func (t *tree) createSegments() error {
	o := t.shared()
	for i := range t.meta.SysVShm {
		s := &t.meta.SysVShm[i]
		id, err := createSegment(s, t.opts.UserNS)
		if err != nil {
			return err
		}
		seg := &segment{img: s}
		o.segs = append(o.segs, seg)
		if seg.data, err = unix.SysvShmAttach(id, 0, 0); err != nil {
			return segmentErr(s, "attach it to write its contents", err)
		}
		if uint64(len(seg.data)) != s.Size {
			return segmentErr(s, fmt.Sprintf("attached %d bytes", len(seg.data)), nil)
		}
	}
	return nil
}

func segmentErr(s *image.SysVShm, msg string, err error) error {
	return &fault.Error{Code: fault.CodeRestoreFailed, Op: "restore",
		Msg: fmt.Sprintf("SysV segment %d: %s", s.ID, msg), Err: err}
}

// inUse is the error of a segment id or key of the image taken in godwit's
// IPC namespace.
func inUse(s *image.SysVShm, what string, by procfs.SysVShm) error {
	return &fault.Error{Code: fault.CodePIDInUse, Op: "restore",
		Msg: fmt.Sprintf("SysV segment %s in use: segment %d (key %#x, created by pid %d, %d attached)",
			what, by.ID, uint32(by.Key), by.CPID, by.Nattch),
		Err:    unix.EEXIST,
		Remedy: fmt.Sprintf("remove segment %d (ipcrm -m %d) or restore in another IPC namespace", by.ID, by.ID)}
}

// createSegment creates segment s with its id, key, size and mode.
func createSegment(s *image.SysVShm, userns bool) (int, error) {
	segs, err := procfs.ReadSysVShm()
	if err != nil {
		return 0, segmentErr(s, "read /proc/sysvipc/shm", err)
	}
	for _, o := range segs {
		if o.ID == s.ID {
			return 0, inUse(s, "id "+strconv.Itoa(s.ID), o)
		}
		if s.Key != 0 && o.Key == s.Key {
			return 0, inUse(s, fmt.Sprintf("key %#x", uint32(s.Key)), o)
		}
	}
	if err := os.WriteFile(shmNextID, []byte(strconv.Itoa(s.ID)), 0); err != nil {
		remedy := "run godwit restore as root"
		if userns {
			remedy = "--userns restores into godwit's IPC namespace, where setting ids needs root: run godwit restore as root"
		}
		return 0, &fault.Error{Code: fault.CodePermission, Op: "restore", Path: shmNextID,
			Msg: fmt.Sprintf("SysV segment %d: setting the id of the next segment needs CAP_CHECKPOINT_RESTORE over the IPC namespace", s.ID),
			Err: err, Remedy: remedy}
	}
	id, err := unix.SysvShmGet(int(s.Key), int(s.Size), unix.IPC_CREAT|unix.IPC_EXCL|int(s.Mode&0o777))
	if err != nil {
		os.WriteFile(shmNextID, []byte("-1"), 0) // unused: do not leave it to the next shmget
		if errors.Is(err, unix.EEXIST) {         // created meanwhile
			return 0, &fault.Error{Code: fault.CodePIDInUse, Op: "restore",
				Msg: fmt.Sprintf("SysV segment key %#x in use", uint32(s.Key)), Err: err,
				Remedy: "remove the segment with that key (ipcrm -M KEY) or restore in another IPC namespace"}
		}
		return 0, segmentErr(s, fmt.Sprintf("shmget of %d bytes", s.Size), err)
	}
	if id != s.ID {
		// The kernel takes the next free index when the one asked for is
		// taken (a segment created meanwhile).
		unix.SysvShmCtl(id, unix.IPC_RMID, nil)
		return 0, &fault.Error{Code: fault.CodePIDInUse, Op: "restore",
			Msg: fmt.Sprintf("SysV segment id %d in use (shmget gave %d)", s.ID, id), Err: unix.EEXIST,
			Remedy: fmt.Sprintf("remove segment %d (ipcrm -m %d) or restore in another IPC namespace", s.ID, s.ID)}
	}
	if s.Locked {
		if _, err := unix.SysvShmCtl(id, shmLock, nil); err != nil {
			unix.SysvShmCtl(id, unix.IPC_RMID, nil)
			return 0, segmentErr(s, "SHM_LOCK", err)
		}
	}
	return id, nil
}

// fillSegment writes a FileData record of blob id into its segment; it
// reports false when id is not the contents of a segment.
func (t *tree) fillSegment(id int, off int64, data []byte) (bool, error) {
	for _, seg := range t.shared().segs {
		if seg.img.FileID != id {
			continue
		}
		if seg.data == nil || off < 0 || uint64(off)+uint64(len(data)) > uint64(len(seg.data)) {
			return true, fmt.Errorf("%w: %d bytes at %d for SysV segment %d of %d bytes",
				image.ErrInconsistent, len(data), off, seg.img.ID, seg.img.Size)
		}
		copy(seg.data[off:], data)
		return true, nil
	}
	return false, nil
}

// detachSegments detaches godwit from every segment it attached.
func (o *objects) detachSegments() {
	for _, seg := range o.segs {
		if seg.data != nil {
			unix.SysvShmDetach(seg.data)
			seg.data = nil
		}
	}
}

// attachSysV attaches, at their addresses, the SysV segments the process had
// attached: one shmat per attachment (the mappings of one segment at one base
// address), read-only when no mapping of it may be written, then each part
// gets its own protection.
func (rs *restorer) attachSysV() error {
	vmas := rs.proc.VMAs
	done := map[[2]uint64]bool{}
	for _, v := range vmas {
		if v.Kind != image.VMASysVShm {
			continue
		}
		base := v.Start - v.Offset
		if done[[2]uint64{v.Inode, base}] {
			continue
		}
		done[[2]uint64{v.Inode, base}] = true
		var parts []image.VMA
		writable := false
		for _, p := range vmas {
			if p.Kind == image.VMASysVShm && p.Inode == v.Inode && p.Start-p.Offset == base {
				parts = append(parts, p)
				writable = writable || p.Prot&unix.PROT_WRITE != 0 || hasFlag(p.VmFlags, "mw")
			}
		}
		flags, prot := uint64(shmRemap), uint32(unix.PROT_READ|unix.PROT_WRITE)
		if !writable {
			flags, prot = flags|unix.SHM_RDONLY, unix.PROT_READ
		}
		got, err := rs.call(unix.SYS_SHMAT, v.Inode, base, flags)
		if err != nil || got != base {
			return &fault.Error{Code: fault.CodeRestoreFailed, Op: "restore", PID: rs.proc.PID, Addr: base,
				Msg: fmt.Sprintf("attach SysV segment %d (shmat gave %#x)", v.Inode, got), Err: err}
		}
		for _, p := range parts {
			if p.Prot == prot {
				continue
			}
			if _, err := rs.call(unix.SYS_MPROTECT, p.Start, p.Len(), uint64(p.Prot)); err != nil {
				return &fault.Error{Code: fault.CodeRestoreFailed, Op: "restore", PID: rs.proc.PID, Addr: p.Start,
					Msg: fmt.Sprintf("protect SysV segment %d at %#x-%#x", v.Inode, p.Start, p.End), Err: err}
			}
		}
	}
	return nil
}

func hasFlag(flags []string, f string) bool {
	for _, x := range flags {
		if x == f {
			return true
		}
	}
	return false
}

// commitSegments gives each segment its owner and mode and removes those
// that were marked for destruction: they go with their last attachment.
func (o *objects) commitSegments(rs *restorer) {
	for _, seg := range o.segs {
		s := seg.img
		var ds unix.SysvShmDesc
		if _, err := unix.SysvShmCtl(s.ID, unix.IPC_STAT, &ds); err == nil {
			ds.Perm.Uid, ds.Perm.Gid, ds.Perm.Mode = s.UID, s.GID, s.Mode&0o777
			if _, err := unix.SysvShmCtl(s.ID, unix.IPC_SET, &ds); err != nil {
				rs.warn("SysV segment %d: owner %d:%d and mode %#o not set: %v", s.ID, s.UID, s.GID, s.Mode, err)
			}
		}
		if s.Removed {
			if _, err := unix.SysvShmCtl(s.ID, unix.IPC_RMID, nil); err != nil {
				rs.warn("SysV segment %d: not marked for destruction again: %v", s.ID, err)
			}
		}
	}
	o.segs = nil // they belong to the processes now
}

// removeSegments removes the segments of a failed restore.
func (o *objects) removeSegments() {
	o.detachSegments()
	for _, seg := range o.segs {
		unix.SysvShmCtl(seg.img.ID, unix.IPC_RMID, nil)
	}
	o.segs = nil
}
