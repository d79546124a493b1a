package files

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"math/rand/v2"
	"net/netip"
	"os/exec"
	"reflect"
	"runtime"
	"strings"
	"testing"
	"time"

	"golang.org/x/sys/unix"

	"github.com/godwit-dev/godwit/fault"
	"github.com/godwit-dev/godwit/internal/testutil"
)

// inNewNetns moves the test's goroutine, locked to its thread for good, into
// a fresh network namespace with lo up: every socket the test makes from
// then on (and every process it starts) lives there. The thread is never
// unlocked, so Go discards it when the test ends.
func inNewNetns(t *testing.T) {
	t.Helper()
	testutil.RequireRoot(t)
	runtime.LockOSThread()
	if err := unix.Unshare(unix.CLONE_NEWNET); err != nil {
		t.Skipf("cannot make a network namespace: %v", err)
	}
	fd, err := unix.Socket(unix.AF_INET, unix.SOCK_DGRAM|unix.SOCK_CLOEXEC, 0)
	must(t, err)
	defer unix.Close(fd)
	ifr, err := unix.NewIfreq("lo")
	must(t, err)
	must(t, unix.IoctlIfreq(fd, unix.SIOCGIFFLAGS, ifr))
	ifr.SetUint16(ifr.Uint16() | unix.IFF_UP)
	must(t, unix.IoctlIfreq(fd, unix.SIOCSIFFLAGS, ifr))
}

// ownedFDs are descriptors closed at the end of the test unless closed
// before by close: no number is closed twice (it may be another test's by
// then: some run in parallel).
type ownedFDs struct{ fds []int }

func own(t *testing.T) *ownedFDs {
	o := &ownedFDs{}
	t.Cleanup(func() {
		for _, fd := range o.fds {
			unix.Close(fd)
		}
	})
	return o
}

func (o *ownedFDs) add(fd int) int {
	o.fds = append(o.fds, fd)
	return fd
}

func (o *ownedFDs) close(fd int) {
	for i, f := range o.fds {
		if f == fd {
			unix.Close(fd)
			o.fds = append(o.fds[:i], o.fds[i+1:]...)
			return
		}
	}
}

// tcpConnPair connects a client to a listener on addr and accepts: it
// returns the listener, the client and the accepted end, all non-blocking,
// owned by o. clientRcvBuf and serverRcvBuf set SO_RCVBUF before the
// handshake (0: default).
func tcpConnPair(t *testing.T, o *ownedFDs, addr string, clientRcvBuf, serverRcvBuf int) (l, c, s int) {
	t.Helper()
	mustFD := func(fd int, err error) int {
		t.Helper()
		must(t, err)
		return o.add(fd)
	}
	ap := netip.AddrPortFrom(netip.MustParseAddr(addr), 0)
	family := unix.AF_INET
	if !ap.Addr().Is4() {
		family = unix.AF_INET6
	}
	l = mustFD(unix.Socket(family, unix.SOCK_STREAM|unix.SOCK_CLOEXEC, unix.IPPROTO_TCP))
	if serverRcvBuf > 0 {
		must(t, unix.SetsockoptInt(l, unix.SOL_SOCKET, unix.SO_RCVBUF, serverRcvBuf))
	}
	must(t, unix.Bind(l, inetSockaddr(ap)))
	must(t, unix.Listen(l, 4))
	sa, err := unix.Getsockname(l)
	must(t, err)
	c = mustFD(unix.Socket(family, unix.SOCK_STREAM|unix.SOCK_CLOEXEC, unix.IPPROTO_TCP))
	if clientRcvBuf > 0 {
		must(t, unix.SetsockoptInt(c, unix.SOL_SOCKET, unix.SO_RCVBUF, clientRcvBuf))
	}
	must(t, unix.Connect(c, sa))
	s, _, err = unix.Accept4(l, unix.SOCK_CLOEXEC)
	s = mustFD(s, err)
	setNonblock(t, c)
	setNonblock(t, s)
	return l, c, s
}

// stream is a deterministic pseudo-random byte stream: comparing what
// arrives with it catches lost, repeated and reordered bytes.
func stream(seed byte, n int) []byte {
	r := rand.NewChaCha8([32]byte{seed})
	b := make([]byte, n)
	r.Read(b)
	return b
}

func waitFD(fd int, events int16, deadline time.Time) error {
	for {
		left := time.Until(deadline)
		if left <= 0 {
			return errors.New("timed out")
		}
		p := []unix.PollFd{{Fd: int32(fd), Events: events}}
		n, err := unix.Poll(p, int(left/time.Millisecond)+1)
		if errors.Is(err, unix.EINTR) {
			continue
		}
		if err != nil {
			return err
		}
		if n > 0 {
			return nil
		}
	}
}

// writeSome writes data until the socket is full; it returns what went in.
func writeSome(t *testing.T, fd int, data []byte) int {
	t.Helper()
	off := 0
	for off < len(data) {
		n, err := unix.Write(fd, data[off:])
		if errors.Is(err, unix.EAGAIN) {
			break
		}
		must(t, err)
		off += n
	}
	return off
}

func writeAll(fd int, data []byte, deadline time.Time) error {
	for off := 0; off < len(data); {
		n, err := unix.Write(fd, data[off:])
		if errors.Is(err, unix.EAGAIN) {
			if err := waitFD(fd, unix.POLLOUT, deadline); err != nil {
				return fmt.Errorf("wrote %d of %d bytes: %w", off, len(data), err)
			}
			continue
		}
		if err != nil {
			return fmt.Errorf("wrote %d of %d bytes: %w", off, len(data), err)
		}
		off += n
	}
	return nil
}

// readN reads exactly n bytes, then makes sure no more come for a moment.
func readN(fd, n int, deadline time.Time) ([]byte, error) {
	out := make([]byte, 0, n)
	buf := make([]byte, 1<<16)
	for len(out) < n {
		r, err := unix.Read(fd, buf[:min(len(buf), n-len(out))])
		if errors.Is(err, unix.EAGAIN) {
			if err := waitFD(fd, unix.POLLIN, deadline); err != nil {
				return out, fmt.Errorf("read %d of %d bytes: %w", len(out), n, err)
			}
			continue
		}
		if err != nil {
			return out, fmt.Errorf("read %d of %d bytes: %w", len(out), n, err)
		}
		if r == 0 {
			return out, fmt.Errorf("end of stream after %d of %d bytes", len(out), n)
		}
		out = append(out, buf[:r]...)
	}
	if waitFD(fd, unix.POLLIN, time.Now().Add(100*time.Millisecond)) == nil {
		r, err := unix.Read(fd, buf)
		return out, fmt.Errorf("%d more bytes (%v) after the %d expected", r, err, n)
	}
	return out, nil
}

// exchange sends aData from a to b and bData from b to a at the same time,
// and checks both arrive exactly; wantA and wantB are the whole streams
// each end must read (what was queued before included).
func exchange(t *testing.T, a, b int, aData, bData, wantAtA, wantAtB []byte) {
	t.Helper()
	deadline := time.Now().Add(30 * time.Second)
	type res struct {
		what string
		got  []byte
		want []byte
		err  error
	}
	ch := make(chan res, 4)
	go func() { ch <- res{what: "a writes", err: writeAll(a, aData, deadline)} }()
	go func() { ch <- res{what: "b writes", err: writeAll(b, bData, deadline)} }()
	go func() { got, err := readN(a, len(wantAtA), deadline); ch <- res{"a reads", got, wantAtA, err} }()
	go func() { got, err := readN(b, len(wantAtB), deadline); ch <- res{"b reads", got, wantAtB, err} }()
	for range 4 {
		r := <-ch
		if r.err != nil {
			t.Errorf("%s: %v", r.what, r.err)
		}
		if r.want != nil && !bytes.Equal(r.got, r.want) {
			i := 0
			for i < len(r.got) && i < len(r.want) && r.got[i] == r.want[i] {
				i++
			}
			t.Errorf("%s: %d bytes, want %d; first difference at %d", r.what, len(r.got), len(r.want), i)
		}
	}
	if t.Failed() {
		t.FailNow()
	}
}

// dropAll makes fd's socket discard every segment it receives (a socket
// filter returning 0): what is sent to it stays unacknowledged.
func dropAll(t *testing.T, fd int) {
	t.Helper()
	f := []unix.SockFilter{{Code: unix.BPF_RET | unix.BPF_K, K: 0}}
	must(t, unix.SetsockoptSockFprog(fd, unix.SOL_SOCKET, unix.SO_ATTACH_FILTER, &unix.SockFprog{Len: 1, Filter: &f[0]}))
}

func undrop(t *testing.T, fd int) {
	t.Helper()
	if err := unix.SetsockoptInt(fd, unix.SOL_SOCKET, unix.SO_DETACH_FILTER, 0); !errors.Is(err, unix.ENOENT) {
		must(t, err)
	}
}

func ioctlInt(t *testing.T, fd int, req uint) int {
	t.Helper()
	v, err := unix.IoctlGetInt(fd, req)
	must(t, err)
	return v
}

func sockInt(t *testing.T, fd, level, opt int) int {
	t.Helper()
	v, err := unix.GetsockoptInt(fd, level, opt)
	must(t, err)
	return v
}

func tcpState(t *testing.T, fd int) string {
	t.Helper()
	ti, err := unix.GetsockoptTCPInfo(fd, unix.IPPROTO_TCP, unix.TCP_INFO)
	must(t, err)
	return tcpStateName(int(ti.State))
}

// inspectWith is holder.inspect with options; it returns the description
// as the image gives it back (through JSON).
func (h *holder) inspectWith(t *testing.T, fd int, o InspectOptions) *Desc {
	t.Helper()
	d, err := InspectWith(h.pidfd, h.pid, fd, o)
	if err != nil {
		t.Fatalf("InspectWith fd %d: %v", fd, err)
	}
	b, err := json.Marshal(d)
	must(t, err)
	var back Desc
	must(t, json.Unmarshal(b, &back))
	if !reflect.DeepEqual(&back, d) {
		t.Fatalf("JSON round trip changed the description:\n%s\n%+v", b, back)
	}
	return &back
}

// waitAcked waits until everything fd wrote is acknowledged.
func waitAcked(t *testing.T, fd int) {
	t.Helper()
	testutil.WaitFor(t, 5*time.Second, func() bool { return ioctlInt(t, fd, unix.SIOCOUTQ) == 0 }, "data to be acknowledged")
}

// TestTCPRepairMigrate dumps an established connection with data in flight
// both ways (unread bytes in its receive queue; sent-unacknowledged and
// never-sent bytes in its send queue), closes it in repair mode (the peer
// hears nothing), recreates it in the same namespace and checks that every
// byte arrives exactly once, in order, both ways.
func TestTCPRepairMigrate(t *testing.T) {
	for _, c := range []struct {
		name     string
		addr     string
		accepted bool // migrate the accepted end (its listener stays, on the same port)
		deferred bool // CreateTCP + Activate instead of Create
		lose     bool // what the migrated end sends before the dump is lost
	}{
		{"ipv4-accepted", "127.0.0.1", true, true, true},
		{"ipv6-client", "::1", false, false, true},
		{"ipv4-client", "127.0.0.1", false, false, true},
		{"ipv6-accepted-nothing-lost", "::1", true, true, false},
		{"ipv4-mapped-client-nothing-lost", "::ffff:127.0.0.1", false, false, false},
	} {
		t.Run(c.name, func(t *testing.T) {
			t.Parallel()
			inNewNetns(t)
			// The peer's receive buffer is small, so that part of what the
			// migrated end writes is never sent.
			var a, b int
			o := own(t)
			if c.accepted {
				_, b, a = tcpConnPair(t, o, c.addr, 4096, 0)
			} else {
				_, a, b = tcpConnPair(t, o, c.addr, 0, 4096)
			}
			must(t, unix.SetsockoptInt(a, unix.SOL_SOCKET, unix.SO_REUSEADDR, 1))
			must(t, unix.SetsockoptInt(a, unix.SOL_SOCKET, unix.SO_KEEPALIVE, 1))
			must(t, unix.SetsockoptInt(a, unix.IPPROTO_TCP, unix.TCP_NODELAY, 1))
			must(t, unix.SetsockoptInt(a, unix.IPPROTO_TCP, unix.TCP_KEEPIDLE, 77))
			toA, toB := stream(1, 1<<20), stream(2, 1<<20)
			// b → a: unread by a, acknowledged.
			const queuedAtA = 50000
			must(t, writeAll(b, toA[:queuedAtA], time.Now().Add(5*time.Second)))
			waitAcked(t, b)
			// a → b: b drops everything, so what a sends stays
			// unacknowledged, and what the window does not take stays unsent.
			if c.lose {
				dropAll(t, b)
			}
			queuedAtB := writeSome(t, a, toB[:300000])
			time.Sleep(50 * time.Millisecond)
			outq, unsent := ioctlInt(t, a, unix.SIOCOUTQ), ioctlInt(t, a, unix.SIOCOUTQNSD)
			if c.lose && (outq != queuedAtB || unsent == 0 || unsent == outq) {
				t.Fatalf("a's send queue: %d bytes, %d unsent (wrote %d): want both sent and unsent bytes", outq, unsent, queuedAtB)
			}
			if !c.lose && (outq == 0 || unsent != outq) {
				t.Fatalf("a's send queue: %d bytes, %d unsent: want unsent bytes only", outq, unsent)
			}
			if in := ioctlInt(t, a, unix.SIOCINQ); in != queuedAtA {
				t.Fatalf("a's receive queue: %d bytes, want %d", in, queuedAtA)
			}
			t.Logf("a: %d bytes to read, %d to send of which %d unsent", queuedAtA, outq, unsent)

			a2, err := unix.Dup(a) // a second descriptor of the same socket
			must(t, err)
			o.add(a2)
			h := hold(t, a, a2)
			rep := &Repairs{}
			d := h.inspectWith(t, a, InspectOptions{TCP: TCPEstablished, Repairs: rep})
			d2 := h.inspectWith(t, a2, InspectOptions{TCP: TCPEstablished, Repairs: rep})
			if rep.Len() != 1 {
				t.Fatalf("%d sockets in repair, want 1", rep.Len())
			}
			s, tc := d.Socket, d.Socket.TCP
			if d.Kind != KindTCP || s.State != StateConnected || tc == nil || tc.Closed {
				t.Fatalf("description %+v", s)
			}
			if t2 := d2.Socket.TCP; t2.SendSeq != tc.SendSeq || t2.RecvSeq != tc.RecvSeq || !bytes.Equal(t2.SendQueue, tc.SendQueue) ||
				!bytes.Equal(t2.RecvQueue, tc.RecvQueue) || d2.Socket.Options != s.Options {
				t.Fatalf("second descriptor: seqs %d %d, options %+v; first: %d %d, %+v", t2.SendSeq, t2.RecvSeq, d2.Socket.Options,
					tc.SendSeq, tc.RecvSeq, s.Options)
			}
			if !bytes.Equal(tc.RecvQueue, toA[:queuedAtA]) || !bytes.Equal(tc.SendQueue, toB[queuedAtB-outq:queuedAtB]) || tc.Unsent != unsent {
				t.Fatalf("queues: %d to read, %d to send, %d unsent", len(tc.RecvQueue), len(tc.SendQueue), tc.Unsent)
			}
			if !s.Options.ReuseAddr || !s.Options.KeepAlive || !s.Options.NoDelay || tc.KeepIdle != 77 || tc.MSS == 0 ||
				!tc.Timestamps || !tc.SACK || !tc.WScale || tc.Window == nil {
				t.Fatalf("options %+v, connection %+v", s.Options, tc)
			}
			t.Logf("seq send %d recv %d, mss %d, wscale %d/%d, ts %d, window %+v", tc.SendSeq, tc.RecvSeq, tc.MSS,
				tc.SndWScale, tc.RcvWScale, tc.Timestamp, *tc.Window)
			if sockInt(t, a, unix.IPPROTO_TCP, unix.TCP_REPAIR) != 1 {
				t.Fatal("the dumped socket is not in repair mode")
			}
			if ioctlInt(t, a, unix.SIOCINQ) != queuedAtA {
				t.Fatal("Inspect consumed the receive queue")
			}
			if u := rep.Unlocked(); len(u) != 0 {
				t.Fatalf("unlocked: %v", u)
			}
			// What the peer sends now must not be acknowledged by the dumped
			// socket (it would be lost): it is retransmitted to the new one.
			undrop(t, b)
			const sentDuring = 20000
			must(t, writeAll(b, toA[queuedAtA:queuedAtA+sentDuring], time.Now().Add(5*time.Second)))
			time.Sleep(10 * time.Millisecond)
			if q := ioctlInt(t, b, unix.SIOCOUTQ); q != sentDuring {
				t.Fatalf("the peer has %d of the %d bytes it sent during the dump unacknowledged", q, sentDuring)
			}

			// The migration: the source dies with the socket in repair mode.
			must(t, rep.Finish(false))
			if rep.Len() != 0 {
				t.Fatal("Finish left sockets")
			}
			h.stop()
			o.close(a2)
			o.close(a)
			time.Sleep(20 * time.Millisecond)
			if st := tcpState(t, b); st != "ESTABLISHED" {
				t.Fatalf("the peer went to %s when the repaired socket closed", st)
			}
			p := []unix.PollFd{{Fd: int32(b), Events: unix.POLLRDHUP}}
			if n, _ := unix.Poll(p, 0); n != 0 {
				t.Fatalf("the peer sees events %#x", p[0].Revents)
			}
			// Until the new socket is there, the kernel would answer the
			// peer's retransmissions with RST (a network lock drops them in
			// a real migration): the peer drops what comes in meanwhile.
			dropAll(t, b)

			var na int
			if c.deferred {
				f, pend, err := CreateTCP(d)
				must(t, err)
				closeOnCleanup(t, f)
				na = int(f.Fd())
				if sockInt(t, na, unix.IPPROTO_TCP, unix.TCP_REPAIR) != 1 {
					t.Fatal("CreateTCP left repair mode")
				}
				time.Sleep(20 * time.Millisecond) // the network switch
				must(t, pend.Activate())
				must(t, pend.Activate()) // idempotent
			} else {
				f, _, err := Create(d)
				must(t, err)
				closeOnCleanup(t, f)
				na = int(f.Fd())
			}
			undrop(t, b)
			if sockInt(t, na, unix.IPPROTO_TCP, unix.TCP_REPAIR) != 0 {
				t.Fatal("the recreated socket is still in repair mode")
			}
			sa, err := unix.Getsockname(na)
			must(t, err)
			pa, err := unix.Getpeername(na)
			must(t, err)
			if addrPort(sa) != s.Local || addrPort(pa) != s.Peer || getfl(t, na)&unix.O_NONBLOCK == 0 {
				t.Fatalf("recreated %v -> %v", addrPort(sa), addrPort(pa))
			}
			if sockInt(t, na, unix.SOL_SOCKET, unix.SO_REUSEADDR) != 1 || sockInt(t, na, unix.SOL_SOCKET, unix.SO_KEEPALIVE) != 1 ||
				sockInt(t, na, unix.IPPROTO_TCP, unix.TCP_NODELAY) != 1 || sockInt(t, na, unix.IPPROTO_TCP, unix.TCP_KEEPIDLE) != 77 {
				t.Fatal("options not recreated")
			}
			exchange(t, na, b, toB[queuedAtB:], toA[queuedAtA+sentDuring:], toA, toB)
			if st := tcpState(t, na); st != "ESTABLISHED" {
				t.Fatalf("recreated connection in %s", st)
			}
		})
	}
}

// TestTCPRepairResume abandons a dump: repair mode goes off again and the
// original connection carries on, with its queues and SO_REUSEADDR intact.
func TestTCPRepairResume(t *testing.T) {
	inNewNetns(t)
	_, a, b := tcpConnPair(t, own(t), "127.0.0.1", 0, 4096)
	toA, toB := stream(3, 200000), stream(4, 400000)
	must(t, writeAll(b, toA[:10000], time.Now().Add(5*time.Second)))
	waitAcked(t, b)
	dropAll(t, b)
	queuedAtB := writeSome(t, a, toB[:100000])
	h := hold(t, a)
	rep := &Repairs{}
	d := h.inspectWith(t, a, InspectOptions{TCP: TCPEstablished, Repairs: rep})
	if d.Socket.Options.ReuseAddr || len(d.Socket.TCP.SendQueue) != queuedAtB || len(d.Socket.TCP.RecvQueue) != 10000 {
		t.Fatalf("description %+v", d.Socket.TCP)
	}
	if sockInt(t, a, unix.IPPROTO_TCP, unix.TCP_REPAIR) != 1 {
		t.Fatal("not in repair mode")
	}
	// Locked: what the peer sends now is not acknowledged.
	must(t, writeAll(b, toA[10000:15000], time.Now().Add(5*time.Second)))
	time.Sleep(50 * time.Millisecond)
	if q := ioctlInt(t, b, unix.SIOCOUTQ); q != 5000 {
		t.Fatalf("%d of 5000 bytes unacknowledged", q)
	}
	must(t, rep.Finish(true))
	undrop(t, b)
	// (In repair mode the socket reports SO_REUSEADDR set.)
	if sockInt(t, a, unix.IPPROTO_TCP, unix.TCP_REPAIR) != 0 || sockInt(t, a, unix.SOL_SOCKET, unix.SO_REUSEADDR) != 0 {
		t.Fatal("Finish(true) left repair mode or SO_REUSEADDR on")
	}
	if n, err := socketFilterLen(a); n != 0 || err != nil {
		t.Fatalf("filter left: %d %v", n, err)
	}
	exchange(t, a, b, toB[queuedAtB:], toA[15000:], toA, toB)
	if st := tcpState(t, b); st != "ESTABLISHED" {
		t.Fatalf("peer in %s", st)
	}
}

// TestTCPRepairOwnFilter: a socket with a filter of its own is dumped
// without the lock, says so, and keeps its filter.
func TestTCPRepairOwnFilter(t *testing.T) {
	inNewNetns(t)
	_, a, b := tcpConnPair(t, own(t), "::1", 0, 0)
	accept := []unix.SockFilter{{Code: unix.BPF_RET | unix.BPF_K, K: 0xffff}}
	must(t, unix.SetsockoptSockFprog(a, unix.SOL_SOCKET, unix.SO_ATTACH_FILTER, &unix.SockFprog{Len: 1, Filter: &accept[0]}))
	h := hold(t, a)
	rep := &Repairs{}
	d := h.inspectWith(t, a, InspectOptions{TCP: TCPEstablished, Repairs: rep})
	if u := rep.Unlocked(); len(u) != 1 || u[0] != d.Ino {
		t.Fatalf("unlocked %v, want [%d]", u, d.Ino)
	}
	must(t, rep.Finish(true))
	if n, err := socketFilterLen(a); n != 1 || err != nil {
		t.Fatalf("own filter: %d %v", n, err)
	}
	exchange(t, a, b, []byte("ping"), []byte("pong"), []byte("pong"), []byte("ping"))
}

// TestTCPClose restores a connection in TCPClose mode: the dump leaves the
// socket alone, and the recreated socket reads end of file and refuses
// writes, so that an application reconnects.
func TestTCPClose(t *testing.T) {
	inNewNetns(t)
	for _, addr := range []string{"127.0.0.1", "::1"} {
		o := own(t)
		l, a, b := tcpConnPair(t, o, addr, 0, 0)
		_, err := unix.Write(b, []byte("unread"))
		must(t, err)
		h := hold(t, a)
		d := h.inspectWith(t, a, InspectOptions{TCP: TCPClose})
		if d.Socket.State != StateConnected || d.Socket.TCP == nil || !d.Socket.TCP.Closed || !d.Socket.Peer.IsValid() {
			t.Fatalf("description %+v", d.Socket)
		}
		if sockInt(t, a, unix.IPPROTO_TCP, unix.TCP_REPAIR) != 0 {
			t.Fatal("TCPClose put the socket into repair mode")
		}
		f, _, err := Create(d)
		must(t, err)
		closeOnCleanup(t, f)
		fd := int(f.Fd())
		p := []unix.PollFd{{Fd: int32(fd), Events: unix.POLLIN | unix.POLLRDHUP}}
		if n, _ := unix.Poll(p, 0); n != 1 || p[0].Revents&(unix.POLLIN|unix.POLLHUP|unix.POLLRDHUP) != unix.POLLIN|unix.POLLHUP|unix.POLLRDHUP {
			t.Fatalf("poll: %#x", p[0].Revents)
		}
		buf := make([]byte, 10)
		if n, err := unix.Read(fd, buf); n != 0 || err != nil {
			t.Fatalf("read: %d, %v; want end of file", n, err)
		}
		if _, err := unix.SendmsgN(fd, []byte("x"), nil, nil, unix.MSG_NOSIGNAL); !errors.Is(err, unix.EPIPE) {
			t.Fatalf("write: %v, want EPIPE", err)
		}
		if proto := sockInt(t, fd, unix.SOL_SOCKET, unix.SO_PROTOCOL); proto != unix.IPPROTO_TCP {
			t.Fatalf("protocol %d", proto)
		}
		// The source dies normally: the peer hears of it.
		h.stop()
		o.close(a)
		if _, err := readN(b, 1, time.Now().Add(5*time.Second)); err == nil || !strings.Contains(err.Error(), "end of stream") &&
			!errors.Is(err, unix.ECONNRESET) {
			t.Fatalf("peer after the source closed: %v", err)
		}
		o.close(l)
	}
}

// TestTCPClosePython hands a socket restored in TCPClose mode to a Python
// client that reads in a loop: it gets end of file and reconnects.
func TestTCPClosePython(t *testing.T) {
	inNewNetns(t)
	py, err := exec.LookPath("python3")
	if err != nil {
		t.Skipf("no python3: %v", err)
	}
	l, a, _ := tcpConnPair(t, own(t), "127.0.0.1", 0, 0)
	h := hold(t, a)
	d := h.inspectWith(t, a, InspectOptions{TCP: TCPClose})
	f, _, err := Create(d)
	must(t, err)
	closeOnCleanup(t, f)
	sa, err := unix.Getsockname(l)
	must(t, err)
	port := addrPort(sa).Port()
	script := `
import socket, sys
s = socket.socket(fileno=3)
while True:
    try:
        data = s.recv(100)
    except OSError as e:
        print("error", e.errno)
        data = b""
    if not data:
        s.close()
        s = socket.create_connection(("127.0.0.1", int(sys.argv[1])))
        s.sendall(b"reconnected")
        print(s.recv(100).decode())
        break
`
	cmd := exec.Command(py, "-c", script, itoa(int(port)))
	cmd.ExtraFiles = append(cmd.ExtraFiles, f)
	type result struct {
		out []byte
		err error
	}
	ch := make(chan result, 1)
	var out bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &out
	must(t, cmd.Start())
	go func() { err := cmd.Wait(); ch <- result{out.Bytes(), err} }()
	if err := waitFD(l, unix.POLLIN, time.Now().Add(60*time.Second)); err != nil {
		cmd.Process.Kill()
		r := <-ch
		t.Fatalf("no reconnection: %v; python: %v: %s", err, r.err, r.out)
	}
	nc, _, err := unix.Accept(l)
	must(t, err)
	defer unix.Close(nc)
	buf := make([]byte, 100)
	n, err := unix.Read(nc, buf)
	must(t, err)
	if string(buf[:n]) != "reconnected" {
		t.Fatalf("the client said %q", buf[:n])
	}
	_, err = unix.Write(nc, []byte("welcome back"))
	must(t, err)
	r := <-ch
	if r.err != nil || strings.TrimSpace(string(r.out)) != "welcome back" {
		t.Fatalf("python: %v: %s", r.err, r.out)
	}
}

// TestTCPModesRefuse covers what stays refused: the default mode, a
// precheck without Repairs (nothing changes, Create refuses), and MPTCP.
func TestTCPModesRefuse(t *testing.T) {
	inNewNetns(t)
	_, a, _ := tcpConnPair(t, own(t), "127.0.0.1", 0, 0)
	h := hold(t, a)
	_, err := Inspect(h.pidfd, h.pid, a)
	wantUnsupported(t, err)
	if !strings.Contains(err.Error(), "established TCP connection") {
		t.Fatalf("error %v", err)
	}
	d := h.inspectWith(t, a, InspectOptions{TCP: TCPEstablished})
	if d.Socket.State != StateConnected || d.Socket.TCP != nil || sockInt(t, a, unix.IPPROTO_TCP, unix.TCP_REPAIR) != 0 {
		t.Fatalf("precheck: %+v", d.Socket)
	}
	_, _, err = Create(d)
	wantUnsupported(t, err)
	_, _, err = CreateTCP(d)
	wantUnsupported(t, err)

	m, err := unix.Socket(unix.AF_INET, unix.SOCK_STREAM|unix.SOCK_CLOEXEC, unix.IPPROTO_MPTCP)
	if err != nil {
		t.Logf("no MPTCP: %v", err)
		return
	}
	defer unix.Close(m)
	l2 := mustFD(t)(unix.Socket(unix.AF_INET, unix.SOCK_STREAM|unix.SOCK_CLOEXEC, unix.IPPROTO_MPTCP))
	must(t, unix.Bind(l2, &unix.SockaddrInet4{Addr: [4]byte{127, 0, 0, 1}}))
	must(t, unix.Listen(l2, 1))
	sa, err := unix.Getsockname(l2)
	must(t, err)
	must(t, unix.Connect(m, sa))
	acc, _, err := unix.Accept4(l2, unix.SOCK_CLOEXEC)
	acc = mustFD(t)(acc, err)
	h2 := hold(t, m, acc)
	_, err = InspectWith(h2.pidfd, h2.pid, m, InspectOptions{TCP: TCPEstablished, Repairs: &Repairs{}})
	wantUnsupported(t, err)
	if !strings.Contains(err.Error(), "MPTCP") {
		t.Fatalf("error %v", err)
	}
	var fe *fault.Error
	if !errors.As(err, &fe) || fe.Code != fault.CodeUnsupported {
		t.Fatalf("error %v", err)
	}
	// TCPClose takes it: it is recreated as a closed MPTCP socket.
	d = h2.inspectWith(t, m, InspectOptions{TCP: TCPClose})
	f, _, err := Create(d)
	must(t, err)
	closeOnCleanup(t, f)
	if n, err := unix.Read(int(f.Fd()), make([]byte, 4)); n != 0 || err != nil {
		t.Fatalf("closed MPTCP read: %d %v", n, err)
	}
}

// FuzzTCPConn feeds checkTCPConn, the gate between an image's TCP state and
// the kernel, arbitrary JSON descriptions.
func FuzzTCPConn(f *testing.F) {
	f.Add(`{"family":2,"type":1,"protocol":6,"state":"connected","local":"127.0.0.1:5","peer":"127.0.0.1:6",` +
		`"options":{"rcvbuf":1,"sndbuf":1,"peek_off":-1},"tcp":{"send_seq":4,"recv_seq":9,"send_queue":"YWJj","unsent":1,"mss":1460,"wscale":true,"snd_wscale":7}}`)
	f.Add(`{"family":10,"type":1,"protocol":6,"local":"[::1]:5","peer":"[::ffff:1.2.3.4]:6","tcp":{"mss":65483,"unsent":-1}}`)
	f.Add(`{"tcp":{"closed":true}}`)
	f.Fuzz(func(t *testing.T, s string) {
		var sk Socket
		if json.Unmarshal([]byte(s), &sk) != nil {
			return
		}
		if checkTCPConn(&sk) != nil {
			return
		}
		c := sk.TCP
		if c.Unsent < 0 || c.Unsent > len(c.SendQueue) || c.SndWScale > tcpMaxWScale || c.RcvWScale > tcpMaxWScale ||
			c.MSS == 0 || !sk.Local.IsValid() || !sk.Peer.IsValid() {
			t.Fatalf("accepted %+v", sk)
		}
		_ = inetSockaddr(sk.Local)
		_ = inetSockaddr(sk.Peer)
	})
}
