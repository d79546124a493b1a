package checkpoint

import (
	"fmt"

	"golang.org/x/sys/unix"

	"github.com/godwit-dev/godwit/fault"
	"github.com/godwit-dev/godwit/image"
	"github.com/godwit-dev/godwit/internal/procfs"
)

// A shell job (Options.ShellJob) is a tree that runs on one terminal, a
// pseudo-terminal slave /dev/pts/N: its descriptors of the terminal are
// recorded as image.FDTTY and the processes whose controlling terminal it
// is as image.Process.CTTY, with the terminal's foreground process group
// and settings in image.Meta.Terminal. Restore attaches all of them to the
// terminal it runs on. The terminal itself (its other end, its buffered
// input) stays behind.

// Character device numbers of terminals.
const (
	ptsMajorFirst = 136 // UNIX98_PTY_SLAVE_MAJOR: /dev/pts/N for N < 256
	ptsMajorLast  = 143 // the last of the eight majors of pseudo-terminal slaves
)

var devTTY = unix.Mkdev(5, 0) // /dev/tty: the caller's controlling terminal

// isPTS tells the device number of a pseudo-terminal slave.
func isPTS(rdev uint64) bool {
	m := unix.Major(rdev)
	return m >= ptsMajorFirst && m <= ptsMajorLast
}

// ptsIndex is N of /dev/pts/N.
func ptsIndex(rdev uint64) int {
	return int(unix.Major(rdev)-ptsMajorFirst)<<8 | int(unix.Minor(rdev))
}

// isTerminalDevice tells the character devices that are refused as
// terminals (without ShellJob) or taken as the shell job's terminal.
func isTerminalDevice(rdev uint64) bool {
	return isPTS(rdev) || rdev == devTTY
}

// ttyFD describes descriptor fd of pid, a terminal (st is its stat), with
// ShellJob; it refuses it without.
func (d *dumper) ttyFD(pid, fd int, path string, st *unix.Stat_t, f *image.FD) error {
	if !d.opts.ShellJob {
		return (&fault.Error{Code: fault.CodeUnsupported, Op: "dump", PID: pid,
			Msg:    fmt.Sprintf("descriptor of the terminal %s: a terminal is only dumped as part of a shell job", path),
			Remedy: "dump with --shell-job and restore with --shell-job from a terminal, or redirect it to a file"}).WithFD(fd)
	}
	rdev := st.Rdev
	devtty := rdev == devTTY
	if devtty {
		// /dev/tty is the controlling terminal of the process.
		stat, err := procfs.ReadStat(pid)
		if err != nil {
			return (&fault.Error{Code: fault.CodeNoProcess, Op: "dump", PID: pid, Msg: "read stat", Err: err}).WithFD(fd)
		}
		rdev = uint64(uint32(stat.TTYNr))
		if !isPTS(rdev) {
			return (&fault.Error{Code: fault.CodeUnsupported, Op: "dump", PID: pid,
				Msg: fmt.Sprintf("/dev/tty of a process whose controlling terminal (device %d:%d) is not a pseudo-terminal",
					unix.Major(rdev), unix.Minor(rdev))}).WithFD(fd)
		}
	}
	if err := d.noteTerminal(pid, rdev); err != nil {
		return err
	}
	f.Kind, f.Path, f.Rdev, f.Pos = image.FDTTY, path, st.Rdev, 0
	f.TTY = &image.TTY{Index: ptsIndex(rdev), DevTTY: devtty}
	if d.meta.Terminal.Termios == nil {
		tio, err := termiosOf(pid, fd)
		if err != nil {
			return (&fault.Error{Code: fault.CodeDumpFailed, Op: "dump", PID: pid, Msg: "read the terminal's settings", Err: err}).WithFD(fd)
		}
		d.meta.Terminal.Termios = tio
	}
	return nil
}

// noteTerminal records rdev as the shell job's terminal, or refuses a second
// terminal.
func (d *dumper) noteTerminal(pid int, rdev uint64) error {
	t := d.meta.Terminal
	if t == nil {
		d.meta.Terminal = &image.Terminal{Rdev: rdev, Index: ptsIndex(rdev)}
		return nil
	}
	if t.Rdev != rdev {
		return &fault.Error{Code: fault.CodeUnsupported, Op: "dump", PID: pid,
			Msg: fmt.Sprintf("the tree uses two terminals, /dev/pts/%d and /dev/pts/%d: a shell job runs on one",
				t.Index, ptsIndex(rdev)),
			Remedy: "redirect the descriptors of one of them"}
	}
	return nil
}

// noteCTTY records, with ShellJob, the controlling terminal of pid when it
// is a pseudo-terminal, and its foreground process group. It reports
// whether pid has the shell job's terminal as controlling terminal.
func (d *dumper) noteCTTY(pid int, stat *procfs.Stat) (bool, error) {
	rdev := uint64(uint32(stat.TTYNr))
	if !d.opts.ShellJob || stat.TTYNr == 0 || !isPTS(rdev) {
		return false, nil
	}
	if err := d.noteTerminal(pid, rdev); err != nil {
		return false, err
	}
	if stat.TPGID > 0 {
		d.meta.Terminal.Foreground = stat.TPGID
	}
	return true, nil
}

// termiosOf reads the settings of the terminal open as fd in pid, from a
// duplicate (TCGETS works on any descriptor of a terminal, controlling or
// not).
func termiosOf(pid, fd int) (*image.Termios, error) {
	pidfd, err := unix.PidfdOpen(pid, 0)
	if err != nil {
		return nil, fmt.Errorf("pidfd_open: %w", err)
	}
	defer unix.Close(pidfd)
	dup, err := unix.PidfdGetfd(pidfd, fd, 0)
	if err != nil {
		return nil, fmt.Errorf("pidfd_getfd: %w", err)
	}
	defer unix.Close(dup)
	t, err := unix.IoctlGetTermios(dup, unix.TCGETS)
	if err != nil {
		return nil, fmt.Errorf("TCGETS: %w", err)
	}
	return &image.Termios{Iflag: t.Iflag, Oflag: t.Oflag, Cflag: t.Cflag, Lflag: t.Lflag, Line: t.Line,
		Cc: append([]byte(nil), t.Cc[:image.NCCS]...)}, nil
}
