package files

import (
	"errors"
	"net/netip"
	"os"

	"golang.org/x/sys/unix"
)

func unixSockaddr(name string) *unix.SockaddrUnix { return &unix.SockaddrUnix{Name: name} }

// bindUnix binds fd to name. A path still occupied by a dead socket (nobody
// accepts on it: the dumped process is gone) is unlinked and bound again.
func bindUnix(fd int, name string) error {
	err := unix.Bind(fd, unixSockaddr(name))
	if !errors.Is(err, unix.EADDRINUSE) || name[0] == '@' {
		return err
	}
	var st unix.Stat_t
	if unix.Lstat(name, &st) != nil || st.Mode&unix.S_IFMT != unix.S_IFSOCK {
		return err
	}
	probe, perr := unix.Socket(unix.AF_UNIX, unix.SOCK_STREAM|unix.SOCK_CLOEXEC, 0)
	if perr != nil {
		return err
	}
	cerr := unix.Connect(probe, unixSockaddr(name))
	unix.Close(probe)
	if !errors.Is(cerr, unix.ECONNREFUSED) {
		return err // someone listens there (or it is of another type): leave it
	}
	if err := unix.Unlink(name); err != nil {
		return err
	}
	return unix.Bind(fd, unixSockaddr(name))
}

func createUnix(d *Desc) (int, error) {
	s := d.Socket
	if s.State == StateConnected && !(s.Type == unix.SOCK_DGRAM && s.PeerName != "") {
		return -1, d.unsupported("connected unix socket (peer inode %d): recreate it with its peer by CreatePair", s.PeerIno)
	}
	if s.State == StateConnected && len(s.Queue) > 0 {
		return -1, d.unsupported("connected datagram socket with %d queued datagrams whose senders are gone", len(s.Queue))
	}
	fd, err := unix.Socket(unix.AF_UNIX, s.Type|unix.SOCK_CLOEXEC, 0)
	if err != nil {
		return -1, d.createErr(err, "socket")
	}
	fail := func(err error, format string, args ...any) (int, error) {
		unix.Close(fd)
		return -1, d.createErr(err, format, args...)
	}
	if s.Name != "" {
		if err := bindUnix(fd, s.Name); err != nil {
			return fail(err, "bind %q", s.Name)
		}
	}
	switch s.State {
	case StateListening:
		if err := unix.Listen(fd, backlog(s)); err != nil {
			return fail(err, "listen")
		}
	case StateConnected:
		if err := unix.Connect(fd, unixSockaddr(s.PeerName)); err != nil {
			return fail(err, "connect to %q", s.PeerName)
		}
	}
	if len(s.Queue) > 0 {
		if s.Type == unix.SOCK_STREAM || s.Name == "" {
			return fail(nil, "unconnected socket with queued data")
		}
		// Datagrams for a bound socket: send them again, from an unnamed
		// socket (their senders' names are lost).
		tmp, err := unix.Socket(unix.AF_UNIX, s.Type|unix.SOCK_CLOEXEC, 0)
		if err != nil {
			return fail(err, "socket")
		}
		for _, m := range s.Queue {
			if err := unix.Sendto(tmp, m.Data, unix.MSG_DONTWAIT, unixSockaddr(s.Name)); err != nil {
				unix.Close(tmp)
				return fail(err, "requeue a datagram")
			}
		}
		unix.Close(tmp)
	}
	if err := applyOptions(fd, s, s.Options); err != nil {
		return fail(err, "options")
	}
	if s.Shutdown != 0 {
		if err := shutdown(fd, s.Shutdown); err != nil {
			return fail(err, "shutdown")
		}
	}
	return fd, nil
}

func backlog(s *Socket) int {
	if s.Backlog > 0 {
		return s.Backlog
	}
	return unix.SOMAXCONN
}

func shutdown(fd, mask int) error {
	how := map[int]int{1: unix.SHUT_RD, 2: unix.SHUT_WR, 3: unix.SHUT_RDWR}[mask&3]
	err := unix.Shutdown(fd, how)
	if errors.Is(err, unix.ENOTCONN) {
		return nil
	}
	return err
}

// CreatePair recreates two connected unix sockets that are each other's
// peer (a socketpair, or both sides of an accepted connection), with the
// data each had queued for reading, their options and shutdown state.
// Their names are not rebound: only a socketpair comes back exactly.
func CreatePair(a, b *Desc) (fa, fb *os.File, err error) {
	if a.Kind != KindUnix || b.Kind != KindUnix || a.Socket == nil || b.Socket == nil {
		return nil, nil, a.unsupported("CreatePair needs two unix sockets")
	}
	sa, sb := a.Socket, b.Socket
	if sa.PeerIno != b.Ino || sa.Type != sb.Type {
		return nil, nil, a.unsupported("socket %d is not the peer of socket %d", b.Ino, a.Ino)
	}
	p, err := unix.Socketpair(unix.AF_UNIX, sa.Type|unix.SOCK_CLOEXEC, 0)
	if err != nil {
		return nil, nil, a.createErr(err, "socketpair")
	}
	fail := func(d *Desc, err error, format string, args ...any) (*os.File, *os.File, error) {
		closeFDs(p[0], p[1])
		return nil, nil, d.createErr(err, format, args...)
	}
	// Refill each receive queue from the other end. The sender's buffer is
	// raised meanwhile so that a full queue fits.
	for i, d := range []*Desc{a, b} {
		to, from := p[i], p[1-i]
		total := 0
		for _, m := range d.Socket.Queue {
			total += len(m.Data)
		}
		if total == 0 {
			continue
		}
		unix.SetsockoptInt(from, unix.SOL_SOCKET, unix.SO_SNDBUFFORCE, 2*total+(1<<16))
		unix.SetsockoptInt(to, unix.SOL_SOCKET, unix.SO_RCVBUFFORCE, 2*total+(1<<16))
		for _, m := range d.Socket.Queue {
			for off := 0; ; {
				n, err := unix.SendmsgN(from, m.Data[off:], nil, nil, unix.MSG_DONTWAIT)
				if err != nil {
					return fail(d, err, "requeue %d bytes", len(m.Data))
				}
				off += n
				if off >= len(m.Data) {
					break
				}
			}
		}
	}
	for i, d := range []*Desc{a, b} {
		if err := applyOptions(p[i], d.Socket, d.Socket.Options); err != nil {
			return fail(d, err, "options")
		}
	}
	for i, d := range []*Desc{a, b} {
		if d.Socket.Shutdown != 0 {
			if err := shutdown(p[i], d.Socket.Shutdown); err != nil {
				return fail(d, err, "shutdown")
			}
		}
		if err := setStatusFlags(d, p[i]); err != nil {
			closeFDs(p[0], p[1])
			return nil, nil, err
		}
	}
	return os.NewFile(uintptr(p[0]), "unix"), os.NewFile(uintptr(p[1]), "unix"), nil
}

func inetSockaddr(ap netip.AddrPort) unix.Sockaddr {
	if ap.Addr().Is4() {
		return &unix.SockaddrInet4{Port: int(ap.Port()), Addr: ap.Addr().As4()}
	}
	sa := &unix.SockaddrInet6{Port: int(ap.Port()), Addr: ap.Addr().As16()}
	if z := ap.Addr().Zone(); z != "" {
		var id int
		for _, c := range z {
			if c < '0' || c > '9' {
				id = -1
				break
			}
			id = id*10 + int(c-'0')
		}
		if id > 0 {
			sa.ZoneId = uint32(id)
		}
	}
	return sa
}

func createInet(d *Desc) (int, error) {
	s := d.Socket
	if d.Kind == KindTCP && s.State == StateConnected {
		if s.TCP == nil {
			return -1, d.unsupported("established TCP connection (migration issue)")
		}
		return createTCPConn(d)
	}
	fd, err := unix.Socket(s.Family, s.Type|unix.SOCK_CLOEXEC, s.Protocol)
	if err != nil {
		if s.Protocol == unix.IPPROTO_MPTCP {
			return -1, d.createErr(err, "MPTCP socket (is net.mptcp.enabled on?)")
		}
		return -1, d.createErr(err, "socket")
	}
	fail := func(err error, format string, args ...any) (int, error) {
		unix.Close(fd)
		return -1, d.createErr(err, format, args...)
	}
	if err := applyOptions(fd, s, s.Options); err != nil {
		return fail(err, "options")
	}
	// SO_REUSEADDR while binding: connections of the dumped socket may
	// linger in TIME_WAIT on the port. The recorded value is put back after.
	if err := unix.SetsockoptInt(fd, unix.SOL_SOCKET, unix.SO_REUSEADDR, 1); err != nil {
		return fail(err, "SO_REUSEADDR")
	}
	if s.Local.IsValid() {
		if err := unix.Bind(fd, inetSockaddr(s.Local)); err != nil {
			return fail(err, "bind %v", s.Local)
		}
	}
	switch s.State {
	case StateListening:
		if err := unix.Listen(fd, backlog(s)); err != nil {
			return fail(err, "listen")
		}
	case StateConnected:
		if err := unix.Connect(fd, inetSockaddr(s.Peer)); err != nil {
			return fail(err, "connect %v", s.Peer)
		}
	}
	if !s.Options.ReuseAddr {
		if err := unix.SetsockoptInt(fd, unix.SOL_SOCKET, unix.SO_REUSEADDR, 0); err != nil {
			return fail(err, "SO_REUSEADDR")
		}
	}
	return fd, nil
}
