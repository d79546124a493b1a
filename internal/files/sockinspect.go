package files

import (
	"errors"
	"fmt"
	"net/netip"

	"golang.org/x/sys/unix"
)

// tcpClose and tcpListen are the kernel's TCP states (sock_diag, TCP_INFO).
const (
	tcpEstablished = 1
	tcpClose       = 7
	tcpListen      = 10
)

func (in *inspector) socket(d *Desc) error {
	s := &Socket{}
	var err error
	if s.Family, err = unix.GetsockoptInt(in.dup, unix.SOL_SOCKET, unix.SO_DOMAIN); err != nil {
		return fmt.Errorf("SO_DOMAIN: %w", err)
	}
	if s.Type, err = unix.GetsockoptInt(in.dup, unix.SOL_SOCKET, unix.SO_TYPE); err != nil {
		return fmt.Errorf("SO_TYPE: %w", err)
	}
	if s.Protocol, err = unix.GetsockoptInt(in.dup, unix.SOL_SOCKET, unix.SO_PROTOCOL); err != nil {
		return fmt.Errorf("SO_PROTOCOL: %w", err)
	}
	d.Socket = s
	switch {
	case s.Family == unix.AF_UNIX:
		d.Kind = KindUnix
		return in.unixSocket(d, s)
	case (s.Family == unix.AF_INET || s.Family == unix.AF_INET6) && s.Type == unix.SOCK_STREAM &&
		(s.Protocol == unix.IPPROTO_TCP || s.Protocol == unix.IPPROTO_MPTCP):
		d.Kind = KindTCP
	case (s.Family == unix.AF_INET || s.Family == unix.AF_INET6) && s.Type == unix.SOCK_DGRAM &&
		(s.Protocol == unix.IPPROTO_UDP || s.Protocol == unix.IPPROTO_UDPLITE):
		d.Kind = KindUDP
	default:
		d.Kind = "socket"
		return in.unsupported("socket", "socket of family %d, type %d, protocol %d", s.Family, s.Type, s.Protocol)
	}
	return in.inetSocket(d, s)
}

func (in *inspector) unixSocket(d *Desc, s *Socket) error {
	scm, err := parseScmFds(in.info.Lines)
	if err != nil {
		return err
	}
	if scm > 0 {
		return in.unsupported(d.Kind, "%d descriptors in flight in the receive queue (SCM_RIGHTS)", scm)
	}
	dc, err := openDiag(in.dup)
	if err != nil {
		return err
	}
	defer dc.Close()
	u, err := dc.unix(d.Ino)
	if err != nil {
		return err
	}
	s.Name = u.Name
	s.PeerIno = u.Peer
	s.Shutdown = u.Shutdown
	if s.Options, err = readOptions(in.dup, s); err != nil {
		return err
	}
	switch u.State {
	case tcpListen:
		s.State = StateListening
		s.Backlog = int(u.Wqueue)
		for _, ic := range u.Icons {
			s.Pending = append(s.Pending, uint64(ic))
		}
		return nil
	case tcpEstablished:
		s.State = StateConnected
		// A datagram socket others connected to shows ESTABLISHED too:
		// it is connected only with a peer of its own.
		if s.Type == unix.SOCK_DGRAM && u.Peer == 0 {
			s.State = StateUnconnected
		}
	default:
		s.State = StateUnconnected
	}
	if u.Peer != 0 {
		if p, err := dc.unix(u.Peer); err == nil {
			s.PeerName = p.Name
		}
	}
	s.Queue, err = peekQueue(in.dup, s, int(u.Rqueue))
	return err
}

// peekQueue reads what a socket holds for reading without consuming it:
// MSG_PEEK from a peek offset rewound to 0 and put back afterwards.
// For a stream socket want is the number of bytes queued.
func peekQueue(fd int, s *Socket, want int) ([]Message, error) {
	stream := s.Type == unix.SOCK_STREAM
	if stream && want == 0 {
		return nil, nil
	}
	if err := unix.SetsockoptInt(fd, unix.SOL_SOCKET, unix.SO_PEEK_OFF, 0); err != nil {
		return nil, fmt.Errorf("SO_PEEK_OFF: %w", err)
	}
	defer unix.SetsockoptInt(fd, unix.SOL_SOCKET, unix.SO_PEEK_OFF, s.Options.PeekOff)
	size := 1 << 20
	if stream {
		size = want
	}
	buf := make([]byte, size)
	var out []Message
	var all []byte
	for i := 0; i < 1<<20; i++ {
		n, _, rflags, from, err := unix.Recvmsg(fd, buf, nil, unix.MSG_PEEK|unix.MSG_DONTWAIT)
		if errors.Is(err, unix.EAGAIN) {
			break
		}
		if err != nil {
			return nil, fmt.Errorf("peek the receive queue: %w", err)
		}
		if stream {
			if n == 0 {
				break
			}
			all = append(all, buf[:n]...)
			if len(all) >= want {
				break
			}
			continue
		}
		if rflags&unix.MSG_TRUNC != 0 {
			return nil, fmt.Errorf("a queued datagram is larger than %d bytes", len(buf))
		}
		if n == 0 && s.Shutdown&1 != 0 {
			break // end of file, or an empty datagram: cannot tell
		}
		m := Message{Data: append([]byte{}, buf[:n]...)}
		if sa, ok := from.(*unix.SockaddrUnix); ok {
			m.From = sa.Name
		}
		out = append(out, m)
	}
	if stream {
		if len(all) != want {
			return nil, fmt.Errorf("peeked %d of %d queued bytes", len(all), want)
		}
		out = []Message{{Data: all}}
	}
	return out, nil
}

func addrPort(sa unix.Sockaddr) netip.AddrPort {
	switch a := sa.(type) {
	case *unix.SockaddrInet4:
		return netip.AddrPortFrom(netip.AddrFrom4(a.Addr), uint16(a.Port))
	case *unix.SockaddrInet6:
		ip := netip.AddrFrom16(a.Addr)
		if a.ZoneId != 0 {
			ip = ip.WithZone(fmt.Sprint(a.ZoneId))
		}
		return netip.AddrPortFrom(ip, uint16(a.Port))
	}
	return netip.AddrPort{}
}

func (in *inspector) inetSocket(d *Desc, s *Socket) error {
	listening, err := getBool(in.dup, unix.SOL_SOCKET, unix.SO_ACCEPTCONN)
	if err != nil {
		return fmt.Errorf("SO_ACCEPTCONN: %w", err)
	}
	if sa, err := unix.Getsockname(in.dup); err == nil {
		if ap := addrPort(sa); ap.Port() != 0 || !ap.Addr().IsUnspecified() {
			s.Local = ap
		}
	}
	if sa, err := unix.Getpeername(in.dup); err == nil {
		s.Peer = addrPort(sa)
	}
	switch {
	case listening:
		s.State = StateListening
	case s.Peer.IsValid():
		s.State = StateConnected
	default:
		s.State = StateUnconnected
	}
	if d.Kind == KindTCP && !listening {
		if handled, err := in.tcpConnection(d, s); handled {
			return err
		}
		if s.Peer.IsValid() {
			return in.unsupported(d.Kind, "established TCP connection %v -> %v (migration issue)", s.Local, s.Peer)
		}
		if s.Protocol == unix.IPPROTO_TCP {
			if ti, err := unix.GetsockoptTCPInfo(in.dup, unix.IPPROTO_TCP, unix.TCP_INFO); err == nil && ti.State != tcpClose {
				return in.unsupported(d.Kind, "TCP connection in state %d (migration issue)", ti.State)
			}
		}
	}
	if s.Options, err = readOptions(in.dup, s); err != nil {
		return err
	}
	if d.Kind == KindUDP {
		if s.InQueue, err = unix.IoctlGetInt(in.dup, unix.SIOCINQ); err != nil {
			return fmt.Errorf("SIOCINQ: %w", err)
		}
	}
	if listening {
		s.Backlog = in.backlog(d, s)
	}
	return nil
}

// backlog asks sock_diag for a listening socket's backlog; 0 when it
// cannot tell (for MPTCP it needs the mptcp_diag module, else it reads the
// listening TCP subflow on the same port).
func (in *inspector) backlog(d *Desc, s *Socket) int {
	dc, err := openDiag(in.dup)
	if err != nil {
		return 0
	}
	defer dc.Close()
	r, err := dc.inet(s.Family, s.Protocol, 1<<tcpListen, d.Ino, 0)
	if err != nil && s.Protocol == unix.IPPROTO_MPTCP {
		r, err = dc.inet(s.Family, unix.IPPROTO_TCP, 1<<tcpListen, 0, int(s.Local.Port()))
	}
	if err != nil {
		return 0
	}
	return int(r.Wqueue)
}
