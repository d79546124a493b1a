package unix

import "golang.org/x/sys/unix"

// errnoErr turns the errno of a raw system call into an error: nil for 0.
func errnoErr(e unix.Errno) error {
	if e == 0 {
		return nil
	}
	return e
}
