package files

import (
	"encoding/binary"
	"errors"
	"fmt"
	"os"
	"runtime"

	"golang.org/x/sys/unix"
)

// sock_diag: the uapi constants golang.org/x/sys/unix lacks.
const (
	udiagShowName     = 0x01
	udiagShowPeer     = 0x04
	udiagShowIcons    = 0x08
	udiagShowRqlen    = 0x10
	udiagShowShutdown = 0x80

	unixDiagName     = 0
	unixDiagPeer     = 2
	unixDiagIcons    = 3
	unixDiagRqlen    = 4
	unixDiagShutdown = 6

	inetDiagReqProtocol = 3 // INET_DIAG_REQ_PROTOCOL: u32 protocol for MPTCP (> 255)
)

// diagConn is a NETLINK_SOCK_DIAG socket in the network namespace of the
// socket it was opened for.
type diagConn struct{ fd int }

// openDiag opens a sock_diag socket in the network namespace of sock (a
// socket descriptor of godwit), entering that namespace on a locked thread
// when it is not godwit's own.
func openDiag(sock int) (*diagConn, error) {
	nsfd, err := unix.IoctlRetInt(sock, unix.SIOCGSKNS)
	if err != nil {
		return nil, fmt.Errorf("SIOCGSKNS: %w", err)
	}
	defer unix.Close(nsfd)
	var theirs, ours unix.Stat_t
	if err := unix.Fstat(nsfd, &theirs); err != nil {
		return nil, err
	}
	if err := unix.Stat("/proc/thread-self/ns/net", &ours); err != nil {
		return nil, err
	}
	open := func() (int, error) {
		return unix.Socket(unix.AF_NETLINK, unix.SOCK_DGRAM|unix.SOCK_CLOEXEC, unix.NETLINK_SOCK_DIAG)
	}
	if theirs.Ino == ours.Ino && theirs.Dev == ours.Dev {
		fd, err := open()
		if err != nil {
			return nil, fmt.Errorf("open sock_diag: %w", err)
		}
		return &diagConn{fd}, nil
	}
	self, err := unix.Open("/proc/thread-self/ns/net", unix.O_RDONLY|unix.O_CLOEXEC, 0)
	if err != nil {
		return nil, err
	}
	defer unix.Close(self)
	runtime.LockOSThread()
	if err := unix.Setns(nsfd, unix.CLONE_NEWNET); err != nil {
		runtime.UnlockOSThread()
		return nil, fmt.Errorf("enter the socket's network namespace: %w", err)
	}
	fd, err := open()
	if err2 := unix.Setns(self, unix.CLONE_NEWNET); err2 != nil {
		// Leave the thread locked: Go discards it when this goroutine ends.
		if err == nil {
			unix.Close(fd)
		}
		return nil, fmt.Errorf("return to godwit's network namespace: %w", err2)
	}
	runtime.UnlockOSThread()
	if err != nil {
		return nil, fmt.Errorf("open sock_diag: %w", err)
	}
	return &diagConn{fd}, nil
}

func (c *diagConn) Close() { unix.Close(c.fd) }

// request sends one SOCK_DIAG_BY_FAMILY request and returns the payloads of
// the answers (a dump ends with NLMSG_DONE, a single get with one answer).
func (c *diagConn) request(payload []byte, dump bool) ([][]byte, error) {
	flags := uint16(unix.NLM_F_REQUEST)
	if dump {
		flags |= unix.NLM_F_DUMP
	}
	msg := make([]byte, unix.NLMSG_HDRLEN, unix.NLMSG_HDRLEN+len(payload))
	binary.NativeEndian.PutUint32(msg[0:], uint32(unix.NLMSG_HDRLEN+len(payload)))
	binary.NativeEndian.PutUint16(msg[4:], unix.SOCK_DIAG_BY_FAMILY)
	binary.NativeEndian.PutUint16(msg[6:], flags)
	binary.NativeEndian.PutUint32(msg[8:], 1)
	msg = append(msg, payload...)
	if err := unix.Sendto(c.fd, msg, 0, &unix.SockaddrNetlink{Family: unix.AF_NETLINK}); err != nil {
		return nil, fmt.Errorf("sock_diag request: %w", err)
	}
	var out [][]byte
	buf := make([]byte, 1<<16)
	for {
		n, _, err := unix.Recvfrom(c.fd, buf, 0)
		if err != nil {
			return nil, fmt.Errorf("sock_diag answer: %w", err)
		}
		for _, m := range splitNetlink(buf[:n]) {
			switch m.typ {
			case unix.NLMSG_DONE:
				return out, nil
			case unix.NLMSG_ERROR:
				if len(m.data) < 4 {
					return nil, errors.New("sock_diag: short error message")
				}
				if e := int32(binary.NativeEndian.Uint32(m.data)); e != 0 {
					return nil, fmt.Errorf("sock_diag: %w", unix.Errno(-e))
				}
				return out, nil
			case unix.SOCK_DIAG_BY_FAMILY:
				out = append(out, append([]byte(nil), m.data...))
			}
		}
		if !dump && len(out) > 0 {
			return out, nil
		}
	}
}

type nlMsg struct {
	typ  uint16
	data []byte
}

// splitNetlink splits a datagram into netlink messages, dropping a
// truncated tail.
func splitNetlink(b []byte) []nlMsg {
	var out []nlMsg
	for len(b) >= unix.NLMSG_HDRLEN {
		l := int(binary.NativeEndian.Uint32(b))
		if l < unix.NLMSG_HDRLEN || l > len(b) {
			break
		}
		out = append(out, nlMsg{binary.NativeEndian.Uint16(b[4:]), b[unix.NLMSG_HDRLEN:l]})
		al := (l + 3) &^ 3
		if al > len(b) {
			break
		}
		b = b[al:]
	}
	return out
}

// attrs splits netlink attributes into type → payload.
func attrs(b []byte) map[uint16][]byte {
	m := map[uint16][]byte{}
	for len(b) >= 4 {
		l := int(binary.NativeEndian.Uint16(b))
		t := binary.NativeEndian.Uint16(b[2:]) & 0x3fff
		if l < 4 || l > len(b) {
			break
		}
		m[t] = b[4:l]
		al := (l + 3) &^ 3
		if al > len(b) {
			break
		}
		b = b[al:]
	}
	return m
}

// unixDiag is what sock_diag tells about one unix socket.
type unixDiag struct {
	Type, State int
	Name        string // '@' first for an abstract name
	HasName     bool
	Peer        uint64
	Icons       []uint32
	Rqueue      uint32
	Wqueue      uint32
	Shutdown    int
}

// unixName converts a sun_path as the kernel holds it to Go's convention.
func unixName(b []byte) string {
	if len(b) > 0 && b[0] == 0 {
		return "@" + string(b[1:])
	}
	for i, c := range b {
		if c == 0 {
			return string(b[:i])
		}
	}
	return string(b)
}

// unix asks for the unix socket with inode ino.
func (c *diagConn) unix(ino uint64) (*unixDiag, error) {
	req := make([]byte, 24)
	req[0] = unix.AF_UNIX
	binary.NativeEndian.PutUint32(req[4:], 0xffffffff) // all states
	binary.NativeEndian.PutUint32(req[8:], uint32(ino))
	binary.NativeEndian.PutUint32(req[12:], udiagShowName|udiagShowPeer|udiagShowIcons|udiagShowRqlen|udiagShowShutdown)
	binary.NativeEndian.PutUint32(req[16:], 0xffffffff) // INET_DIAG_NOCOOKIE
	binary.NativeEndian.PutUint32(req[20:], 0xffffffff)
	msgs, err := c.request(req, false)
	if err != nil {
		return nil, err
	}
	for _, m := range msgs {
		if len(m) < 16 || uint64(binary.NativeEndian.Uint32(m[4:])) != ino {
			continue
		}
		d := &unixDiag{Type: int(m[1]), State: int(m[2])}
		a := attrs(m[16:])
		if n, ok := a[unixDiagName]; ok {
			d.Name, d.HasName = unixName(n), true
		}
		if p := a[unixDiagPeer]; len(p) >= 4 {
			d.Peer = uint64(binary.NativeEndian.Uint32(p))
		}
		for ic := a[unixDiagIcons]; len(ic) >= 4; ic = ic[4:] {
			d.Icons = append(d.Icons, binary.NativeEndian.Uint32(ic))
		}
		if r := a[unixDiagRqlen]; len(r) >= 8 {
			d.Rqueue = binary.NativeEndian.Uint32(r)
			d.Wqueue = binary.NativeEndian.Uint32(r[4:])
		}
		if s := a[unixDiagShutdown]; len(s) >= 1 {
			d.Shutdown = int(s[0])
		}
		return d, nil
	}
	return nil, fmt.Errorf("sock_diag: no unix socket with inode %d", ino)
}

// inetDiag is what sock_diag tells about one inet socket.
type inetDiag struct {
	State  int
	Rqueue uint32
	Wqueue uint32
}

// inet dumps the sockets of family/protocol in the given states and returns
// the one with inode ino, or the one bound to port when ino is 0.
func (c *diagConn) inet(family, protocol int, states uint32, ino uint64, port int) (*inetDiag, error) {
	req := make([]byte, 56)
	req[0] = byte(family)
	if protocol < 256 {
		req[1] = byte(protocol)
	} else {
		a := make([]byte, 8)
		binary.NativeEndian.PutUint16(a, 8)
		binary.NativeEndian.PutUint16(a[2:], inetDiagReqProtocol)
		binary.NativeEndian.PutUint32(a[4:], uint32(protocol))
		req = append(req, a...)
	}
	binary.NativeEndian.PutUint32(req[4:], states)
	msgs, err := c.request(req, true)
	if err != nil {
		return nil, err
	}
	for _, m := range msgs {
		if len(m) < 72 {
			continue
		}
		sport := int(binary.BigEndian.Uint16(m[4:]))
		inode := uint64(binary.NativeEndian.Uint32(m[68:]))
		if (ino != 0 && inode == ino) || (ino == 0 && sport == port) {
			return &inetDiag{State: int(m[1]), Rqueue: binary.NativeEndian.Uint32(m[56:]), Wqueue: binary.NativeEndian.Uint32(m[60:])}, nil
		}
	}
	return nil, os.ErrNotExist
}
