package restore

import (
	"crypto/rand"
	"encoding/hex"
	"fmt"
	"os"
	"path/filepath"
	"strings"

	"golang.org/x/sys/unix"

	"github.com/godwit-dev/godwit/fault"
	"github.com/godwit-dev/godwit/image"
)

// readFileData reads the FileData records that follow the metadata into
// ghost files: a deleted file comes back under its old name when that name
// is free (so that /proc shows the same path), otherwise under a hidden name
// next to it, and is unlinked again once the process holds it open.
func (rs *restorer) readFileData() error {
	// What the processes share beyond descriptors first: a refusal comes
	// before anything else is made.
	if err := rs.openTerminal(); err != nil {
		return err
	}
	if err := rs.createSegments(); err != nil {
		return err
	}
	defer rs.shared().detachSegments()
	rs.ghosts = map[int]string{}
	files := map[int]*os.File{}
	defer func() {
		for id, f := range files {
			if !rs.isShmem(id) {
				f.Close()
			}
		}
	}()
	for _, b := range rs.meta.Files {
		if b.SysV {
			continue // the contents of a segment: see createSegments
		}
		if b.Shmem {
			// Memory no path names comes back as a memfd of godwit's, which
			// the processes open through /proc (their /proc is godwit's, also
			// in a new PID namespace) and map: one object, shared by all.
			name := strings.TrimPrefix(b.Path, "/memfd:")
			if name == b.Path {
				name = "godwit-shmem"
			}
			fd, err := unix.MemfdCreate(name, unix.MFD_CLOEXEC)
			if err != nil {
				return rs.fail("memfd_create", err)
			}
			f := os.NewFile(uintptr(fd), name)
			if err := f.Truncate(b.Size); err != nil {
				f.Close()
				return rs.fail("size shared memory", err)
			}
			rs.memfds = append(rs.memfds, f)
			rs.ghosts[b.ID] = fmt.Sprintf("/proc/%d/fd/%d", os.Getpid(), fd)
			files[b.ID] = f
			continue
		}
		path := b.Path
		f, err := os.OpenFile(path, os.O_RDWR|os.O_CREATE|os.O_EXCL, os.FileMode(b.Mode&0o777)|0o600)
		if err != nil {
			var rnd [6]byte
			rand.Read(rnd[:])
			path = filepath.Join(filepath.Dir(b.Path), ".godwit-ghost-"+hex.EncodeToString(rnd[:]))
			f, err = os.OpenFile(path, os.O_RDWR|os.O_CREATE|os.O_EXCL, os.FileMode(b.Mode&0o777)|0o600)
		}
		if err != nil {
			return &fault.Error{Code: fault.CodeRestoreFailed, Op: "restore", Path: b.Path,
				Msg: "recreate a deleted file", Err: err, Remedy: "its directory must exist and be writable"}
		}
		rs.ghostTmp = append(rs.ghostTmp, path)
		rs.ghosts[b.ID] = path
		files[b.ID] = f
	}
	for {
		if len(rs.meta.Files) == 0 {
			return nil
		}
		off := rs.ir.Offset()
		rec, err := rs.peekFileData()
		if err != nil {
			return err
		}
		if rec == nil {
			break
		}
		if ok, err := rs.fillSegment(rec.FileID, rec.Offset, rec.Data); ok {
			if err != nil {
				return badImage(&image.FormatError{Offset: off, Type: rec.Type, Err: err})
			}
			continue
		}
		f := files[rec.FileID]
		if f == nil {
			return badImage(&image.FormatError{Offset: off, Type: rec.Type,
				Err: fmt.Errorf("%w: data for unknown file %d", image.ErrInconsistent, rec.FileID)})
		}
		if _, err := f.WriteAt(rec.Data, rec.Offset); err != nil {
			return rs.fail("write a deleted file's content", err)
		}
	}
	return nil
}

// peekFileData returns the next FileData record, or nil (keeping the record
// for writePages) when the next one is something else.
func (rs *restorer) peekFileData() (*image.Record, error) {
	rec, err := rs.ir.Next()
	if err != nil {
		return nil, badImage(err)
	}
	if rec.Type != image.TypeFileData {
		rs.pending = rec
		return nil, nil
	}
	return rec, nil
}

func (t *tree) isShmem(id int) bool {
	for _, b := range t.meta.Files {
		if b.ID == id {
			return b.Shmem
		}
	}
	return false
}

func (t *tree) removeGhosts() {
	for _, f := range t.memfds {
		f.Close()
	}
	t.memfds = nil
	for _, p := range t.ghostTmp {
		os.Remove(p)
	}
	t.ghostTmp = nil
}

// openFlagsMask keeps the open flags that mean something for a reopen.
const openFlagsMask = unix.O_ACCMODE | unix.O_APPEND | unix.O_NONBLOCK | unix.O_CLOEXEC | unix.O_DIRECTORY |
	unix.O_NOFOLLOW | unix.O_PATH | unix.O_NOATIME | unix.O_DIRECT | unix.O_SYNC | unix.O_DSYNC | unix.O_LARGEFILE

// restoreFiles reopens every descriptor at its number, with its flags and offset.
func (rs *restorer) restoreFiles() error {
	// The stub handed down /dev/null as 0, 1 and 2.
	for fd := 0; fd < 3; fd++ {
		rs.call(unix.SYS_CLOSE, uint64(fd))
	}
	var epolls []image.FD
	for _, f := range rs.proc.FDs {
		err := rs.restoreFD(f)
		if err == errEpollLater {
			epolls = append(epolls, f)
			continue
		}
		if err != nil {
			return (&fault.Error{Code: fault.CodeRestoreFailed, Op: "restore", PID: rs.proc.PID, Path: f.Path,
				Msg: "reopen " + f.Kind, Err: err}).WithFD(f.FD)
		}
	}
	for _, f := range epolls {
		cloexec := uint64(0)
		if f.Flags&unix.O_CLOEXEC != 0 {
			cloexec = unix.O_CLOEXEC
		}
		if err := rs.restoreEpoll(f, cloexec); err != nil {
			return (&fault.Error{Code: fault.CodeRestoreFailed, Op: "restore", PID: rs.proc.PID,
				Msg: "recreate epoll", Err: err}).WithFD(f.FD)
		}
	}
	// The descriptor channel is not part of the process.
	rs.call(unix.SYS_CLOSE, uint64(rs.chanFD))
	return nil
}

func (rs *restorer) restoreFD(f image.FD) error {
	cloexec := uint64(0)
	if f.Flags&unix.O_CLOEXEC != 0 {
		cloexec = unix.O_CLOEXEC
	}
	if f.SameAs >= 0 {
		_, err := rs.call(unix.SYS_DUP3, uint64(f.SameAs), uint64(f.FD), cloexec)
		return err
	}
	if f.Inherit != nil {
		return rs.takeFD(*f.Inherit, f.FD, cloexec)
	}
	if f.Kind == image.FDTTY {
		return rs.restoreTTY(f, cloexec)
	}
	if f.Kind == image.FDObject {
		obj, err := rs.object(f)
		if err != nil {
			return err
		}
		return rs.plant(obj, f.FD, cloexec)
	}
	path := f.Path
	if f.Deleted {
		path = rs.ghosts[f.FileID]
	}
	p, err := rs.putString(0, path)
	if err != nil {
		return err
	}
	flags := uint64(f.Flags&openFlagsMask) | unix.O_CLOEXEC
	got, err := rs.call(unix.SYS_OPENAT, atFDCWD, p, flags, 0)
	if err != nil {
		return err
	}
	if int(got) != f.FD {
		if _, err := rs.call(unix.SYS_DUP3, got, uint64(f.FD), cloexec); err != nil {
			return err
		}
		rs.call(unix.SYS_CLOSE, got)
	} else if cloexec == 0 {
		if _, err := rs.call(unix.SYS_FCNTL, got, unix.F_SETFD, 0); err != nil {
			return err
		}
	}
	if f.Kind == image.FDFile || (f.Kind == image.FDDir && f.Pos != 0) {
		if _, err := rs.call(unix.SYS_LSEEK, uint64(f.FD), uint64(f.Pos), 0); err != nil {
			if f.Kind == image.FDFile {
				return fmt.Errorf("seek to %d: %w", f.Pos, err)
			}
			rs.warn("fd %d: directory offset not restored: %v", f.FD, err)
		}
	}
	return nil
}

// takeFD makes fd of the process a duplicate of another restored process's
// descriptor: the same open file description, as fork or SCM_RIGHTS left it.
func (rs *restorer) takeFD(from image.FDRef, fd int, cloexec uint64) error {
	src := rs.byPID[from.PID]
	if src == nil || src.pid == 0 {
		return fmt.Errorf("fd %d of pid %d is not restored", from.FD, from.PID)
	}
	view := rs.viewOf(src)
	if view == 0 {
		return &fault.Error{Code: fault.CodeUnsupported, Op: "restore", PID: rs.proc.PID,
			Msg: fmt.Sprintf("fd %d is shared with pid %d, outside this process's PID namespace", fd, src.proc.PID)}
	}
	pidfd, err := rs.call(unix.SYS_PIDFD_OPEN, uint64(view), 0)
	if err != nil {
		return fmt.Errorf("pidfd_open(%d): %w", src.pid, err)
	}
	got, err := rs.call(unix.SYS_PIDFD_GETFD, pidfd, uint64(from.FD), 0)
	rs.call(unix.SYS_CLOSE, pidfd)
	if err != nil {
		return fmt.Errorf("pidfd_getfd(%d, %d): %w", src.pid, from.FD, err)
	}
	if int(got) != fd {
		if _, err := rs.call(unix.SYS_DUP3, got, uint64(fd), cloexec); err != nil {
			return err
		}
		rs.call(unix.SYS_CLOSE, got)
	} else if cloexec == 0 {
		if _, err := rs.call(unix.SYS_FCNTL, got, unix.F_SETFD, 0); err != nil {
			return err
		}
	}
	return nil
}
