// Package mount makes mounts with the new mount API: fsopen/fsconfig/fsmount
// for fresh filesystems, open_tree for bind mounts, mount_setattr for flags,
// propagation and id-mapping, and move_mount to attach a detached mount onto
// a file descriptor.
//
// Errors tell "this kernel lacks the call" (ErrKernel, from ENOSYS) from
// "this filesystem cannot do that" (ErrNotSupported, from EINVAL on
// mount_setattr and fsconfig) from a permission refusal (EPERM).
package mount

import (
	"errors"
	"fmt"
	"os"

	"golang.org/x/sys/unix"

	"github.com/godwit-dev/godwit/fault"
)

// Sentinels of this package; they match fault codes as well.
var (
	// ErrKernel: the running kernel does not implement the call (ENOSYS).
	ErrKernel = fault.ErrKernel
	// ErrNotSupported: the filesystem refuses the operation (EINVAL).
	ErrNotSupported = fault.ErrUnsupported
)

// Mount is a detached mount (the fd fsmount or open_tree returned). It owns
// the fd; once attached with MoveTo it can still be closed.
type Mount struct {
	f    *os.File
	what string
}

// Close releases the mount fd. A detached mount that was never attached is
// unmounted by the kernel.
func (m *Mount) Close() error { return m.f.Close() }

// FD returns the mount fd, owned by m.
func (m *Mount) FD() int { return int(m.f.Fd()) }

// File returns the mount fd as a file, owned by m.
func (m *Mount) File() *os.File { return m.f }

// FromFile wraps a mount fd received from another process.
func FromFile(f *os.File, what string) *Mount { return &Mount{f: f, what: what} }

// Option is one fsconfig parameter: a key alone is a flag.
type Option struct{ Key, Value string }

// New creates a fresh filesystem of type fstype with fsopen/fsconfig and
// returns it as a detached mount with attrs (MOUNT_ATTR_*) applied.
func New(fstype, source string, opts []Option, attrs uint64) (*Mount, error) {
	fsfd, err := unix.Fsopen(fstype, unix.FSOPEN_CLOEXEC)
	if err != nil {
		return nil, wrap(err, "fsopen", fstype, fstype)
	}
	defer unix.Close(fsfd)
	if source != "" {
		if err := unix.FsconfigSetString(fsfd, "source", source); err != nil {
			return nil, wrap(err, "fsconfig source", fstype, source)
		}
	}
	for _, o := range opts {
		if o.Value == "" {
			err = unix.FsconfigSetFlag(fsfd, o.Key)
		} else {
			err = unix.FsconfigSetString(fsfd, o.Key, o.Value)
		}
		if err != nil {
			return nil, wrap(err, "fsconfig "+o.Key, fstype, o.Key+"="+o.Value)
		}
	}
	if err := unix.FsconfigCreate(fsfd); err != nil {
		return nil, wrap(err, "fsconfig create", fstype, fstype)
	}
	mfd, err := unix.Fsmount(fsfd, unix.FSMOUNT_CLOEXEC, int(attrs))
	if err != nil {
		return nil, wrap(err, "fsmount", fstype, fstype)
	}
	return &Mount{f: os.NewFile(uintptr(mfd), fstype), what: fstype}, nil
}

// Clone makes a detached copy (bind mount) of the mount tree at dirfd/path
// with open_tree(OPEN_TREE_CLONE). With recursive, submounts come along.
// dirfd may be an O_PATH handle with path "" (AT_EMPTY_PATH).
func Clone(dirfd int, path string, recursive bool) (*Mount, error) {
	flags := uint(unix.OPEN_TREE_CLONE | unix.OPEN_TREE_CLOEXEC)
	if recursive {
		flags |= unix.AT_RECURSIVE
	}
	if path == "" {
		flags |= unix.AT_EMPTY_PATH
	}
	fd, err := unix.OpenTree(dirfd, path, flags)
	if err != nil {
		return nil, wrap(err, "open_tree", "bind", path)
	}
	return &Mount{f: os.NewFile(uintptr(fd), "bind:"+path), what: "bind"}, nil
}

// SetAttr sets and clears MOUNT_ATTR_* flags on the mount (and its submounts
// when recursive).
func (m *Mount) SetAttr(set, clear uint64, recursive bool) error {
	return setattr(m.FD(), set, clear, 0, 0, recursive, m.what)
}

// SetPropagation sets the propagation type (unix.MS_PRIVATE, MS_SLAVE, ...)
// of the mount tree at path.
func SetPropagation(path string, prop uint64, recursive bool) error {
	flags := uint(0)
	if recursive {
		flags = unix.AT_RECURSIVE
	}
	attr := unix.MountAttr{Propagation: prop}
	if err := unix.MountSetattr(unix.AT_FDCWD, path, flags, &attr); err != nil {
		return wrap(err, "mount_setattr propagation", "", path)
	}
	return nil
}

// IDMap id-maps the detached mount through the user namespace usernsFD: an
// on-disk id d appears as the id d maps to in that namespace. The mount must
// not have been attached yet. Done by a caller without CAP_SYS_ADMIN over the
// filesystem's superblock it fails with EPERM; on a filesystem without
// idmapping support (overlayfs itself) with EINVAL (ErrNotSupported).
func (m *Mount) IDMap(usernsFD int, recursive bool) error {
	return setattr(m.FD(), unix.MOUNT_ATTR_IDMAP, 0, 0, uint64(usernsFD), recursive, m.what)
}

func setattr(fd int, set, clear, prop, userns uint64, recursive bool, what string) error {
	flags := uint(unix.AT_EMPTY_PATH)
	if recursive {
		flags |= unix.AT_RECURSIVE
	}
	attr := unix.MountAttr{Attr_set: set, Attr_clr: clear, Propagation: prop, Userns_fd: userns}
	if err := unix.MountSetattr(fd, "", flags, &attr); err != nil {
		return wrap(err, fmt.Sprintf("mount_setattr set=%#x clear=%#x", set, clear), what, "")
	}
	return nil
}

// MoveTo attaches the mount onto the file or directory that target (an
// O_PATH handle) refers to. Because the target is a descriptor, a path
// component swapped after it was resolved cannot redirect the mount.
func (m *Mount) MoveTo(target *os.File) error {
	err := unix.MoveMount(m.FD(), "", int(target.Fd()), "", unix.MOVE_MOUNT_F_EMPTY_PATH|unix.MOVE_MOUNT_T_EMPTY_PATH)
	if err != nil {
		return wrap(err, "move_mount", m.what, target.Name())
	}
	return nil
}

// MoveToPath attaches the mount at an absolute path of the caller's view.
func (m *Mount) MoveToPath(path string) error {
	if err := unix.MoveMount(m.FD(), "", unix.AT_FDCWD, path, unix.MOVE_MOUNT_F_EMPTY_PATH); err != nil {
		return wrap(err, "move_mount", m.what, path)
	}
	return nil
}

// wrap classifies a mount API error.
func wrap(err error, op, fstype, path string) error {
	e := &fault.Error{Code: fault.CodeIO, Op: op, Path: path, Err: err}
	if fstype != "" {
		e.Msg = fstype
	}
	switch {
	case errors.Is(err, unix.ENOSYS):
		e.Code = fault.CodeKernel
		e.Remedy = "the new mount API needs Linux 5.2, idmapped mounts 5.12"
	case errors.Is(err, unix.EINVAL):
		e.Code = fault.CodeUnsupported
	case errors.Is(err, unix.EPERM), errors.Is(err, unix.EACCES):
		e.Code = fault.CodePermission
	case errors.Is(err, unix.ENOENT), errors.Is(err, unix.ENODEV):
		e.Code = fault.CodeInvalidArgument
	}
	return e
}

// Flags translates OCI/fstab mount options into MOUNT_ATTR_* bits to set and
// clear, the propagation, whether it is a bind (and recursive), and the
// remaining filesystem-specific options for fsconfig.
type Flags struct {
	Set, Clear  uint64
	Propagation uint64
	Bind, Rec   bool
	Data        []Option
}

// ParseOptions parses the options of an OCI mount entry.
func ParseOptions(opts []string) Flags {
	var f Flags
	for _, o := range opts {
		switch o {
		case "ro":
			f.Set |= unix.MOUNT_ATTR_RDONLY
		case "rw":
			f.Clear |= unix.MOUNT_ATTR_RDONLY
		case "nosuid":
			f.Set |= unix.MOUNT_ATTR_NOSUID
		case "suid":
			f.Clear |= unix.MOUNT_ATTR_NOSUID
		case "nodev":
			f.Set |= unix.MOUNT_ATTR_NODEV
		case "dev":
			f.Clear |= unix.MOUNT_ATTR_NODEV
		case "noexec":
			f.Set |= unix.MOUNT_ATTR_NOEXEC
		case "exec":
			f.Clear |= unix.MOUNT_ATTR_NOEXEC
		case "noatime":
			f.Set |= unix.MOUNT_ATTR_NOATIME
		case "relatime":
			f.Set |= unix.MOUNT_ATTR_RELATIME
		case "strictatime":
			f.Set |= unix.MOUNT_ATTR_STRICTATIME
		case "nodiratime":
			f.Set |= unix.MOUNT_ATTR_NODIRATIME
		case "bind":
			f.Bind = true
		case "rbind":
			f.Bind, f.Rec = true, true
		case "private", "rprivate":
			f.Propagation = unix.MS_PRIVATE
		case "slave", "rslave":
			f.Propagation = unix.MS_SLAVE
		case "shared", "rshared":
			f.Propagation = unix.MS_SHARED
		case "unbindable", "runbindable":
			f.Propagation = unix.MS_UNBINDABLE
		case "defaults", "async", "atime", "diratime", "loud":
		default:
			k, v, _ := cut(o, '=')
			f.Data = append(f.Data, Option{Key: k, Value: v})
		}
	}
	return f
}

func cut(s string, sep byte) (string, string, bool) {
	for i := 0; i < len(s); i++ {
		if s[i] == sep {
			return s[:i], s[i+1:], true
		}
	}
	return s, "", false
}
