package files

import (
	"encoding/binary"
	"errors"
	"fmt"
	"net/netip"
	"os"
	"sync"
	"time"

	"golang.org/x/sys/unix"

	"github.com/godwit-dev/godwit/fault"
)

// TCPMode says what Inspect does with a connected TCP socket.
type TCPMode int

const (
	// TCPRefuse refuses a connected TCP socket as unsupported: the default.
	TCPRefuse TCPMode = iota
	// TCPEstablished dumps an established connection with TCP_REPAIR: its
	// sequence numbers, both queues, options, window and timestamp, for a
	// restore on a host with the same addresses. The socket is left in
	// repair mode (InspectOptions.Repairs keeps it) until the caller
	// decides: Repairs.Finish.
	TCPEstablished
	// TCPClose describes a connected socket as a connection that will be
	// restored closed (reads give end of file, writes EPIPE), for a host
	// with other addresses. The socket is not touched: once the dumped
	// process dies its peer sees the connection end as usual.
	TCPClose
)

func (m TCPMode) String() string {
	switch m {
	case TCPRefuse:
		return "refuse"
	case TCPEstablished:
		return "established"
	case TCPClose:
		return "close"
	}
	return fmt.Sprintf("TCPMode(%d)", int(m))
}

// InspectOptions are the choices of InspectWith; the zero value is what
// Inspect does.
type InspectOptions struct {
	TCP TCPMode
	// Repairs receives the sockets that TCPEstablished put into repair
	// mode. When it is nil, an established connection is only checked
	// (state, protocol) and described without its repair state: that is
	// for a precheck of a process that still runs, and Create refuses such
	// a description.
	Repairs *Repairs
}

// TCPConn is what Socket.TCP holds for a connected TCP socket dumped in
// TCPEstablished or TCPClose mode.
type TCPConn struct {
	// Closed: the connection is recreated as one the peer has closed
	// (TCPClose); nothing else is set.
	Closed bool `json:"closed,omitempty"`

	// TCP_QUEUE_SEQ of the send queue: the sequence number after the last
	// byte written (write_seq), and of the receive queue: the next
	// sequence number expected (rcv_nxt).
	SendSeq uint32 `json:"send_seq,omitempty"`
	RecvSeq uint32 `json:"recv_seq,omitempty"`
	// SendQueue holds the bytes written and not acknowledged yet, oldest
	// first; its last Unsent bytes were never sent (SIOCOUTQNSD).
	SendQueue []byte `json:"send_queue,omitempty"`
	Unsent    int    `json:"unsent,omitempty"`
	// RecvQueue holds the bytes received and not read yet.
	RecvQueue []byte `json:"recv_queue,omitempty"`

	// What the handshake agreed (TCP_REPAIR_OPTIONS): the MSS clamp,
	// SACK, timestamps and window scaling with both shifts.
	MSS        uint32 `json:"mss,omitempty"`
	SACK       bool   `json:"sack,omitempty"`
	Timestamps bool   `json:"timestamps,omitempty"`
	WScale     bool   `json:"wscale,omitempty"`
	SndWScale  uint8  `json:"snd_wscale,omitempty"`
	RcvWScale  uint8  `json:"rcv_wscale,omitempty"`
	// Timestamp is TCP_TIMESTAMP: the clock of the timestamp option
	// (milliseconds, or microseconds when the low bit is set), read at
	// TimestampAt (Unix nanoseconds). The restore moves the clock on by the
	// time since, so that the peer never sees it go back (PAWS would drop
	// the segments).
	Timestamp   uint32     `json:"timestamp,omitempty"`
	TimestampAt int64      `json:"timestamp_at,omitempty"`
	Window      *TCPWindow `json:"window,omitempty"`

	// TCP-level options.
	Cork        bool `json:"cork,omitempty"`
	KeepIdle    int  `json:"keepidle,omitempty"`     // TCP_KEEPIDLE, seconds
	KeepIntvl   int  `json:"keepintvl,omitempty"`    // TCP_KEEPINTVL, seconds
	KeepCnt     int  `json:"keepcnt,omitempty"`      // TCP_KEEPCNT
	UserTimeout int  `json:"user_timeout,omitempty"` // TCP_USER_TIMEOUT, ms
	FreeBind    bool `json:"freebind,omitempty"`     // IP_FREEBIND
}

// TCPWindow is struct tcp_repair_window (TCP_REPAIR_WINDOW).
type TCPWindow struct {
	SndWl1    uint32 `json:"snd_wl1"`
	SndWnd    uint32 `json:"snd_wnd"`
	MaxWindow uint32 `json:"max_window"`
	RcvWnd    uint32 `json:"rcv_wnd"`
	RcvWup    uint32 `json:"rcv_wup"`
}

// Kernel constants golang.org/x/sys/unix lacks.
const (
	tcpNoQueue   = 0 // TCP_REPAIR_QUEUE values
	tcpRecvQueue = 1
	tcpSendQueue = 2

	tcpiOptTimestamps = 1 // tcpi_options bits
	tcpiOptSACK       = 2
	tcpiOptWScale     = 4

	tcpMaxWScale = 14
)

var tcpStates = [...]string{1: "ESTABLISHED", "SYN_SENT", "SYN_RECV", "FIN_WAIT1", "FIN_WAIT2", "TIME_WAIT",
	"CLOSE", "CLOSE_WAIT", "LAST_ACK", "LISTEN", "CLOSING", "NEW_SYN_RECV", "BOUND_INACTIVE"}

func tcpStateName(st int) string {
	if st > 0 && st < len(tcpStates) {
		return tcpStates[st]
	}
	return fmt.Sprintf("state %d", st)
}

// Repairs holds the TCP sockets InspectWith put into repair mode, each by a
// descriptor of godwit's own, until the caller decides what becomes of the
// dumped process: Finish. It is safe for concurrent use; the zero value is
// ready.
type Repairs struct {
	mu    sync.Mutex
	socks map[uint64]*repaired // by socket inode
}

type repaired struct {
	fd        int
	reuseAddr bool // SO_REUSEADDR before repair mode (TCP_REPAIR changes it)
	locked    bool // a drop-all socket filter keeps incoming segments out
}

// Len is the number of sockets in repair mode.
func (r *Repairs) Len() int {
	r.mu.Lock()
	defer r.mu.Unlock()
	return len(r.socks)
}

// Unlocked lists the inodes of the sockets in repair mode that could not be
// locked because the application has a socket filter of its own on them:
// segments the peer sends them after the dump are acknowledged and lost
// unless the network is locked some other way.
func (r *Repairs) Unlocked() []uint64 {
	r.mu.Lock()
	defer r.mu.Unlock()
	var out []uint64
	for ino, s := range r.socks {
		if !s.locked {
			out = append(out, ino)
		}
	}
	return out
}

// Finish releases every socket and empties the set. With resume (the dump is
// abandoned and the process goes on) it removes the lock and turns repair
// mode off again, which puts SO_REUSEADDR back and sends the peer a window
// probe; the connection carries on as if nothing happened (what the peer
// sent meanwhile was dropped unacknowledged: it sends it again). Without
// resume (the process is killed: migration) the socket stays locked and in
// repair mode, so that closing it sends nothing to the peer: neither FIN
// nor RST. Either way godwit's descriptors are closed. The first error is
// returned; every socket is released anyway.
func (r *Repairs) Finish(resume bool) error {
	r.mu.Lock()
	defer r.mu.Unlock()
	var first error
	for ino, s := range r.socks {
		if resume {
			if err := s.release(); err != nil && first == nil {
				first = fmt.Errorf("socket %d: %w", ino, err)
			}
		}
		unix.Close(s.fd)
	}
	r.socks = nil
	return first
}

// release unlocks the socket and ends its repair mode.
func (s *repaired) release() error {
	var err error
	if s.locked {
		if err = unix.SetsockoptInt(s.fd, unix.SOL_SOCKET, unix.SO_DETACH_FILTER, 0); err != nil {
			err = fmt.Errorf("SO_DETACH_FILTER: %w", err)
		}
	}
	if err2 := repairOff(s.fd, s.reuseAddr); err == nil {
		err = err2
	}
	return err
}

// lockIncoming attaches to a socket a filter that drops every segment it
// receives, before TCP sees it: a socket in repair mode still acknowledges
// what arrives, and what it acknowledged after the dump would be lost. The
// peer retransmits to whichever socket answers later. A socket with a filter
// of its own (or a locked one) is left alone: false.
func lockIncoming(fd int) (bool, error) {
	n, err := socketFilterLen(fd)
	if errors.Is(err, unix.EACCES) { // an eBPF filter
		return false, nil
	}
	if err != nil {
		return false, fmt.Errorf("SO_GET_FILTER: %w", err)
	}
	if n > 0 {
		return false, nil
	}
	drop := []unix.SockFilter{{Code: unix.BPF_RET | unix.BPF_K, K: 0}}
	err = unix.SetsockoptSockFprog(fd, unix.SOL_SOCKET, unix.SO_ATTACH_FILTER, &unix.SockFprog{Len: 1, Filter: &drop[0]})
	if errors.Is(err, unix.EPERM) { // SO_LOCK_FILTER
		return false, nil
	}
	if err != nil {
		return false, fmt.Errorf("SO_ATTACH_FILTER: %w", err)
	}
	return true, nil
}

// repairOff ends repair mode on fd and gives SO_REUSEADDR its value back
// (TCP_REPAIR sets the socket's sk_reuse both ways).
func repairOff(fd int, reuseAddr bool) error {
	if err := unix.SetsockoptInt(fd, unix.IPPROTO_TCP, unix.TCP_REPAIR, unix.TCP_REPAIR_OFF); err != nil {
		return fmt.Errorf("TCP_REPAIR off: %w", err)
	}
	v := 0
	if reuseAddr {
		v = 1
	}
	if err := unix.SetsockoptInt(fd, unix.SOL_SOCKET, unix.SO_REUSEADDR, v); err != nil {
		return fmt.Errorf("SO_REUSEADDR: %w", err)
	}
	return nil
}

// tcpConnection handles a TCP socket that is not listening according to
// the inspection's TCPMode. handled is false when the caller goes on as
// before: in TCPRefuse mode, and for a socket that is not connected.
func (in *inspector) tcpConnection(d *Desc, s *Socket) (handled bool, err error) {
	state := -1
	if s.Protocol == unix.IPPROTO_TCP {
		if ti, err := unix.GetsockoptTCPInfo(in.dup, unix.IPPROTO_TCP, unix.TCP_INFO); err == nil {
			state = int(ti.State)
		}
	}
	connected := s.Peer.IsValid() || (state >= 0 && state != tcpClose)
	if !connected || in.opts.TCP == TCPRefuse {
		return false, nil
	}
	if s.Options, err = readOptions(in.dup, s); err != nil {
		return true, err
	}
	// TCP has SO_PEEK_OFF on recent kernels (readOptions does not ask).
	if v, err := unix.GetsockoptInt(in.dup, unix.SOL_SOCKET, unix.SO_PEEK_OFF); err == nil {
		s.Options.PeekOff = v
	}
	s.State = StateConnected
	conn := fmt.Sprintf("%v -> %v", s.Local, s.Peer)
	switch in.opts.TCP {
	case TCPClose:
		s.TCP = &TCPConn{Closed: true}
		return true, nil
	case TCPEstablished:
	default:
		return true, in.fail(fault.CodeInvalidArgument, d.Kind, nil, "unknown TCP mode %d", int(in.opts.TCP))
	}
	if s.Protocol != unix.IPPROTO_TCP {
		return true, in.unsupported(d.Kind, "MPTCP connection %s: the kernel has no TCP_REPAIR for MPTCP sockets (%s: %v) (migration issue)",
			conn, unix.ErrnoName(unix.ENOPROTOOPT), unix.ENOPROTOOPT)
	}
	if state != tcpEstablished {
		return true, in.unsupported(d.Kind, "TCP connection %s in state %s: only ESTABLISHED connections are restored (migration issue)",
			conn, tcpStateName(state))
	}
	if in.opts.Repairs == nil {
		return true, nil
	}
	if s.TCP, err = in.opts.Repairs.dump(in.dup, d.Ino, &s.Options); err != nil {
		if errors.Is(err, unix.EPERM) {
			return true, in.fail(fault.CodePermission, d.Kind, err, "TCP repair of %s (needs CAP_NET_ADMIN in the socket's network namespace)", conn)
		}
		return true, fmt.Errorf("TCP repair of %s: %w", conn, err)
	}
	return true, nil
}

// dump puts the socket sock (of inode ino) into repair mode, keeps a
// descriptor of it and reads its state. o holds the options read before
// repair mode; a socket already in the set keeps those of the first time.
func (r *Repairs) dump(sock int, ino uint64, o *Options) (*TCPConn, error) {
	r.mu.Lock()
	defer r.mu.Unlock()
	if s, ok := r.socks[ino]; ok {
		o.ReuseAddr = s.reuseAddr
		return dumpRepaired(s.fd, o)
	}
	if on, err := unix.GetsockoptInt(sock, unix.IPPROTO_TCP, unix.TCP_REPAIR); err != nil {
		return nil, fmt.Errorf("get TCP_REPAIR: %w", err)
	} else if on != 0 {
		return nil, errors.New("the socket is in repair mode already (another checkpoint?)")
	}
	fd, err := unix.FcntlInt(uintptr(sock), unix.F_DUPFD_CLOEXEC, 0)
	if err != nil {
		return nil, fmt.Errorf("dup: %w", err)
	}
	s := &repaired{fd: fd, reuseAddr: o.ReuseAddr}
	if s.locked, err = lockIncoming(fd); err != nil {
		unix.Close(fd)
		return nil, err
	}
	if err := unix.SetsockoptInt(fd, unix.IPPROTO_TCP, unix.TCP_REPAIR, unix.TCP_REPAIR_ON); err != nil {
		if s.locked {
			unix.SetsockoptInt(fd, unix.SOL_SOCKET, unix.SO_DETACH_FILTER, 0)
		}
		unix.Close(fd)
		return nil, fmt.Errorf("TCP_REPAIR on: %w", err)
	}
	c, err := dumpRepaired(fd, o)
	if err != nil {
		s.release()
		unix.Close(fd)
		return nil, err
	}
	if r.socks == nil {
		r.socks = map[uint64]*repaired{}
	}
	r.socks[ino] = s
	return c, nil
}

// dumpRepaired reads the state of a socket in repair mode.
func dumpRepaired(fd int, o *Options) (*TCPConn, error) {
	var info [8]byte // tcpi_state ... tcpi_snd_wscale:4, tcpi_rcv_wscale:4
	if _, err := getsockoptBytes(fd, unix.IPPROTO_TCP, unix.TCP_INFO, info[:]); err != nil {
		return nil, fmt.Errorf("TCP_INFO: %w", err)
	}
	if info[0] != tcpEstablished {
		return nil, fmt.Errorf("the connection went to state %s", tcpStateName(int(info[0])))
	}
	c := &TCPConn{
		SACK:       info[5]&tcpiOptSACK != 0,
		Timestamps: info[5]&tcpiOptTimestamps != 0,
		WScale:     info[5]&tcpiOptWScale != 0,
	}
	if c.WScale {
		c.SndWScale, c.RcvWScale = info[6]&0xf, info[6]>>4
	}
	inq, err := unix.IoctlGetInt(fd, unix.SIOCINQ)
	if err != nil {
		return nil, fmt.Errorf("SIOCINQ: %w", err)
	}
	outq, err := unix.IoctlGetInt(fd, unix.SIOCOUTQ)
	if err != nil {
		return nil, fmt.Errorf("SIOCOUTQ: %w", err)
	}
	if c.Unsent, err = unix.IoctlGetInt(fd, unix.SIOCOUTQNSD); err != nil {
		return nil, fmt.Errorf("SIOCOUTQNSD: %w", err)
	}
	if c.Unsent > outq || inq < 0 {
		return nil, fmt.Errorf("queue sizes: %d bytes unsent of %d queued, %d to read", c.Unsent, outq, inq)
	}
	// A peek starts at SO_PEEK_OFF when the application set one: rewind it,
	// and put it back after (peeking moves it).
	if o.PeekOff >= 0 {
		if err := unix.SetsockoptInt(fd, unix.SOL_SOCKET, unix.SO_PEEK_OFF, 0); err != nil {
			return nil, fmt.Errorf("SO_PEEK_OFF: %w", err)
		}
		defer unix.SetsockoptInt(fd, unix.SOL_SOCKET, unix.SO_PEEK_OFF, o.PeekOff)
	}
	defer unix.SetsockoptInt(fd, unix.IPPROTO_TCP, unix.TCP_REPAIR_QUEUE, tcpNoQueue)
	if c.RecvSeq, c.RecvQueue, err = peekRepairQueue(fd, tcpRecvQueue, inq); err != nil {
		return nil, fmt.Errorf("receive queue: %w", err)
	}
	if c.SendSeq, c.SendQueue, err = peekRepairQueue(fd, tcpSendQueue, outq); err != nil {
		return nil, fmt.Errorf("send queue: %w", err)
	}
	// In repair mode TCP_MAXSEG reports the MSS clamp.
	mss, err := unix.GetsockoptInt(fd, unix.IPPROTO_TCP, unix.TCP_MAXSEG)
	if err != nil {
		return nil, fmt.Errorf("TCP_MAXSEG: %w", err)
	}
	c.MSS = uint32(mss)
	if c.Timestamps {
		ts, err := unix.GetsockoptInt(fd, unix.IPPROTO_TCP, unix.TCP_TIMESTAMP)
		if err != nil {
			return nil, fmt.Errorf("TCP_TIMESTAMP: %w", err)
		}
		c.Timestamp, c.TimestampAt = uint32(ts), time.Now().UnixNano()
	}
	if c.Window, err = getRepairWindow(fd); err != nil {
		return nil, fmt.Errorf("TCP_REPAIR_WINDOW: %w", err)
	}
	for _, g := range []struct {
		level, opt int
		dst        *int
	}{
		{unix.IPPROTO_TCP, unix.TCP_KEEPIDLE, &c.KeepIdle},
		{unix.IPPROTO_TCP, unix.TCP_KEEPINTVL, &c.KeepIntvl},
		{unix.IPPROTO_TCP, unix.TCP_KEEPCNT, &c.KeepCnt},
		{unix.IPPROTO_TCP, unix.TCP_USER_TIMEOUT, &c.UserTimeout},
	} {
		if *g.dst, err = unix.GetsockoptInt(fd, g.level, g.opt); err != nil {
			return nil, fmt.Errorf("TCP option %d: %w", g.opt, err)
		}
	}
	if c.Cork, err = getBool(fd, unix.IPPROTO_TCP, unix.TCP_CORK); err != nil {
		return nil, fmt.Errorf("TCP_CORK: %w", err)
	}
	if c.FreeBind, err = getBool(fd, unix.IPPROTO_IP, unix.IP_FREEBIND); err != nil {
		return nil, fmt.Errorf("IP_FREEBIND: %w", err)
	}
	// Nothing may have arrived meanwhile: it would be acknowledged and lost.
	if err := unix.SetsockoptInt(fd, unix.IPPROTO_TCP, unix.TCP_REPAIR_QUEUE, tcpRecvQueue); err != nil {
		return nil, fmt.Errorf("TCP_REPAIR_QUEUE: %w", err)
	}
	if seq, err := unix.GetsockoptInt(fd, unix.IPPROTO_TCP, unix.TCP_QUEUE_SEQ); err != nil {
		return nil, fmt.Errorf("TCP_QUEUE_SEQ: %w", err)
	} else if uint32(seq) != c.RecvSeq {
		return nil, fmt.Errorf("%d bytes arrived during the dump (is the network locked?)", uint32(seq)-c.RecvSeq)
	}
	return c, nil
}

// peekRepairQueue selects queue of a socket in repair mode and reads its
// sequence number and its n bytes, without consuming them.
func peekRepairQueue(fd, queue, n int) (uint32, []byte, error) {
	if err := unix.SetsockoptInt(fd, unix.IPPROTO_TCP, unix.TCP_REPAIR_QUEUE, queue); err != nil {
		return 0, nil, fmt.Errorf("TCP_REPAIR_QUEUE: %w", err)
	}
	seq, err := unix.GetsockoptInt(fd, unix.IPPROTO_TCP, unix.TCP_QUEUE_SEQ)
	if err != nil {
		return 0, nil, fmt.Errorf("TCP_QUEUE_SEQ: %w", err)
	}
	if n == 0 {
		return uint32(seq), nil, nil
	}
	// One call reads the whole queue (a repeated MSG_PEEK would start over);
	// one byte more tells that there is no more.
	buf := make([]byte, n+1)
	got, _, err := unix.Recvfrom(fd, buf, unix.MSG_PEEK|unix.MSG_DONTWAIT)
	if err != nil {
		return 0, nil, fmt.Errorf("peek: %w", err)
	}
	if got != n {
		return 0, nil, fmt.Errorf("peeked %d of %d queued bytes", got, n)
	}
	return uint32(seq), buf[:n:n], nil
}

func getRepairWindow(fd int) (*TCPWindow, error) {
	var b [20]byte
	n, err := getsockoptBytes(fd, unix.IPPROTO_TCP, unix.TCP_REPAIR_WINDOW, b[:])
	if err != nil {
		return nil, err
	}
	if n != len(b) {
		return nil, fmt.Errorf("%d bytes, want %d", n, len(b))
	}
	u := func(i int) uint32 { return binary.NativeEndian.Uint32(b[4*i:]) }
	return &TCPWindow{SndWl1: u(0), SndWnd: u(1), MaxWindow: u(2), RcvWnd: u(3), RcvWup: u(4)}, nil
}

func setRepairWindow(fd int, w *TCPWindow) error {
	var b [20]byte
	for i, v := range []uint32{w.SndWl1, w.SndWnd, w.MaxWindow, w.RcvWnd, w.RcvWup} {
		binary.NativeEndian.PutUint32(b[4*i:], v)
	}
	return setsockoptBytes(fd, unix.IPPROTO_TCP, unix.TCP_REPAIR_WINDOW, b[:])
}

// checkTCPConn tells whether s describes a connection CreateTCP can
// recreate.
func checkTCPConn(s *Socket) error {
	c := s.TCP
	switch {
	case c == nil:
		return errors.New("connection dumped without its TCP repair state")
	case c.Closed:
		return errors.New("connection dumped to be restored closed")
	case s.Protocol != unix.IPPROTO_TCP || s.Type != unix.SOCK_STREAM:
		return fmt.Errorf("protocol %d, type %d: not TCP", s.Protocol, s.Type)
	case s.Family != unix.AF_INET && s.Family != unix.AF_INET6:
		return fmt.Errorf("family %d", s.Family)
	case !validInet(s.Family, s.Local) || !validInet(s.Family, s.Peer):
		return fmt.Errorf("addresses %v -> %v for family %d", s.Local, s.Peer, s.Family)
	case c.Unsent < 0 || c.Unsent > len(c.SendQueue):
		return fmt.Errorf("%d unsent bytes of %d queued", c.Unsent, len(c.SendQueue))
	case c.SndWScale > tcpMaxWScale || c.RcvWScale > tcpMaxWScale:
		return fmt.Errorf("window scale %d/%d", c.SndWScale, c.RcvWScale)
	case c.MSS == 0 || c.MSS > 0xffff:
		return fmt.Errorf("MSS %d", c.MSS)
	}
	return nil
}

func validInet(family int, ap netip.AddrPort) bool {
	if !ap.IsValid() || ap.Port() == 0 || ap.Addr().IsUnspecified() {
		return false
	}
	return family == unix.AF_INET6 || ap.Addr().Is4()
}

// TCPPending is an established TCP connection CreateTCP recreated in repair
// mode: nothing reaches the peer until Activate.
type TCPPending struct {
	mu  sync.Mutex
	fd  int // godwit's own descriptor, -1 once done
	d   *Desc
	err error
}

// CreateTCP recreates the established connection d describes (dumped in
// TCPEstablished mode) with TCP_REPAIR in the calling thread's network
// namespace, bound to the dumped local address (IP_FREEBIND: the address
// need not be up yet, but a route to the peer must exist) and connected
// without a handshake, its queues refilled, and leaves it in repair mode:
// the peer sees nothing. file is the descriptor to plant, with d's status
// flags. Call p.Activate once the network is switched and before the
// restored process runs (Activate sends the bytes that had never been
// sent: the process must not write before them), or p.Abort.
func CreateTCP(d *Desc) (file *os.File, p *TCPPending, err error) {
	if d.Kind != KindTCP || d.Socket == nil {
		return nil, nil, d.unsupported("CreateTCP needs a TCP socket")
	}
	if err := checkTCPConn(d.Socket); err != nil {
		return nil, nil, d.unsupported("%v", err)
	}
	fd, err := createRepaired(d)
	if err != nil {
		return nil, nil, err
	}
	if err := setStatusFlags(d, fd); err != nil {
		unix.Close(fd)
		return nil, nil, err
	}
	own, err := unix.FcntlInt(uintptr(fd), unix.F_DUPFD_CLOEXEC, 0)
	if err != nil {
		unix.Close(fd)
		return nil, nil, d.createErr(err, "dup")
	}
	return os.NewFile(uintptr(fd), d.Kind), &TCPPending{fd: own, d: d}, nil
}

// Activate turns repair mode off: the connection goes live (the kernel
// sends the peer a window probe), the never-sent bytes are queued for
// sending, and SO_REUSEADDR and the send buffer get their dumped values.
// It closes godwit's descriptor; a second call returns the first result.
func (p *TCPPending) Activate() error {
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.fd < 0 {
		return p.err
	}
	p.err = activateTCP(p.d, p.fd)
	unix.Close(p.fd)
	p.fd = -1
	return p.err
}

// Abort closes godwit's descriptor without leaving repair mode: once the
// planted copies are closed too, the connection vanishes without a word to
// the peer.
func (p *TCPPending) Abort() {
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.fd >= 0 {
		unix.Close(p.fd)
		p.fd = -1
		p.err = errors.New("aborted")
	}
}

// createRepaired is CreateTCP up to Activate: a socket in repair mode.
func createRepaired(d *Desc) (int, error) {
	s, c := d.Socket, d.Socket.TCP
	fd, err := unix.Socket(s.Family, unix.SOCK_STREAM|unix.SOCK_CLOEXEC|unix.SOCK_NONBLOCK, unix.IPPROTO_TCP)
	if err != nil {
		return -1, d.createErr(err, "socket")
	}
	fail := func(err error, format string, args ...any) (int, error) {
		unix.Close(fd)
		if errors.Is(err, unix.EPERM) {
			format += " (TCP repair needs CAP_NET_ADMIN in the network namespace)"
		}
		return -1, d.createErr(err, format, args...)
	}
	setInt := func(level, opt, v int) error { return unix.SetsockoptInt(fd, level, opt, v) }
	// Repair mode first: it also lets bind take the port whatever holds it
	// (sk_reuse = SK_FORCE_REUSE).
	if err := setInt(unix.IPPROTO_TCP, unix.TCP_REPAIR, unix.TCP_REPAIR_ON); err != nil {
		return fail(err, "TCP_REPAIR on")
	}
	// The buffers before connect: they size the window clamp.
	if err := applyOptions(fd, s, s.Options); err != nil {
		return fail(err, "options")
	}
	// The sequence numbers of the queues' heads: refilling the queues
	// moves them to the dumped ones.
	for _, q := range []struct {
		queue int
		seq   uint32
	}{{tcpRecvQueue, c.RecvSeq - uint32(len(c.RecvQueue))}, {tcpSendQueue, c.SendSeq - uint32(len(c.SendQueue))}} {
		if err := setInt(unix.IPPROTO_TCP, unix.TCP_REPAIR_QUEUE, q.queue); err != nil {
			return fail(err, "TCP_REPAIR_QUEUE %d", q.queue)
		}
		if err := setInt(unix.IPPROTO_TCP, unix.TCP_QUEUE_SEQ, int(int32(q.seq))); err != nil {
			return fail(err, "TCP_QUEUE_SEQ of queue %d", q.queue)
		}
	}
	if err := setInt(unix.IPPROTO_IP, unix.IP_FREEBIND, 1); err != nil {
		return fail(err, "IP_FREEBIND")
	}
	if err := unix.Bind(fd, inetSockaddr(s.Local)); err != nil {
		return fail(err, "bind %v", s.Local)
	}
	if !c.FreeBind {
		if err := setInt(unix.IPPROTO_IP, unix.IP_FREEBIND, 0); err != nil {
			return fail(err, "IP_FREEBIND")
		}
	}
	// In repair mode connect sends nothing: the socket is established.
	if err := unix.Connect(fd, inetSockaddr(s.Peer)); err != nil {
		return fail(err, "connect %v", s.Peer)
	}
	// The options before any data (the kernel refuses them after).
	opts := []unix.TCPRepairOpt{{Code: unix.TCPOPT_MAXSEG, Val: c.MSS}}
	if c.SACK {
		opts = append(opts, unix.TCPRepairOpt{Code: unix.TCPOPT_SACK_PERMITTED})
	}
	if c.WScale {
		opts = append(opts, unix.TCPRepairOpt{Code: unix.TCPOPT_WINDOW, Val: uint32(c.SndWScale) | uint32(c.RcvWScale)<<16})
	}
	if c.Timestamps {
		opts = append(opts, unix.TCPRepairOpt{Code: unix.TCPOPT_TIMESTAMP})
	}
	if err := unix.SetsockoptTCPRepairOpt(fd, unix.IPPROTO_TCP, unix.TCP_REPAIR_OPTIONS, opts); err != nil {
		return fail(err, "TCP_REPAIR_OPTIONS")
	}
	if c.Timestamps {
		if err := setInt(unix.IPPROTO_TCP, unix.TCP_TIMESTAMP, int(int32(tcpTimestampNow(c, time.Now())))); err != nil {
			return fail(err, "TCP_TIMESTAMP")
		}
	}
	// The receive queue: room for it, then the dumped buffer size again.
	if len(c.RecvQueue) > 0 {
		if err := setInt(unix.IPPROTO_TCP, unix.TCP_REPAIR_QUEUE, tcpRecvQueue); err != nil {
			return fail(err, "TCP_REPAIR_QUEUE")
		}
		setInt(unix.SOL_SOCKET, unix.SO_RCVBUFFORCE, max(s.Options.RcvBuf, 4*len(c.RecvQueue)+(1<<20)))
		if err := fillRepairQueue(fd, c.RecvQueue); err != nil {
			return fail(err, "refill the receive queue (%d bytes)", len(c.RecvQueue))
		}
		if err := setBuf(fd, unix.SO_RCVBUF, s.Options.RcvBuf); err != nil {
			return fail(err, "SO_RCVBUF")
		}
	}
	// The window once rcv_nxt is back (the kernel checks the window against
	// it), and before the send queue, which is cut into segments by it.
	if c.Window != nil {
		if err := setRepairWindow(fd, c.Window); err != nil {
			return fail(err, "TCP_REPAIR_WINDOW")
		}
	}
	// The bytes sent but not acknowledged: in repair mode the kernel takes
	// them as sent, and retransmits them as needed once live. The unsent
	// rest waits for Activate. The send buffer stays large until then.
	if len(c.SendQueue) > 0 {
		if err := setInt(unix.IPPROTO_TCP, unix.TCP_REPAIR_QUEUE, tcpSendQueue); err != nil {
			return fail(err, "TCP_REPAIR_QUEUE")
		}
		setInt(unix.SOL_SOCKET, unix.SO_SNDBUFFORCE, max(s.Options.SndBuf, 4*len(c.SendQueue)+(1<<20)))
		if err := fillRepairQueue(fd, c.SendQueue[:len(c.SendQueue)-c.Unsent]); err != nil {
			return fail(err, "refill the send queue (%d bytes)", len(c.SendQueue)-c.Unsent)
		}
	}
	if err := setInt(unix.IPPROTO_TCP, unix.TCP_REPAIR_QUEUE, tcpNoQueue); err != nil {
		return fail(err, "TCP_REPAIR_QUEUE")
	}
	for _, o := range []struct{ opt, v int }{
		{unix.TCP_KEEPIDLE, c.KeepIdle}, {unix.TCP_KEEPINTVL, c.KeepIntvl}, {unix.TCP_KEEPCNT, c.KeepCnt},
		{unix.TCP_USER_TIMEOUT, c.UserTimeout},
	} {
		if o.v == 0 && o.opt != unix.TCP_USER_TIMEOUT {
			continue // the kernel refuses 0; not dumped
		}
		if err := setInt(unix.IPPROTO_TCP, o.opt, o.v); err != nil {
			return fail(err, "TCP option %d", o.opt)
		}
	}
	if c.Cork {
		if err := setInt(unix.IPPROTO_TCP, unix.TCP_CORK, 1); err != nil {
			return fail(err, "TCP_CORK")
		}
	}
	return fd, nil
}

// tcpTimestampNow is the dumped timestamp clock moved on by the time since
// the dump (none when the clocks disagree, at most a day).
func tcpTimestampNow(c *TCPConn, now time.Time) uint32 {
	if c.TimestampAt == 0 {
		return c.Timestamp
	}
	elapsed := min(max(now.UnixNano()-c.TimestampAt, 0), int64(24*time.Hour))
	if c.Timestamp&1 != 0 { // microseconds
		return (c.Timestamp + uint32(elapsed/int64(time.Microsecond))) | 1
	}
	return c.Timestamp + uint32(elapsed/int64(time.Millisecond))
}

// setBuf sets SO_RCVBUF or SO_SNDBUF to what getsockopt reported (twice the
// set value), forcing it when it is above the sysctl maximum.
func setBuf(fd, opt, reported int) error {
	if reported <= 0 {
		return nil
	}
	if err := unix.SetsockoptInt(fd, unix.SOL_SOCKET, opt, reported/2); err != nil {
		return err
	}
	if got, err := unix.GetsockoptInt(fd, unix.SOL_SOCKET, opt); err == nil && got != reported {
		return unix.SetsockoptInt(fd, unix.SOL_SOCKET, opt+unix.SO_SNDBUFFORCE-unix.SO_SNDBUF, reported/2)
	}
	return nil
}

// fillRepairQueue writes data into the queue a socket in repair mode has
// selected. The kernel takes a receive-queue write in one linear piece:
// halve the chunk when it is refused for memory, as CRIU does.
func fillRepairQueue(fd int, data []byte) error {
	chunk := len(data)
	for off := 0; off < len(data); {
		n, err := unix.SendmsgN(fd, data[off:min(off+chunk, len(data))], nil, nil, unix.MSG_DONTWAIT|unix.MSG_NOSIGNAL)
		if (errors.Is(err, unix.ENOMEM) || errors.Is(err, unix.EAGAIN)) && chunk > 1024 {
			chunk /= 2
			continue
		}
		if err != nil {
			return fmt.Errorf("%d of %d bytes: %w", off, len(data), err)
		}
		if n == 0 {
			return fmt.Errorf("%d of %d bytes: no progress", off, len(data))
		}
		off += n
	}
	return nil
}

// activateTCP ends the repair of a connection createRepaired made.
func activateTCP(d *Desc, fd int) error {
	s, c := d.Socket, d.Socket.TCP
	if err := unix.SetsockoptInt(fd, unix.IPPROTO_TCP, unix.TCP_REPAIR, unix.TCP_REPAIR_OFF); err != nil {
		return d.createErr(err, "TCP_REPAIR off")
	}
	if c.Unsent > 0 {
		if err := fillRepairQueue(fd, c.SendQueue[len(c.SendQueue)-c.Unsent:]); err != nil {
			return d.createErr(err, "queue the %d unsent bytes", c.Unsent)
		}
	}
	if len(c.SendQueue) > 0 {
		if err := setBuf(fd, unix.SO_SNDBUF, s.Options.SndBuf); err != nil {
			return d.createErr(err, "SO_SNDBUF")
		}
	}
	if s.Options.ReuseAddr {
		if err := unix.SetsockoptInt(fd, unix.SOL_SOCKET, unix.SO_REUSEADDR, 1); err != nil {
			return d.createErr(err, "SO_REUSEADDR")
		}
	}
	return nil
}

// createTCPConn recreates a connected TCP socket for Create: live at once,
// or closed.
func createTCPConn(d *Desc) (int, error) {
	s := d.Socket
	if s.TCP != nil && s.TCP.Closed {
		return createClosedTCP(d)
	}
	if err := checkTCPConn(s); err != nil {
		return -1, d.unsupported("established TCP connection %v -> %v: %v (migration issue)", s.Local, s.Peer, err)
	}
	fd, err := createRepaired(d)
	if err != nil {
		return -1, err
	}
	if err := activateTCP(d, fd); err != nil {
		unix.Close(fd)
		return -1, err
	}
	return fd, nil
}

// createClosedTCP makes a TCP socket that behaves as a connection the peer
// has closed, as CRIU's --tcp-close does: unbound (the dumped address may
// not exist here), never connected, shut down both ways. Reads give end of
// file, writes EPIPE, poll reports POLLIN|POLLRDHUP|POLLHUP, getpeername
// ENOTCONN.
func createClosedTCP(d *Desc) (int, error) {
	s := d.Socket
	fd, err := unix.Socket(s.Family, s.Type|unix.SOCK_CLOEXEC, s.Protocol)
	if err != nil && s.Protocol == unix.IPPROTO_MPTCP {
		// No MPTCP here: a closed TCP socket behaves the same.
		fd, err = unix.Socket(s.Family, s.Type|unix.SOCK_CLOEXEC, unix.IPPROTO_TCP)
	}
	if err != nil {
		return -1, d.createErr(err, "socket")
	}
	if err := applyOptions(fd, s, s.Options); err != nil {
		unix.Close(fd)
		return -1, d.createErr(err, "options")
	}
	if s.Options.ReuseAddr {
		if err := unix.SetsockoptInt(fd, unix.SOL_SOCKET, unix.SO_REUSEADDR, 1); err != nil {
			unix.Close(fd)
			return -1, d.createErr(err, "SO_REUSEADDR")
		}
	}
	// An unconnected socket answers ENOTCONN but is shut down all the same.
	if err := unix.Shutdown(fd, unix.SHUT_RDWR); err != nil && !errors.Is(err, unix.ENOTCONN) {
		unix.Close(fd)
		return -1, d.createErr(err, "shutdown")
	}
	return fd, nil
}
