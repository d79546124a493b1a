// Package securepath resolves paths that come from a bundle or from a
// container inside a root directory, never by joining strings.
//
// Every lookup goes through openat2(RESOLVE_IN_ROOT) (via
// github.com/cyphar/filepath-securejoin's pathrs-lite), so absolute symlinks,
// ".." chains and magic links all stay inside the root, and the result is a
// file descriptor: a caller that mounts onto that descriptor (move_mount with
// MOVE_MOUNT_T_EMPTY_PATH) is immune to a container swapping a path component
// between the lookup and the mount.
package securepath

import (
	"errors"
	"os"
	"path"
	"strings"

	pathrs "github.com/cyphar/filepath-securejoin/pathrs-lite"
	"golang.org/x/sys/unix"

	"github.com/godwit-dev/godwit/fault"
)

// Root is an open directory that paths are resolved in. It owns its fd.
type Root struct {
	f *os.File
}

// Open opens dir (an O_PATH handle) as a Root.
func Open(dir string) (*Root, error) {
	fd, err := unix.Open(dir, unix.O_PATH|unix.O_DIRECTORY|unix.O_CLOEXEC, 0)
	if err != nil {
		return nil, &fault.Error{Code: codeOf(err), Op: "open root", Path: dir, Err: err}
	}
	return &Root{f: os.NewFile(uintptr(fd), dir)}, nil
}

// FromFile takes ownership of f as a Root.
func FromFile(f *os.File) *Root { return &Root{f: f} }

// File returns the root's handle; it stays owned by r.
func (r *Root) File() *os.File { return r.f }

// Close releases the root.
func (r *Root) Close() error { return r.f.Close() }

// Clean returns p as an absolute, lexically cleaned path inside the root.
// It never contains "..", so its last element is a real name (or "/").
func Clean(p string) string { return path.Clean("/" + p) }

// OpenPath resolves p inside the root and returns an O_PATH handle.
func (r *Root) OpenPath(p string) (*os.File, error) {
	f, err := pathrs.OpenatInRoot(r.f, Clean(p))
	if err != nil {
		return nil, &fault.Error{Code: codeOf(err), Op: "resolve in root", Path: p, Err: err}
	}
	return f, nil
}

// Reopen reopens an O_PATH handle with flags (through a hardened /proc).
func Reopen(f *os.File, flags int) (*os.File, error) {
	g, err := pathrs.Reopen(f, flags)
	if err != nil {
		return nil, &fault.Error{Code: codeOf(err), Op: "reopen", Path: f.Name(), Err: err}
	}
	return g, nil
}

// MkdirAll creates p and its parents inside the root and returns an O_PATH
// handle to the directory.
func (r *Root) MkdirAll(p string, mode os.FileMode) (*os.File, error) {
	f, err := pathrs.MkdirAllHandle(r.f, Clean(p), mode)
	if err != nil {
		return nil, &fault.Error{Code: codeOf(err), Op: "mkdir in root", Path: p, Err: err}
	}
	return f, nil
}

// MountTarget returns an O_PATH handle to p, creating it first when it does
// not exist: a directory when dir is true, otherwise an empty regular file
// (the target of a file bind mount). Parents are created as directories.
// An existing target of the wrong kind is an error.
func (r *Root) MountTarget(p string, dir bool) (*os.File, error) {
	p = Clean(p)
	if dir {
		return r.MkdirAll(p, 0o755)
	}
	if f, err := r.OpenPath(p); err == nil {
		return f, nil
	}
	parent, base := path.Split(p)
	pf, err := r.MkdirAll(parent, 0o755)
	if err != nil {
		return nil, err
	}
	defer pf.Close()
	// base is a single name (Clean never leaves ".."), created relative to a
	// handle that is already inside the root; O_NOFOLLOW|O_EXCL refuses a
	// symlink planted in the meantime.
	fd, err := unix.Openat(int(pf.Fd()), base, unix.O_CREAT|unix.O_EXCL|unix.O_NOFOLLOW|unix.O_WRONLY|unix.O_CLOEXEC, 0o644)
	if err == nil {
		unix.Close(fd)
	} else if !errors.Is(err, unix.EEXIST) {
		return nil, &fault.Error{Code: codeOf(err), Op: "create mount target", Path: p, Err: err}
	}
	return r.OpenPath(p)
}

// codeOf maps an errno to a fault code.
func codeOf(err error) fault.Code {
	switch {
	case errors.Is(err, unix.EPERM), errors.Is(err, unix.EACCES):
		return fault.CodePermission
	case errors.Is(err, unix.ENOSYS):
		return fault.CodeKernel
	case errors.Is(err, unix.ENOENT), errors.Is(err, unix.EXDEV), errors.Is(err, unix.ELOOP),
		errors.Is(err, unix.ENOTDIR), errors.Is(err, unix.EEXIST):
		return fault.CodeInvalidArgument
	}
	return fault.CodeIO
}

// IsInside reports whether the absolute path p is lexically at or below dir.
func IsInside(dir, p string) bool {
	dir, p = path.Clean(dir), path.Clean(p)
	return p == dir || strings.HasPrefix(p, strings.TrimSuffix(dir, "/")+"/")
}
