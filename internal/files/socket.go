package files

import (
	"errors"
	"net/netip"
	"strconv"

	"golang.org/x/sys/unix"
)

// Socket states.
const (
	StateListening   = "listening"
	StateConnected   = "connected"
	StateUnconnected = "unconnected" // possibly bound (Local is set then)
)

// Socket is a unix, TCP or UDP socket.
type Socket struct {
	Family   int    `json:"family"`   // AF_UNIX, AF_INET, AF_INET6
	Type     int    `json:"type"`     // SOCK_STREAM, SOCK_DGRAM, SOCK_SEQPACKET
	Protocol int    `json:"protocol"` // 0 (unix), IPPROTO_TCP, IPPROTO_MPTCP, IPPROTO_UDP
	State    string `json:"state"`

	// Unix sockets: names in Go's convention ("@" first: abstract; "":
	// unnamed), the peer's inode, and what the kernel holds.
	Name     string    `json:"name,omitempty"`
	PeerName string    `json:"peer_name,omitempty"`
	PeerIno  uint64    `json:"peer_ino,omitempty"`
	Shutdown int       `json:"shutdown,omitempty"` // 1: receive side shut down, 2: send side
	Queue    []Message `json:"queue,omitempty"`    // readable data, oldest first
	// Pending lists the inodes of connections a listening socket has not
	// accepted yet; they are not recreated.
	Pending []uint64 `json:"pending,omitempty"`

	// Inet sockets.
	Local netip.AddrPort `json:"local,omitzero"`
	Peer  netip.AddrPort `json:"peer,omitzero"`
	// InQueue is the number of bytes queued for reading (UDP: not
	// recreated).
	InQueue int `json:"in_queue,omitempty"`

	// Backlog is a listening socket's backlog (0: unknown).
	Backlog int     `json:"backlog,omitempty"`
	Options Options `json:"options"`
	// TCP is the state of a connected TCP socket inspected in
	// TCPEstablished or TCPClose mode.
	TCP *TCPConn `json:"tcp,omitempty"`
}

// Message is a run of queued bytes: the whole stream for a stream socket,
// one datagram (or record) otherwise.
type Message struct {
	Data []byte `json:"data"`
	From string `json:"from,omitempty"` // a datagram's sender, unix name convention
}

// Options are the socket options a Socket carries.
type Options struct {
	ReuseAddr bool   `json:"reuseaddr,omitempty"`
	ReusePort bool   `json:"reuseport,omitempty"`
	KeepAlive bool   `json:"keepalive,omitempty"`
	Broadcast bool   `json:"broadcast,omitempty"`
	NoDelay   bool   `json:"nodelay,omitempty"` // TCP_NODELAY
	V6Only    bool   `json:"v6only,omitempty"`
	PassCred  bool   `json:"passcred,omitempty"`
	PassSec   bool   `json:"passsec,omitempty"`
	RcvBuf    int    `json:"rcvbuf"` // as getsockopt reports it (twice the set value)
	SndBuf    int    `json:"sndbuf"`
	PeekOff   int    `json:"peek_off"` // SO_PEEK_OFF, -1: off
	Device    string `json:"device,omitempty"`
}

func getBool(fd, level, opt int) (bool, error) {
	v, err := unix.GetsockoptInt(fd, level, opt)
	return v != 0, err
}

// readOptions reads the options of sock.
func readOptions(fd int, s *Socket) (Options, error) {
	var o Options
	var err error
	b := func(dst *bool, level, opt int) {
		if err == nil {
			*dst, err = getBool(fd, level, opt)
		}
	}
	i := func(dst *int, level, opt int) {
		if err == nil {
			*dst, err = unix.GetsockoptInt(fd, level, opt)
		}
	}
	i(&o.RcvBuf, unix.SOL_SOCKET, unix.SO_RCVBUF)
	i(&o.SndBuf, unix.SOL_SOCKET, unix.SO_SNDBUF)
	if s.Family == unix.AF_UNIX {
		b(&o.PassCred, unix.SOL_SOCKET, unix.SO_PASSCRED)
		b(&o.PassSec, unix.SOL_SOCKET, unix.SO_PASSSEC)
		i(&o.PeekOff, unix.SOL_SOCKET, unix.SO_PEEK_OFF)
		return o, err
	}
	b(&o.ReuseAddr, unix.SOL_SOCKET, unix.SO_REUSEADDR)
	b(&o.ReusePort, unix.SOL_SOCKET, unix.SO_REUSEPORT)
	b(&o.KeepAlive, unix.SOL_SOCKET, unix.SO_KEEPALIVE)
	if s.Type == unix.SOCK_DGRAM {
		b(&o.Broadcast, unix.SOL_SOCKET, unix.SO_BROADCAST)
		i(&o.PeekOff, unix.SOL_SOCKET, unix.SO_PEEK_OFF)
	} else {
		o.PeekOff = -1
		b(&o.NoDelay, unix.IPPROTO_TCP, unix.TCP_NODELAY)
	}
	if s.Family == unix.AF_INET6 {
		b(&o.V6Only, unix.IPPROTO_IPV6, unix.IPV6_V6ONLY)
	}
	if err == nil {
		o.Device, err = unix.GetsockoptString(fd, unix.SOL_SOCKET, unix.SO_BINDTODEVICE)
		if errors.Is(err, unix.ENOPROTOOPT) {
			err = nil
		}
	}
	return o, err
}

// applyOptions sets on fd the options of o that differ from what fd has.
// SO_REUSEADDR is left for the caller, which needs it on while binding.
func applyOptions(fd int, s *Socket, o Options) error {
	cur, err := readOptions(fd, s)
	if err != nil {
		return err
	}
	type set struct {
		level, opt int
		want, have int
	}
	bi := func(v bool) int {
		if v {
			return 1
		}
		return 0
	}
	sets := []set{
		{unix.SOL_SOCKET, unix.SO_REUSEPORT, bi(o.ReusePort), bi(cur.ReusePort)},
		{unix.SOL_SOCKET, unix.SO_KEEPALIVE, bi(o.KeepAlive), bi(cur.KeepAlive)},
		{unix.SOL_SOCKET, unix.SO_BROADCAST, bi(o.Broadcast), bi(cur.Broadcast)},
		{unix.IPPROTO_TCP, unix.TCP_NODELAY, bi(o.NoDelay), bi(cur.NoDelay)},
		{unix.IPPROTO_IPV6, unix.IPV6_V6ONLY, bi(o.V6Only), bi(cur.V6Only)},
		{unix.SOL_SOCKET, unix.SO_PASSCRED, bi(o.PassCred), bi(cur.PassCred)},
		{unix.SOL_SOCKET, unix.SO_PASSSEC, bi(o.PassSec), bi(cur.PassSec)},
		// The kernel doubles what is set.
		{unix.SOL_SOCKET, unix.SO_RCVBUF, o.RcvBuf / 2, cur.RcvBuf / 2},
		{unix.SOL_SOCKET, unix.SO_SNDBUF, o.SndBuf / 2, cur.SndBuf / 2},
		{unix.SOL_SOCKET, unix.SO_PEEK_OFF, o.PeekOff, cur.PeekOff},
	}
	for _, st := range sets {
		if st.want == st.have {
			continue
		}
		if err := unix.SetsockoptInt(fd, st.level, st.opt, st.want); err != nil {
			if st.opt == unix.SO_RCVBUF || st.opt == unix.SO_SNDBUF {
				// Above the sysctl maximum: the FORCE variants need CAP_NET_ADMIN.
				if err2 := unix.SetsockoptInt(fd, st.level, st.opt+unix.SO_SNDBUFFORCE-unix.SO_SNDBUF, st.want); err2 == nil {
					continue
				}
			}
			return &optError{st.opt, err}
		}
	}
	if o.Device != cur.Device {
		if err := unix.SetsockoptString(fd, unix.SOL_SOCKET, unix.SO_BINDTODEVICE, o.Device); err != nil {
			return &optError{unix.SO_BINDTODEVICE, err}
		}
	}
	return nil
}

type optError struct {
	opt int
	err error
}

func (e *optError) Error() string {
	return "set socket option " + strconv.Itoa(e.opt) + ": " + e.err.Error()
}
func (e *optError) Unwrap() error { return e.err }
