package restore

import (
	"encoding/binary"
	"errors"
	"fmt"
	"os"
	"strconv"

	"golang.org/x/sys/unix"

	"github.com/godwit-dev/godwit/fault"
	"github.com/godwit-dev/godwit/image"
)

// A shell job (image.Meta.Terminal) is attached to the terminal restore runs
// on (Options.ShellJob): its stdin when that is a terminal, else its
// controlling terminal (/dev/tty). Every descriptor of the old terminal
// becomes a new open of that one, with the descriptor's flags. A session
// leader whose controlling terminal it was takes it as its controlling
// terminal (TIOCSCTTY) right after its setsid, so that the processes forked
// after it inherit it; the kernel refuses that while the terminal is the
// controlling terminal of another session (typically the shell's that runs
// godwit): then the process runs without one, with a warning. Processes
// whose session leader is not in the tree (a job started from a shell)
// stay in the session made for the stub, without a controlling terminal;
// they read and write the terminal all the same. The terminal's foreground
// process group and settings are restored where the kernel lets them.

// openTerminal opens, with ShellJob, the terminal the shell job is attached
// to, or refuses an image of a shell job without it.
func (t *tree) openTerminal() error {
	term := t.meta.Terminal
	if term == nil {
		return nil
	}
	if !t.opts.ShellJob {
		return &fault.Error{Code: fault.CodeInvalidArgument, Op: "restore",
			Msg:    fmt.Sprintf("the image is a shell job: its processes used the terminal /dev/pts/%d", term.Index),
			Remedy: "restore it with --shell-job from a terminal (godwit's stdin), which takes its place"}
	}
	f, err := ownTerminal()
	if err != nil {
		return &fault.Error{Code: fault.CodeInvalidArgument, Op: "restore",
			Msg:    "no terminal to attach the shell job to: stdin is not a terminal and there is no controlling terminal (/dev/tty)",
			Err:    err,
			Remedy: "run godwit restore --shell-job from a terminal, or with one as its stdin"}
	}
	t.shared().tty = f
	return nil
}

// ownTerminal opens, anew, godwit's stdin when it is a terminal, or else
// its controlling terminal. O_NOCTTY: it never becomes godwit's.
func ownTerminal() (*os.File, error) {
	if _, err := unix.IoctlGetTermios(0, unix.TCGETS); err == nil {
		return os.OpenFile("/proc/self/fd/0", os.O_RDWR|unix.O_NOCTTY, 0)
	}
	return os.OpenFile("/dev/tty", os.O_RDWR|unix.O_NOCTTY, 0)
}

// restoreTTY gives the process a new open of the terminal as descriptor f.
func (rs *restorer) restoreTTY(f image.FD, cloexec uint64) error {
	tty := rs.shared().tty
	if tty == nil {
		return fmt.Errorf("no terminal to attach it to")
	}
	flags := int(f.Flags&openFlagsMask&^unix.O_CLOEXEC) | unix.O_NOCTTY | unix.O_CLOEXEC
	file, err := os.OpenFile("/proc/self/fd/"+strconv.Itoa(int(tty.Fd())), flags, 0)
	if err != nil {
		return fmt.Errorf("open the terminal: %w", err)
	}
	defer file.Close()
	return rs.plant(file, f.FD, cloexec)
}

// withTerminal runs fn with the terminal planted in the process as a
// temporary descriptor.
func (rs *restorer) withTerminal(fn func(fd uint64) error) error {
	fd := rs.chanFD + 1 // above every descriptor of the image
	if err := rs.plant(rs.shared().tty, fd, unix.O_CLOEXEC); err != nil {
		return err
	}
	defer rs.call(unix.SYS_CLOSE, uint64(fd))
	return fn(uint64(fd))
}

// acquireTerminal makes the terminal the controlling terminal of the
// process, a session leader without one (right after its setsid).
func (rs *restorer) acquireTerminal() error {
	o := rs.shared()
	if o.tty == nil {
		return nil
	}
	err := rs.withTerminal(func(fd uint64) error {
		_, err := rs.call(unix.SYS_IOCTL, fd, unix.TIOCSCTTY, 0)
		return err
	})
	if errors.Is(err, unix.EPERM) {
		rs.warn("pid %d: the terminal is the controlling terminal of another session (the one godwit runs in?): "+
			"the process runs without a controlling terminal (no ^C or ^Z from it)", rs.proc.PID)
		return nil
	}
	if err != nil {
		return rs.fail("make the terminal the controlling terminal", err)
	}
	o.cttyLeader = rs
	return nil
}

// restoreForeground makes the image's foreground process group the
// terminal's, when its leader is in the tree, in the session that now has
// the terminal. Every signal of the processes is blocked, so the kernel's
// SIGTTOU for a background caller does not apply.
func (t *tree) restoreForeground() error {
	o := t.shared()
	leader := o.cttyLeader
	if leader == nil {
		for _, rs := range t.procs {
			if rs.proc.CTTY && t.byPID[rs.proc.SID] == nil {
				rs.warn("pid %d: its controlling terminal is not restored: its session leader (pid %d) is not in the tree; "+
					"its descriptors of the terminal work", rs.proc.PID, rs.proc.SID)
				break
			}
		}
		return nil
	}
	fg := t.byPID[t.meta.Terminal.Foreground]
	if fg == nil || fg.proc.PGID != fg.proc.PID || fg.proc.SID != leader.proc.PID {
		return nil
	}
	pg := make([]byte, 4)
	binary.LittleEndian.PutUint32(pg, uint32(leader.viewOf(fg)))
	addr, err := leader.put(256, pg)
	if err != nil {
		return leader.fail("foreground process group", err)
	}
	err = leader.withTerminal(func(fd uint64) error {
		_, err := leader.call(unix.SYS_IOCTL, fd, unix.TIOCSPGRP, addr)
		return err
	})
	if err != nil {
		leader.warn("the terminal's foreground process group %d is not restored: %v", fg.proc.PID, err)
	}
	return nil
}

// commitTerminal gives the terminal the image's settings, unless godwit is
// in the background on it (it would be stopped for it).
func (o *objects) commitTerminal(rs *restorer) {
	term := rs.meta.Terminal
	if o.tty == nil || term == nil || term.Termios == nil {
		return
	}
	fd := int(o.tty.Fd())
	if fg, err := unix.IoctlGetInt(fd, unix.TIOCGPGRP); err == nil && fg != unix.Getpgrp() {
		rs.warn("the terminal's settings are not restored: godwit runs in the background on it")
		return
	}
	tio, err := unix.IoctlGetTermios(fd, unix.TCGETS)
	if err != nil {
		rs.warn("the terminal's settings are not restored: %v", err)
		return
	}
	tt := term.Termios
	// The line speed is the terminal's own, not the image's.
	speed := uint32(unix.CBAUD | unix.CBAUDEX)
	tio.Iflag, tio.Oflag, tio.Lflag, tio.Line = tt.Iflag, tt.Oflag, tt.Lflag, tt.Line
	tio.Cflag = tt.Cflag&^speed | tio.Cflag&speed
	copy(tio.Cc[:], tt.Cc)
	if err := unix.IoctlSetTermios(fd, unix.TCSETS, tio); err != nil {
		rs.warn("the terminal's settings are not restored: %v", err)
	}
}
