package runtime

import (
	"encoding/json"
	"os"

	"golang.org/x/sys/unix"

	"github.com/godwit-dev/godwit/fault"
)

// A conn carries one JSON message per SOCK_SEQPACKET datagram, with file
// descriptors attached as SCM_RIGHTS. The runtime's processes (client, shim,
// init, exec stage) talk over such sockets; the shim treats everything the
// init sends as untrusted.
type conn struct {
	f *os.File
}

const maxMsg = 1 << 20

func socketPair() (*conn, *os.File, error) {
	fds, err := unix.Socketpair(unix.AF_UNIX, unix.SOCK_SEQPACKET|unix.SOCK_CLOEXEC, 0)
	if err != nil {
		return nil, nil, fault.Wrap(fault.CodeIO, err, "socketpair")
	}
	return &conn{f: os.NewFile(uintptr(fds[0]), "sock")}, os.NewFile(uintptr(fds[1]), "sock"), nil
}

func newConn(f *os.File) *conn { return &conn{f: f} }

func (c *conn) Close() error { return c.f.Close() }

func (c *conn) send(v any, files ...*os.File) error {
	b, err := json.Marshal(v)
	if err != nil {
		return fault.Wrap(fault.CodeInternal, err, "encode message")
	}
	var oob []byte
	if len(files) > 0 {
		fds := make([]int, len(files))
		for i, f := range files {
			fds[i] = int(f.Fd())
		}
		oob = unix.UnixRights(fds...)
	}
	rc, err := c.f.SyscallConn()
	if err != nil {
		return err
	}
	var serr error
	if err := rc.Write(func(fd uintptr) bool {
		serr = unix.Sendmsg(int(fd), b, oob, nil, 0)
		return serr != unix.EAGAIN
	}); err != nil {
		return fault.Wrap(fault.CodeIO, err, "send message")
	}
	if serr != nil {
		return fault.Wrap(fault.CodeIO, serr, "send message")
	}
	return nil
}

// recv reads one message into v and returns the files that came with it
// (owned by the caller). io.EOF-like closure is reported as ErrClosed.
func (c *conn) recv(v any) ([]*os.File, error) {
	buf := make([]byte, maxMsg)
	oob := make([]byte, unix.CmsgSpace(16*4))
	rc, err := c.f.SyscallConn()
	if err != nil {
		return nil, err
	}
	var n, oobn int
	var rerr error
	if err := rc.Read(func(fd uintptr) bool {
		n, oobn, _, _, rerr = unix.Recvmsg(int(fd), buf, oob, unix.MSG_CMSG_CLOEXEC)
		return rerr != unix.EAGAIN
	}); err != nil {
		return nil, fault.Wrap(fault.CodeIO, err, "receive message")
	}
	if rerr != nil {
		return nil, fault.Wrap(fault.CodeIO, rerr, "receive message")
	}
	var files []*os.File
	if oobn > 0 {
		msgs, err := unix.ParseSocketControlMessage(oob[:oobn])
		if err == nil {
			for _, m := range msgs {
				fds, err := unix.ParseUnixRights(&m)
				if err != nil {
					continue
				}
				for _, fd := range fds {
					files = append(files, os.NewFile(uintptr(fd), "received"))
				}
			}
		}
	}
	if n == 0 {
		closeAll(files)
		return nil, errClosed
	}
	if err := json.Unmarshal(buf[:n], v); err != nil {
		closeAll(files)
		return nil, fault.Wrap(fault.CodeInvalidArgument, err, "decode message")
	}
	return files, nil
}

var errClosed = fault.New(fault.CodeProcessExited, "peer closed the connection")

func closeAll(files []*os.File) {
	for _, f := range files {
		if f != nil {
			f.Close()
		}
	}
}

// dial connects to a shim's control socket.
func dial(path string) (*conn, error) {
	fd, err := unix.Socket(unix.AF_UNIX, unix.SOCK_SEQPACKET|unix.SOCK_CLOEXEC, 0)
	if err != nil {
		return nil, fault.Wrap(fault.CodeIO, err, "socket")
	}
	if err := unix.Connect(fd, &unix.SockaddrUnix{Name: path}); err != nil {
		unix.Close(fd)
		return nil, &fault.Error{Code: fault.CodeProcessExited, Op: "connect to container shim", Path: path, Err: err}
	}
	return &conn{f: os.NewFile(uintptr(fd), path)}, nil
}
