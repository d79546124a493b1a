package restore

import (
	"encoding/binary"
	"encoding/json"
	"fmt"
	"os"

	"golang.org/x/sys/unix"

	"github.com/godwit-dev/godwit/fault"
	"github.com/godwit-dev/godwit/image"
	"github.com/godwit-dev/godwit/internal/files"
)

// Objects (pipes, sockets, event fds, ...) are created by godwit itself with
// package files and handed to the process through a unix socket that every
// process of the tree inherits from the stub: godwit sends the descriptor
// with SCM_RIGHTS, an injected recvmsg takes it. That works in every
// namespace layout (a process in a new PID namespace cannot see godwit for
// pidfd_getfd).

// objects is the tree-wide table of recreated objects, so that every
// description of one pipe or socket pair comes from the same object, and of
// what the processes share beyond descriptors: the shell job's terminal and
// SysV segments.
type objects struct {
	descs map[uint64]*files.Desc // by inode, every object of the image
	pipes map[uint64][2]*os.File // read end, write end
	socks map[uint64]*os.File    // recreated unix sockets of a pair, by inode
	keep  []*os.File             // everything to close at the end

	tty        *os.File   // the terminal a shell job is attached to (openTerminal)
	cttyLeader *restorer  // the session leader that took it as controlling terminal
	segs       []*segment // SysV segments created and not yet committed
	committed  bool       // every process is whole: what they share stays
}

// shared returns the tree's objects, made on first use: the terminal and the
// SysV segments are set up before the objects are indexed.
func (t *tree) shared() *objects {
	if t.objs == nil {
		t.objs = &objects{}
	}
	return t.objs
}

// commitShared is called once every process is whole and stopped for the
// last time: the terminal gets the image's settings, SysV segments their
// owner and mode (and are removed again if they were), and nothing of it is
// undone any more.
func (t *tree) commitShared(rs *restorer) {
	o := t.shared()
	if o.committed {
		return
	}
	o.committed = true
	o.commitTerminal(rs)
	o.commitSegments(rs)
}

// channelFD is where the SCM_RIGHTS socket lives in the restored processes:
// above every descriptor of the image.
func (t *tree) channelFD() int {
	n := 10
	for _, p := range t.meta.Processes {
		for _, f := range p.FDs {
			n = max(n, f.FD+1)
		}
	}
	return n
}

// moveChannel moves the channel, fd 3 of the stub, out of the way in the
// root before the rest of the tree is forked from it.
func (rs *restorer) moveChannel() error {
	if _, err := rs.call(unix.SYS_DUP3, 3, uint64(rs.chanFD), unix.O_CLOEXEC); err != nil {
		return rs.fail("move the descriptor channel", err)
	}
	if _, err := rs.call(unix.SYS_CLOSE, 3); err != nil {
		return rs.fail("move the descriptor channel", err)
	}
	return nil
}

// plant gives the process file as descriptor fd.
func (rs *restorer) plant(file *os.File, fd int, cloexec uint64) error {
	if err := unix.Sendmsg(int(rs.chanGodwit.Fd()), []byte{0}, unix.UnixRights(int(file.Fd())), nil, 0); err != nil {
		return fmt.Errorf("send the descriptor: %w", err)
	}
	// struct msghdr (56 bytes), struct iovec (16), 8 bytes of data, then a
	// control buffer for one descriptor.
	base := rs.tramp + scratchOff
	const msgOff, iovOff, dataOff, ctlOff = 0, 64, 80, 96
	ctlLen := uint64(unix.CmsgSpace(4))
	msg := make([]byte, 56)
	binary.LittleEndian.PutUint64(msg[16:], base+iovOff)
	binary.LittleEndian.PutUint64(msg[24:], 1)
	binary.LittleEndian.PutUint64(msg[32:], base+ctlOff)
	binary.LittleEndian.PutUint64(msg[40:], ctlLen)
	iov := make([]byte, 16)
	binary.LittleEndian.PutUint64(iov[0:], base+dataOff)
	binary.LittleEndian.PutUint64(iov[8:], 8)
	if _, err := rs.put(msgOff, msg); err != nil {
		return err
	}
	if _, err := rs.put(iovOff, iov); err != nil {
		return err
	}
	if _, err := rs.put(ctlOff, make([]byte, ctlLen)); err != nil {
		return err
	}
	if _, err := rs.call(unix.SYS_RECVMSG, uint64(rs.chanFD), base+msgOff, unix.MSG_CMSG_CLOEXEC); err != nil {
		return fmt.Errorf("recvmsg: %w", err)
	}
	ctl := make([]byte, ctlLen)
	if err := rs.mem.Read(base+ctlOff, ctl); err != nil {
		return err
	}
	cmsgs, err := unix.ParseSocketControlMessage(ctl)
	if err != nil || len(cmsgs) != 1 {
		return fmt.Errorf("no descriptor received (%v)", err)
	}
	got, err := unix.ParseUnixRights(&cmsgs[0])
	if err != nil || len(got) != 1 {
		return fmt.Errorf("no descriptor received (%v)", err)
	}
	if got[0] != fd {
		if _, err := rs.call(unix.SYS_DUP3, uint64(got[0]), uint64(fd), cloexec); err != nil {
			return err
		}
		rs.call(unix.SYS_CLOSE, uint64(got[0]))
	} else if cloexec == 0 {
		if _, err := rs.call(unix.SYS_FCNTL, uint64(fd), unix.F_SETFD, 0); err != nil {
			return err
		}
	}
	return nil
}

func decodeObject(f image.FD) (*files.Desc, error) {
	var d files.Desc
	if err := json.Unmarshal(f.Object, &d); err != nil {
		return nil, fmt.Errorf("%w: fd %d: %v", image.ErrMalformed, f.FD, err)
	}
	return &d, nil
}

// indexObjects records every object of the image by inode.
func (t *tree) indexObjects() error {
	o := t.shared()
	o.descs, o.pipes, o.socks = map[uint64]*files.Desc{}, map[uint64][2]*os.File{}, map[uint64]*os.File{}
	for _, p := range t.meta.Processes {
		for _, f := range p.FDs {
			if f.Kind != image.FDObject {
				continue
			}
			d, err := decodeObject(f)
			if err != nil {
				return badImage(err)
			}
			if _, ok := t.objs.descs[d.Ino]; !ok {
				t.objs.descs[d.Ino] = d
			}
		}
	}
	return nil
}

// object returns the file to plant for descriptor f, creating its object
// (and, for a pipe or socket pair, its other end) the first time.
func (rs *restorer) object(f image.FD) (*os.File, error) {
	d, err := decodeObject(f)
	if err != nil {
		return nil, err
	}
	o := rs.objs
	switch {
	case d.Kind == files.KindPipe:
		ends, ok := o.pipes[d.Ino]
		if !ok {
			file, peer, err := files.Create(d)
			if err != nil {
				return nil, err
			}
			o.keep = append(o.keep, file, peer)
			if d.Pipe.End == "read" {
				ends = [2]*os.File{file, peer}
			} else {
				ends = [2]*os.File{peer, file}
			}
			o.pipes[d.Ino] = ends
			return file, nil
		}
		if d.Pipe.End == "read" {
			return ends[0], nil
		}
		return ends[1], nil
	case d.Kind == files.KindUnix && d.Socket != nil && d.Socket.PeerIno != 0 && o.descs[d.Socket.PeerIno] != nil:
		if s, ok := o.socks[d.Ino]; ok {
			return s, nil
		}
		a, b, err := files.CreatePair(d, o.descs[d.Socket.PeerIno])
		if err != nil {
			return nil, err
		}
		o.keep = append(o.keep, a, b)
		o.socks[d.Ino], o.socks[d.Socket.PeerIno] = a, b
		return a, nil
	case d.Kind == files.KindEpoll:
		return nil, errEpollLater
	case establishedTCP(d):
		return rs.createTCP(d)
	}
	file, peer, err := files.Create(d)
	if err != nil {
		return nil, err
	}
	o.keep = append(o.keep, file)
	if peer != nil {
		o.keep = append(o.keep, peer)
	}
	return file, nil
}

var errEpollLater = fmt.Errorf("epoll: after the other descriptors")

// restoreEpoll recreates an epoll instance once every descriptor of the
// process is in place: godwit takes a copy of each registered file from the
// restored process and registers it as the image says.
func (rs *restorer) restoreEpoll(f image.FD, cloexec uint64) error {
	d, err := decodeObject(f)
	if err != nil {
		return err
	}
	pidfd, err := unix.PidfdOpen(rs.pid, 0)
	if err != nil {
		return err
	}
	defer unix.Close(pidfd)
	fds := map[int]int{}
	defer func() {
		for _, fd := range fds {
			unix.Close(fd)
		}
	}()
	for _, t := range d.Epoll.Targets {
		if t.Stale {
			return &fault.Error{Code: fault.CodeUnsupported, Op: "restore", PID: rs.proc.PID,
				Msg: fmt.Sprintf("epoll fd %d watches a file that is no longer open as fd %d", f.FD, t.FD)}
		}
		if _, ok := fds[t.FD]; ok {
			continue
		}
		dup, err := unix.PidfdGetfd(pidfd, t.FD, 0)
		if err != nil {
			return fmt.Errorf("take fd %d: %w", t.FD, err)
		}
		fds[t.FD] = dup
	}
	ep, err := files.CreateEpoll(d, fds)
	if err != nil {
		return err
	}
	defer ep.Close()
	return rs.plant(ep, f.FD, cloexec)
}

func (t *tree) closeObjects() {
	if t.objs != nil {
		for _, f := range t.objs.keep {
			if f != nil {
				f.Close()
			}
		}
		t.objs.keep = nil
		if !t.objs.committed {
			t.objs.removeSegments()
		}
		if t.objs.tty != nil {
			t.objs.tty.Close()
			t.objs.tty = nil
		}
	}
	if t.chanGodwit != nil {
		t.chanGodwit.Close()
		t.chanGodwit = nil
	}
}
