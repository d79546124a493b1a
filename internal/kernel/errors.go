package kernel

import (
	"errors"
	"fmt"

	"golang.org/x/sys/unix"

	"github.com/godwit-dev/godwit/fault"
)

// errnoName shows an errno by its name (ENOTTY), keeping it reachable for
// errors.Is.
type errnoName struct{ errno unix.Errno }

func (e errnoName) Error() string {
	if n := unix.ErrnoName(e.errno); n != "" {
		return n
	}
	return e.errno.Error()
}

func (e errnoName) Unwrap() error { return e.errno }

func named(err error) error {
	var errno unix.Errno
	if errors.As(err, &errno) && err == error(errno) {
		return errnoName{errno}
	}
	return err
}

// missing says the kernel lacks feature, which appeared in Linux minKernel.
func missing(feature, minKernel string, err error) error {
	return &fault.Error{Code: fault.CodeKernel, Msg: fmt.Sprintf("%s: requires Linux %s", feature, minKernel), Err: named(err)}
}

// denied says the feature exists but this user may not use it.
func denied(feature, remedy string, err error) error {
	return &fault.Error{Code: fault.CodePermission, Msg: feature + ": not permitted", Err: named(err), Remedy: remedy}
}

// failed says the probe could not tell.
func failed(feature string, err error) error {
	return &fault.Error{Code: fault.CodeInternal, Msg: feature + ": probe failed", Err: named(err)}
}

// classify turns the errno of a probe into missing, denied or failed: ENOSYS,
// EINVAL, ENOTTY, EOPNOTSUPP and EIO mean missing; EPERM and EACCES denied.
func classify(feature, minKernel, remedy string, err error) error {
	switch {
	case err == nil:
		return nil
	case errors.Is(err, unix.EPERM), errors.Is(err, unix.EACCES):
		return denied(feature, remedy, err)
	case errors.Is(err, unix.ENOSYS), errors.Is(err, unix.EINVAL), errors.Is(err, unix.ENOTTY),
		errors.Is(err, unix.EOPNOTSUPP), errors.Is(err, unix.EIO), errors.Is(err, unix.E2BIG),
		errors.Is(err, unix.ENOENT):
		return missing(feature, minKernel, err)
	}
	return failed(feature, err)
}
