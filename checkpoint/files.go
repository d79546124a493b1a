package checkpoint

import (
	"encoding/json"
	"fmt"
	"io"
	"os"
	"strconv"
	"strings"

	"golang.org/x/sys/unix"

	"github.com/godwit-dev/godwit/fault"
	"github.com/godwit-dev/godwit/image"
	"github.com/godwit-dev/godwit/internal/files"
	"github.com/godwit-dev/godwit/internal/procfs"
)

// safeDevices are the character devices a dump may reopen by path.
var safeDevices = map[uint64]string{
	unix.Mkdev(1, 3): "/dev/null",
	unix.Mkdev(1, 5): "/dev/zero",
	unix.Mkdev(1, 7): "/dev/full",
	unix.Mkdev(1, 8): "/dev/random",
	unix.Mkdev(1, 9): "/dev/urandom",
}

const kcmpFile = 0

// fdKind describes the object behind a link of /proc/PID/fd for errors.
func fdKind(link string) string {
	switch {
	case strings.HasPrefix(link, "pipe:"):
		return "pipe"
	case strings.HasPrefix(link, "socket:"):
		return "socket"
	case strings.HasPrefix(link, "anon_inode:"):
		return strings.Trim(strings.TrimPrefix(link, "anon_inode:"), "[]")
	case strings.HasPrefix(link, "/dev/pts/"), strings.HasPrefix(link, "/dev/tty"), link == "/dev/ptmx", link == "/dev/console":
		return "terminal"
	}
	return "file " + link
}

func unsupportedFD(pid, fd int, kind string) error {
	return (&fault.Error{Code: fault.CodeUnsupported, Op: "dump", PID: pid,
		Msg:    fmt.Sprintf("descriptor of kind %s is not supported yet", kind),
		Remedy: "close it before the dump, or redirect it to a file"}).WithFD(fd)
}

// collectFDs describes every open descriptor of pid. It changes nothing, so
// it is also the up-front check that every descriptor can be dumped: with
// precheck set the process is still running, and only a refusal counts (a
// pipe's data, say, may change under the inspection; it is read again once
// the process is frozen).
func (d *dumper) collectFDs(pid int, precheck bool) ([]image.FD, error) {
	fds, err := procfs.FDs(pid)
	if err != nil {
		return nil, &fault.Error{Code: fault.CodeNoProcess, Op: "dump", PID: pid, Msg: "list descriptors", Err: err}
	}
	if precheck && d.opts.ShellJob {
		// A controlling terminal that is not the one of the descriptors is
		// refused now, while nothing is stopped.
		if stat, err := procfs.ReadStat(pid); err == nil {
			if _, err := d.noteCTTY(pid, stat); err != nil {
				return nil, err
			}
		}
	}
	type key struct{ dev, ino uint64 }
	seen := map[key][]int{}
	var out []image.FD
	pidfd := -1
	defer func() {
		if pidfd >= 0 {
			unix.Close(pidfd)
		}
	}()
	for _, fd := range fds {
		p := "/proc/" + strconv.Itoa(pid) + "/fd/" + strconv.Itoa(fd)
		link, err := os.Readlink(p)
		if err != nil {
			continue // closed meanwhile
		}
		info, err := procfs.ReadFDInfo(pid, fd)
		if err != nil {
			continue
		}
		var st unix.Stat_t
		if err := unix.Stat(p, &st); err != nil {
			return nil, unsupportedFD(pid, fd, fdKind(link))
		}
		f := image.FD{FD: fd, Flags: info.Flags, Pos: info.Pos, Mode: st.Mode, SameAs: -1}
		if isObject(link, &st, info.Flags) {
			// Pipes, sockets, event fds, memfds...: described by package files.
			if pidfd < 0 {
				if pidfd, err = unix.PidfdOpen(pid, 0); err != nil {
					return nil, &fault.Error{Code: fault.CodeNoProcess, Op: "dump", PID: pid, Msg: "pidfd_open", Err: err}
				}
			}
			desc, err := files.InspectWith(pidfd, pid, fd, d.inspectOptions(precheck))
			if err != nil {
				if precheck && fault.CodeOf(err) != fault.CodeUnsupported {
					continue
				}
				return nil, err
			}
			if f.Object, err = json.Marshal(desc); err != nil {
				return nil, err
			}
			f.Kind, f.Path = image.FDObject, link
		} else if err := d.fileFD(pid, fd, p, link, &st, info.Flags, &f); err != nil {
			return nil, err
		}
		k := key{uint64(st.Dev), st.Ino}
		for _, other := range seen[k] {
			if r, err := kcmp(pid, pid, kcmpFile, other, fd); err == nil && r == 0 {
				f.SameAs = other
				break
			}
		}
		seen[k] = append(seen[k], fd)
		out = append(out, f)
	}
	return out, nil
}

// isObject tells descriptors that package files describes: everything but
// regular files, directories, devices and O_PATH descriptors.
func isObject(link string, st *unix.Stat_t, flags uint32) bool {
	if flags&unix.O_PATH != 0 {
		return false
	}
	switch st.Mode & unix.S_IFMT {
	case unix.S_IFIFO, unix.S_IFSOCK:
		return true
	case unix.S_IFREG:
		return strings.HasPrefix(link, "/memfd:")
	}
	return strings.HasPrefix(link, "anon_inode:")
}

// fileFD describes a descriptor of a file with a path.
func (d *dumper) fileFD(pid, fd int, p, link string, st *unix.Stat_t, flags uint32, f *image.FD) error {
	info := struct{ Flags uint32 }{flags}
	path := link
	deleted := false
	if st.Mode&unix.S_IFMT == unix.S_IFREG && st.Nlink == 0 {
		deleted = true
		path = strings.TrimSuffix(link, " (deleted)")
	}
	if strings.HasPrefix(path, "/memfd:") {
		return unsupportedFD(pid, fd, "memfd")
	}
	if !strings.HasPrefix(path, "/") {
		return unsupportedFD(pid, fd, fdKind(link))
	}
	f.Path = path
	switch {
	case info.Flags&unix.O_PATH != 0:
		f.Kind = image.FDPath
	case st.Mode&unix.S_IFMT == unix.S_IFREG:
		f.Kind = image.FDFile
	case st.Mode&unix.S_IFMT == unix.S_IFDIR:
		f.Kind = image.FDDir
	case st.Mode&unix.S_IFMT == unix.S_IFCHR:
		if isTerminalDevice(st.Rdev) {
			return d.ttyFD(pid, fd, path, st, f)
		}
		if _, ok := safeDevices[st.Rdev]; !ok {
			return unsupportedFD(pid, fd, fdKind(link))
		}
		f.Kind = image.FDChr
		f.Rdev = st.Rdev
	default:
		return unsupportedFD(pid, fd, fdKind(link))
	}
	if deleted {
		if f.Kind == image.FDPath {
			return unsupportedFD(pid, fd, "O_PATH descriptor of a deleted file")
		}
		f.Deleted = true
		id, err := d.blob(p, path, uint64(st.Dev), st.Ino, st.Mode)
		if err != nil {
			return (&fault.Error{Code: fault.CodeDumpFailed, Op: "dump", PID: pid, Msg: "copy deleted file", Err: err}).WithFD(fd)
		}
		f.FileID = id
	}
	return nil
}

func kcmp(pid1, pid2, typ, idx1, idx2 int) (int, error) {
	r, _, e := unix.Syscall6(unix.SYS_KCMP, uintptr(pid1), uintptr(pid2), uintptr(typ), uintptr(idx1), uintptr(idx2), 0)
	if e != 0 {
		return -1, e
	}
	return int(r), nil
}

// blob records the content of a file that exists only while open, readable
// at the magic link open, once per inode.
func (d *dumper) blob(open, path string, dev, ino uint64, mode uint32) (int, error) {
	k := [2]uint64{dev, ino}
	if id, ok := d.blobIDs[k]; ok {
		return id, nil
	}
	f, err := os.Open(open)
	if err != nil {
		return 0, err
	}
	defer f.Close()
	data, err := io.ReadAll(f)
	if err != nil {
		return 0, err
	}
	id := len(d.meta.Files) + 1
	d.meta.Files = append(d.meta.Files, image.FileBlob{ID: id, Size: int64(len(data)), Mode: mode & 0o7777, Path: path})
	d.blobData = append(d.blobData, data)
	d.blobIDs[k] = id
	return id, nil
}
