package files

import (
	"bytes"
	"net"
	"net/netip"
	"path/filepath"
	"testing"
	"time"

	"golang.org/x/sys/unix"
)

func recvAll(t *testing.T, fd int) [][]byte {
	t.Helper()
	var out [][]byte
	buf := make([]byte, 1<<16)
	for {
		n, _, err := unix.Recvfrom(fd, buf, unix.MSG_DONTWAIT)
		if err != nil || n == 0 { // n == 0: end of stream (no test sends empty datagrams)
			return out
		}
		out = append(out, append([]byte{}, buf[:n]...))
	}
}

func TestUnixSocketpair(t *testing.T) {
	for _, typ := range []int{unix.SOCK_STREAM, unix.SOCK_DGRAM, unix.SOCK_SEQPACKET} {
		p, err := unix.Socketpair(unix.AF_UNIX, typ, 0)
		must(t, err)
		a, b := mustFD(t)(p[0], nil), mustFD(t)(p[1], nil)
		must(t, unix.SetsockoptInt(a, unix.SOL_SOCKET, unix.SO_PASSCRED, 1))
		must(t, unix.SetNonblock(b, true))
		toA := [][]byte{[]byte("one"), []byte("two!"), []byte("three")}
		for _, m := range toA {
			_, err := unix.Write(b, m)
			must(t, err)
		}
		_, err = unix.Write(a, []byte("for b"))
		must(t, err)
		must(t, unix.Shutdown(b, unix.SHUT_WR))
		h := hold(t, a, b)
		da, db := h.inspect(t, a), h.inspect(t, b)
		sa, sb := da.Socket, db.Socket
		if da.Kind != KindUnix || sa.Type != typ || sa.State != StateConnected || sa.PeerIno != db.Ino || sb.PeerIno != da.Ino {
			t.Fatalf("type %d: %+v / %+v", typ, sa, sb)
		}
		if !sa.Options.PassCred || sb.Options.PassCred || sa.Options.PeekOff != -1 || db.Flags&unix.O_NONBLOCK == 0 {
			t.Fatalf("options %+v / %+v", sa.Options, sb.Options)
		}
		// A stream peer sees the shutdown as its own receive shutdown.
		if sb.Shutdown != 2 || (sa.Shutdown != 1) != (typ == unix.SOCK_DGRAM) {
			t.Fatalf("shutdown a %d b %d", sa.Shutdown, sb.Shutdown)
		}
		var want [][]byte
		if typ == unix.SOCK_STREAM {
			want = [][]byte{bytes.Join(toA, nil)}
		} else {
			want = toA
		}
		if len(sa.Queue) != len(want) {
			t.Fatalf("type %d: queue of a %+v", typ, sa.Queue)
		}
		for i := range want {
			if !bytes.Equal(sa.Queue[i].Data, want[i]) {
				t.Fatalf("type %d: message %d %q, want %q", typ, i, sa.Queue[i].Data, want[i])
			}
		}
		if len(sb.Queue) != 1 || string(sb.Queue[0].Data) != "for b" {
			t.Fatalf("queue of b %+v", sb.Queue)
		}
		// Nothing consumed, peek offset as it was.
		if got := recvAll(t, a); !bytes.Equal(bytes.Join(got, nil), bytes.Join(toA, nil)) || (typ != unix.SOCK_STREAM && len(got) != 3) {
			t.Fatalf("type %d: after Inspect a reads %q", typ, got)
		}
		if off, _ := unix.GetsockoptInt(a, unix.SOL_SOCKET, unix.SO_PEEK_OFF); off != -1 {
			t.Fatalf("SO_PEEK_OFF left at %d", off)
		}
		if _, _, err := Create(da); err == nil {
			t.Fatal("Create of a connected socket without its peer succeeded")
		}
		fa, fb, err := CreatePair(da, db)
		must(t, err)
		closeOnCleanup(t, fa, fb)
		na, nb := int(fa.Fd()), int(fb.Fd())
		if got := recvAll(t, na); !bytes.Equal(bytes.Join(got, nil), bytes.Join(toA, nil)) || (typ != unix.SOCK_STREAM && len(got) != 3) {
			t.Fatalf("type %d: recreated a reads %q", typ, got)
		}
		if got := recvAll(t, nb); len(got) != 1 || string(got[0]) != "for b" {
			t.Fatalf("recreated b reads %q", got)
		}
		if pc, _ := unix.GetsockoptInt(na, unix.SOL_SOCKET, unix.SO_PASSCRED); pc != 1 || getfl(t, nb)&unix.O_NONBLOCK == 0 {
			t.Fatal("options not recreated")
		}
		if _, err := unix.Write(nb, []byte("x")); err != unix.EPIPE {
			t.Fatalf("write on the shut-down end: %v", err)
		}
	}
}

func TestUnixListener(t *testing.T) {
	path := filepath.Join(t.TempDir(), "sock")
	for _, name := range []string{path, "@godwit-test-" + itoa(unix.Getpid())} {
		l := mustFD(t)(unix.Socket(unix.AF_UNIX, unix.SOCK_STREAM, 0))
		must(t, unix.Bind(l, &unix.SockaddrUnix{Name: name}))
		must(t, unix.Listen(l, 5))
		c := mustFD(t)(unix.Socket(unix.AF_UNIX, unix.SOCK_STREAM, 0))
		must(t, unix.Connect(c, &unix.SockaddrUnix{Name: name}))
		h := hold(t, l)
		d := h.inspect(t, l)
		s := d.Socket
		if s.State != StateListening || s.Name != name || s.Backlog != 5 || len(s.Pending) != 1 {
			t.Fatalf("listener: %+v", s)
		}
		h.stop()
		unix.Close(l)
		f, _, err := Create(d)
		must(t, err)
		closeOnCleanup(t, f)
		c2 := mustFD(t)(unix.Socket(unix.AF_UNIX, unix.SOCK_STREAM, 0))
		must(t, unix.Connect(c2, &unix.SockaddrUnix{Name: name}))
		nfd, _, err := unix.Accept(int(f.Fd()))
		must(t, err)
		unix.Close(nfd)
	}
}

func TestUnixDgramBound(t *testing.T) {
	path := filepath.Join(t.TempDir(), "dgram")
	s := mustFD(t)(unix.Socket(unix.AF_UNIX, unix.SOCK_DGRAM, 0))
	must(t, unix.Bind(s, &unix.SockaddrUnix{Name: path}))
	c := mustFD(t)(unix.Socket(unix.AF_UNIX, unix.SOCK_DGRAM, 0))
	must(t, unix.Bind(c, &unix.SockaddrUnix{Name: path + ".c"}))
	must(t, unix.Connect(c, &unix.SockaddrUnix{Name: path}))
	_, err := unix.Write(c, []byte("hello"))
	must(t, err)
	h := hold(t, s, c)
	ds, dc := h.inspect(t, s), h.inspect(t, c)
	if ds.Socket.State != StateUnconnected || ds.Socket.Name != path || len(ds.Socket.Queue) != 1 ||
		ds.Socket.Queue[0].From != path+".c" || string(ds.Socket.Queue[0].Data) != "hello" {
		t.Fatalf("bound dgram: %+v", ds.Socket)
	}
	if dc.Socket.State != StateConnected || dc.Socket.PeerName != path || dc.Socket.PeerIno != ds.Ino {
		t.Fatalf("client: %+v", dc.Socket)
	}
	h.stop()
	unix.Close(s)
	unix.Close(c)
	fs, _, err := Create(ds)
	must(t, err)
	closeOnCleanup(t, fs)
	unix.Unlink(path + ".c")
	fc, _, err := Create(dc)
	must(t, err)
	closeOnCleanup(t, fc)
	_, err = unix.Write(int(fc.Fd()), []byte("again"))
	must(t, err)
	if got := recvAll(t, int(fs.Fd())); len(got) != 2 || string(got[0]) != "hello" || string(got[1]) != "again" {
		t.Fatalf("recreated bound dgram reads %q", got)
	}
}

func TestTCPListener(t *testing.T) {
	type tc struct {
		family, proto int
		addr          string
	}
	for _, c := range []tc{{unix.AF_INET, unix.IPPROTO_TCP, "127.0.0.1"}, {unix.AF_INET6, unix.IPPROTO_TCP, "::1"},
		{unix.AF_INET, unix.IPPROTO_MPTCP, "127.0.0.1"}} {
		l, err := unix.Socket(c.family, unix.SOCK_STREAM, c.proto)
		if err != nil && c.proto == unix.IPPROTO_MPTCP {
			t.Logf("no MPTCP here: %v", err)
			continue
		}
		l = mustFD(t)(l, err)
		must(t, unix.SetsockoptInt(l, unix.SOL_SOCKET, unix.SO_REUSEADDR, 1))
		must(t, unix.SetsockoptInt(l, unix.SOL_SOCKET, unix.SO_KEEPALIVE, 1))
		must(t, unix.SetsockoptInt(l, unix.IPPROTO_TCP, unix.TCP_NODELAY, 1))
		must(t, unix.SetsockoptInt(l, unix.SOL_SOCKET, unix.SO_RCVBUF, 300000))
		if c.family == unix.AF_INET6 {
			must(t, unix.SetsockoptInt(l, unix.IPPROTO_IPV6, unix.IPV6_V6ONLY, 1))
		}
		ap := netip.AddrPortFrom(netip.MustParseAddr(c.addr), 0)
		must(t, unix.Bind(l, inetSockaddr(ap)))
		must(t, unix.Listen(l, 17))
		sa, err := unix.Getsockname(l)
		must(t, err)
		local := addrPort(sa)
		// An established connection on the listener's port: its TIME_WAIT
		// must not keep the recreated listener from binding.
		conn, err := net.Dial("tcp", local.String())
		must(t, err)
		acc, _, err := unix.Accept(l)
		must(t, err)

		h := hold(t, l, acc)
		d := h.inspect(t, l)
		s := d.Socket
		if d.Kind != KindTCP || s.Protocol != c.proto || s.Family != c.family || s.State != StateListening || s.Local != local ||
			!s.Options.ReuseAddr || !s.Options.KeepAlive || !s.Options.NoDelay || s.Options.V6Only != (c.family == unix.AF_INET6) ||
			s.Options.RcvBuf != 600000 {
			t.Fatalf("%+v: %+v", c, s)
		}
		if s.Backlog != 17 {
			t.Errorf("%+v: backlog %d, want 17", c, s.Backlog)
		}
		_, err = Inspect(h.pidfd, h.pid, acc)
		if c.proto == unix.IPPROTO_TCP {
			wantUnsupported(t, err)
		}
		// Close the original everywhere, server side first (TIME_WAIT).
		h.stop()
		unix.Close(acc)
		unix.Close(l)
		conn.Close()
		f, _, err := Create(d)
		must(t, err)
		closeOnCleanup(t, f)
		nfd := int(f.Fd())
		if proto, _ := unix.GetsockoptInt(nfd, unix.SOL_SOCKET, unix.SO_PROTOCOL); proto != c.proto {
			t.Fatalf("recreated protocol %d", proto)
		}
		if rb, _ := unix.GetsockoptInt(nfd, unix.SOL_SOCKET, unix.SO_RCVBUF); rb != 600000 {
			t.Fatalf("recreated SO_RCVBUF %d", rb)
		}
		if ra, _ := unix.GetsockoptInt(nfd, unix.SOL_SOCKET, unix.SO_REUSEADDR); ra != 1 {
			t.Fatal("SO_REUSEADDR lost")
		}
		cc, err := net.DialTimeout("tcp", local.String(), 2*time.Second)
		must(t, err)
		cc.Close()
		a2, _, err := unix.Accept(nfd)
		must(t, err)
		unix.Close(a2)
	}
}

func TestUDP(t *testing.T) {
	s := mustFD(t)(unix.Socket(unix.AF_INET, unix.SOCK_DGRAM, 0))
	must(t, unix.SetsockoptInt(s, unix.SOL_SOCKET, unix.SO_BROADCAST, 1))
	must(t, unix.Bind(s, &unix.SockaddrInet4{Addr: [4]byte{127, 0, 0, 1}}))
	sa, err := unix.Getsockname(s)
	must(t, err)
	must(t, unix.Sendto(s, []byte("to self"), 0, sa))
	c := mustFD(t)(unix.Socket(unix.AF_INET, unix.SOCK_DGRAM, 0))
	must(t, unix.Connect(c, sa))
	h := hold(t, s, c)
	ds, dc := h.inspect(t, s), h.inspect(t, c)
	if ds.Kind != KindUDP || ds.Socket.Local != addrPort(sa) || ds.Socket.State != StateUnconnected || !ds.Socket.Options.Broadcast ||
		ds.Socket.InQueue != 7 {
		t.Fatalf("udp: %+v", ds.Socket)
	}
	if dc.Socket.State != StateConnected || dc.Socket.Peer != addrPort(sa) {
		t.Fatalf("connected udp: %+v", dc.Socket)
	}
	if got := recvAll(t, s); len(got) != 1 {
		t.Fatal("Inspect consumed the datagram")
	}
	h.stop()
	unix.Close(s)
	unix.Close(c)
	fs, _, err := Create(ds)
	must(t, err)
	fc, _, err := Create(dc)
	must(t, err)
	closeOnCleanup(t, fs, fc)
	_, err = unix.Write(int(fc.Fd()), []byte("ping"))
	must(t, err)
	time.Sleep(10 * time.Millisecond)
	if got := recvAll(t, int(fs.Fd())); len(got) != 1 || string(got[0]) != "ping" {
		t.Fatalf("recreated udp reads %q", got)
	}
}
