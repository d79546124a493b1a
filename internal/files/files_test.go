package files

import (
	"bytes"
	"encoding/binary"
	"path/filepath"
	"testing"
	"time"

	"golang.org/x/sys/unix"
)

func TestPipe(t *testing.T) {
	var p [2]int
	must(t, unix.Pipe2(p[:], unix.O_NONBLOCK))
	mustFD(t)(p[0], nil)
	mustFD(t)(p[1], nil)
	_, err := unix.FcntlInt(uintptr(p[1]), unix.F_SETPIPE_SZ, 128<<10)
	must(t, err)
	data := bytes.Repeat([]byte("godwit pipe data "), 5000) // 85000 bytes, > 64 KiB
	for off := 0; off < len(data); {
		n, err := unix.Write(p[1], data[off:])
		must(t, err)
		off += n
	}
	h := hold(t, p[0], p[1])
	r, w := h.inspect(t, p[0]), h.inspect(t, p[1])
	for _, d := range []*Desc{r, w} {
		if d.Kind != KindPipe || d.Pipe.Size != 128<<10 || !bytes.Equal(d.Pipe.Data, data) || d.Flags&unix.O_NONBLOCK == 0 {
			t.Fatalf("fd %d: kind %s size %d data %d bytes flags %#o", d.FD, d.Kind, d.Pipe.Size, len(d.Pipe.Data), d.Flags)
		}
	}
	if r.Ino != w.Ino || r.Pipe.End != "read" || w.Pipe.End != "write" {
		t.Fatalf("ino %d/%d ends %s/%s", r.Ino, w.Ino, r.Pipe.End, w.Pipe.End)
	}
	// Nothing was consumed.
	if got := readNow(t, p[0], 1<<20); !bytes.Equal(got, data) {
		t.Fatalf("after Inspect the pipe holds %d bytes, want %d", len(got), len(data))
	}

	f, peer, err := Create(r)
	must(t, err)
	closeOnCleanup(t, f, peer)
	if sz, _ := unix.FcntlInt(f.Fd(), unix.F_GETPIPE_SZ, 0); sz != 128<<10 {
		t.Fatalf("recreated pipe size %d", sz)
	}
	if getfl(t, int(f.Fd()))&unix.O_NONBLOCK == 0 || getfl(t, int(f.Fd()))&unix.O_ACCMODE != unix.O_RDONLY {
		t.Fatalf("recreated read end flags %#o", getfl(t, int(f.Fd())))
	}
	if got := readNow(t, int(f.Fd()), 1<<20); !bytes.Equal(got, data) {
		t.Fatalf("recreated pipe gives %d bytes, want %d", len(got), len(data))
	}
	if _, err := peer.Write([]byte("x")); err != nil {
		t.Fatalf("peer is not the write end: %v", err)
	}

	// An empty pipe, inspected from its write end only.
	var q [2]int
	must(t, unix.Pipe2(q[:], 0))
	mustFD(t)(q[0], nil)
	mustFD(t)(q[1], nil)
	d := hold(t, q[1]).inspect(t, q[1])
	if d.Pipe.Data != nil || d.Pipe.End != "write" {
		t.Fatalf("empty pipe: %+v", d.Pipe)
	}
	f, peer, err = Create(d)
	must(t, err)
	closeOnCleanup(t, f, peer)
	if getfl(t, int(f.Fd()))&unix.O_ACCMODE != unix.O_WRONLY {
		t.Fatalf("recreated write end has flags %#o", getfl(t, int(f.Fd())))
	}
}

func TestFIFO(t *testing.T) {
	path := filepath.Join(t.TempDir(), "fifo")
	must(t, unix.Mkfifo(path, 0o600))
	rw := mustFD(t)(unix.Open(path, unix.O_RDWR, 0))
	wr := mustFD(t)(unix.Open(path, unix.O_WRONLY|unix.O_NONBLOCK, 0))
	_, err := unix.Write(wr, []byte("in the fifo"))
	must(t, err)
	h := hold(t, rw, wr)
	d := h.inspect(t, wr)
	if d.Kind != KindFIFO || d.Pipe.Path != path || string(d.Pipe.Data) != "in the fifo" || d.Pipe.End != "write" {
		t.Fatalf("fifo: %s %+v", d.Kind, d.Pipe)
	}
	if h.inspect(t, rw).Pipe.End != "both" {
		t.Fatal("O_RDWR end not reported as both")
	}
	setNonblock(t, rw)
	if got := readNow(t, rw, 100); string(got) != "in the fifo" {
		t.Fatalf("after Inspect the fifo holds %q", got)
	}
	h.stop()
	unix.Close(rw)
	f, holderF, err := Create(d)
	must(t, err)
	closeOnCleanup(t, f, holderF)
	r := mustFD(t)(unix.Open(path, unix.O_RDONLY|unix.O_NONBLOCK, 0))
	if got := readNow(t, r, 100); string(got) != "in the fifo" {
		t.Fatalf("recreated fifo gives %q", got)
	}
}

func eventfdCount(t *testing.T, fd int) uint64 {
	d, err := parseEventfd(fdinfo(t, fd).Lines)
	must(t, err)
	return d.Count
}

func TestEventfd(t *testing.T) {
	sem := mustFD(t)(unix.Eventfd(7, unix.EFD_SEMAPHORE|unix.EFD_NONBLOCK))
	big := mustFD(t)(unix.Eventfd(0, 0))
	var b [8]byte
	binary.NativeEndian.PutUint64(b[:], 1<<40+3)
	_, err := unix.Write(big, b[:])
	must(t, err)
	h := hold(t, sem, big)
	ds, db := h.inspect(t, sem), h.inspect(t, big)
	if ds.Kind != KindEventfd || ds.Eventfd.Count != 7 || !ds.Eventfd.Semaphore || ds.Flags&unix.O_NONBLOCK == 0 {
		t.Fatalf("semaphore eventfd: %+v %+v", ds, ds.Eventfd)
	}
	if db.Eventfd.Count != 1<<40+3 || db.Eventfd.Semaphore {
		t.Fatalf("eventfd: %+v", db.Eventfd)
	}
	if eventfdCount(t, sem) != 7 || eventfdCount(t, big) != 1<<40+3 {
		t.Fatal("Inspect changed a counter")
	}
	fs, _, err := Create(ds)
	must(t, err)
	fb, _, err := Create(db)
	must(t, err)
	closeOnCleanup(t, fs, fb)
	for i := 0; i < 7; i++ {
		if _, err := unix.Read(int(fs.Fd()), b[:]); err != nil || binary.NativeEndian.Uint64(b[:]) != 1 {
			t.Fatalf("semaphore read %d: %v %d", i, err, binary.NativeEndian.Uint64(b[:]))
		}
	}
	if _, err := unix.Read(int(fs.Fd()), b[:]); err != unix.EAGAIN {
		t.Fatalf("8th read of a 7-semaphore: %v (not non-blocking?)", err)
	}
	if _, err := unix.Read(int(fb.Fd()), b[:]); err != nil || binary.NativeEndian.Uint64(b[:]) != 1<<40+3 {
		t.Fatalf("read: %v %d", err, binary.NativeEndian.Uint64(b[:]))
	}
}

func TestTimerfd(t *testing.T) {
	// Armed, periodic, relative.
	per := mustFD(t)(unix.TimerfdCreate(unix.CLOCK_MONOTONIC, unix.TFD_NONBLOCK))
	must(t, unix.TimerfdSettime(per, 0, &unix.ItimerSpec{Value: unix.NsecToTimespec(300e6), Interval: unix.NsecToTimespec(20e6)}, nil))
	// Expired, unread (2 ticks), disarmed.
	exp := mustFD(t)(unix.TimerfdCreate(unix.CLOCK_BOOTTIME, 0))
	must(t, unix.TimerfdSettime(exp, 0, &unix.ItimerSpec{Value: unix.NsecToTimespec(1e6), Interval: unix.NsecToTimespec(1e6)}, nil))
	time.Sleep(5 * time.Millisecond)
	must(t, unix.TimerfdSettime(exp, 0, &unix.ItimerSpec{}, nil)) // disarming clears ticks...
	// ...so make ticks with a one-shot timer instead.
	must(t, unix.TimerfdSettime(exp, 0, &unix.ItimerSpec{Value: unix.NsecToTimespec(1e6)}, nil))
	time.Sleep(5 * time.Millisecond)
	// Absolute on CLOCK_REALTIME, an hour away.
	abs := mustFD(t)(unix.TimerfdCreate(unix.CLOCK_REALTIME, 0))
	var now unix.Timespec
	must(t, unix.ClockGettime(unix.CLOCK_REALTIME, &now))
	must(t, unix.TimerfdSettime(abs, unix.TFD_TIMER_ABSTIME|unix.TFD_TIMER_CANCEL_ON_SET,
		&unix.ItimerSpec{Value: unix.NsecToTimespec(now.Nano() + 3600e9)}, nil))

	h := hold(t, per, exp, abs)
	dp, de, da := h.inspect(t, per), h.inspect(t, exp), h.inspect(t, abs)
	if p := dp.Timerfd; dp.Kind != KindTimerfd || p.Clock != unix.CLOCK_MONOTONIC || p.ValueNsec <= 0 || p.ValueNsec > 300e6 ||
		p.IntervalNsec != 20e6 || p.Ticks != 0 || dp.Flags&unix.O_NONBLOCK == 0 {
		t.Fatalf("periodic timer: %+v", p)
	}
	if e := de.Timerfd; e.Clock != unix.CLOCK_BOOTTIME || e.Ticks != 1 || e.ValueNsec != 0 {
		t.Fatalf("expired timer: %+v", e)
	}
	if a := da.Timerfd; a.SettimeFlags != unix.TFD_TIMER_ABSTIME|unix.TFD_TIMER_CANCEL_ON_SET ||
		a.ValueNsec < 3500e9 || a.ValueNsec > 3600e9 {
		t.Fatalf("absolute timer: %+v", a)
	}
	var b [8]byte
	if n, err := unix.Read(exp, b[:]); n != 8 || err != nil || binary.NativeEndian.Uint64(b[:]) != 1 {
		t.Fatalf("after Inspect the expired timer reads %v %d", err, binary.NativeEndian.Uint64(b[:]))
	}

	fp, _, err := Create(dp)
	must(t, err)
	fe, _, err := Create(de)
	must(t, err)
	fa, _, err := Create(da)
	must(t, err)
	closeOnCleanup(t, fp, fe, fa)
	if n, err := unix.Read(int(fe.Fd()), b[:]); n != 8 || err != nil || binary.NativeEndian.Uint64(b[:]) != 1 {
		t.Fatalf("recreated expired timer reads %v %d", err, binary.NativeEndian.Uint64(b[:]))
	}
	if _, err := unix.Read(int(fp.Fd()), b[:]); err != unix.EAGAIN {
		t.Fatalf("recreated timer fired at once or blocks: %v", err)
	}
	pfd := []unix.PollFd{{Fd: int32(fp.Fd()), Events: unix.POLLIN}}
	if n, _ := unix.Poll(pfd, 2000); n != 1 {
		t.Fatal("recreated timer did not fire within 2 s")
	}
	var its unix.ItimerSpec
	must(t, unix.TimerfdGettime(int(fp.Fd()), &its))
	if its.Interval.Nano() != 20e6 {
		t.Fatalf("recreated interval %v", its.Interval.Nano())
	}
	must(t, unix.TimerfdGettime(int(fa.Fd()), &its))
	if its.Value.Nano() < 3500e9 || its.Value.Nano() > 3600e9 {
		t.Fatalf("recreated absolute timer has %v left", its.Value.Nano())
	}
	ra, err := parseTimerfd(fdinfo(t, int(fa.Fd())).Lines)
	must(t, err)
	if ra.SettimeFlags != da.Timerfd.SettimeFlags {
		t.Fatalf("recreated settime flags %#o", ra.SettimeFlags)
	}
}

func TestSignalfd(t *testing.T) {
	mask := uint64(1<<(unix.SIGUSR1-1) | 1<<(unix.SIGTERM-1))
	fd := mustFD(t)(unix.Signalfd(-1, &unix.Sigset_t{Val: [16]uint64{mask}}, unix.SFD_NONBLOCK))
	d := hold(t, fd).inspect(t, fd)
	if d.Kind != KindSignalfd || d.Signalfd.Mask != mask || d.Flags&unix.O_NONBLOCK == 0 {
		t.Fatalf("signalfd: %+v %+v", d, d.Signalfd)
	}
	f, _, err := Create(d)
	must(t, err)
	closeOnCleanup(t, f)
	got, err := parseSignalfd(fdinfo(t, int(f.Fd())).Lines)
	must(t, err)
	if got.Mask != mask || getfl(t, int(f.Fd()))&unix.O_NONBLOCK == 0 {
		t.Fatalf("recreated mask %#x", got.Mask)
	}
}

func TestEpoll(t *testing.T) {
	var p [2]int
	must(t, unix.Pipe2(p[:], unix.O_NONBLOCK))
	mustFD(t)(p[0], nil)
	mustFD(t)(p[1], nil)
	efd := mustFD(t)(unix.Eventfd(0, unix.EFD_NONBLOCK))
	stale := mustFD(t)(unix.Eventfd(0, 0))
	ep := mustFD(t)(unix.EpollCreate1(0))
	var data uint64 = 0x1122334455667788
	must(t, unix.EpollCtl(ep, unix.EPOLL_CTL_ADD, p[0], &unix.EpollEvent{Events: unix.EPOLLIN | unix.EPOLLET, Fd: int32(uint32(data)), Pad: int32(data >> 32)}))
	must(t, unix.EpollCtl(ep, unix.EPOLL_CTL_ADD, efd, &unix.EpollEvent{Events: unix.EPOLLIN | unix.EPOLLOUT, Fd: 5}))
	must(t, unix.EpollCtl(ep, unix.EPOLL_CTL_ADD, stale, &unix.EpollEvent{Events: unix.EPOLLIN, Fd: 6}))
	// The number of the last registration now names another file; the
	// registered eventfd lives on in keep.
	mustFD(t)(unix.Dup(stale))
	must(t, unix.Dup3(p[1], stale, 0))
	h := hold(t, p[0], p[1], efd, stale, ep)
	d := h.inspect(t, ep)
	if d.Kind != KindEpoll || len(d.Epoll.Targets) != 3 {
		t.Fatalf("epoll: %+v", d.Epoll)
	}
	var st unix.Stat_t
	must(t, unix.Fstat(p[0], &st))
	byFD := map[int]EpollTarget{}
	for _, tg := range d.Epoll.Targets {
		byFD[tg.FD] = tg
	}
	const always = unix.EPOLLERR | unix.EPOLLHUP // the kernel adds them
	if tg := byFD[p[0]]; tg.Events != unix.EPOLLIN|unix.EPOLLET|always || tg.Data != data || tg.Ino != st.Ino || tg.Stale || tg.Dev != st.Dev {
		t.Fatalf("pipe registration %+v, pipe ino %d dev %#x", tg, st.Ino, st.Dev)
	}
	if tg := byFD[efd]; tg.Events != unix.EPOLLIN|unix.EPOLLOUT|always || tg.Data != 5 || tg.Stale {
		t.Fatalf("eventfd registration %+v", tg)
	}
	if tg := byFD[stale]; !tg.Stale || tg.Data != 6 {
		t.Fatalf("stale registration %+v", tg)
	}
	if _, _, err := Create(d); err == nil {
		// Create without targets must refuse a populated epoll.
		t.Fatal("Create of an epoll with targets succeeded")
	}

	// Recreate on new objects.
	var np [2]int
	must(t, unix.Pipe2(np[:], unix.O_NONBLOCK))
	mustFD(t)(np[0], nil)
	mustFD(t)(np[1], nil)
	ne := mustFD(t)(unix.Eventfd(0, unix.EFD_NONBLOCK))
	ns := mustFD(t)(unix.Eventfd(0, 0))
	if _, err := CreateEpoll(d, map[int]int{p[0]: np[0]}); err == nil {
		t.Fatal("CreateEpoll without all targets succeeded")
	}
	f, err := CreateEpoll(d, map[int]int{p[0]: np[0], efd: ne, stale: ns})
	must(t, err)
	closeOnCleanup(t, f)
	evs := make([]unix.EpollEvent, 4)
	n, err := unix.EpollWait(int(f.Fd()), evs, 0)
	must(t, err)
	if n != 1 || evs[0].Fd != 5 || evs[0].Events != unix.EPOLLOUT {
		t.Fatalf("first wait: %d %+v", n, evs[:n])
	}
	unix.Write(np[1], []byte("x"))
	n, err = unix.EpollWait(int(f.Fd()), evs, 0)
	must(t, err)
	found := false
	for _, e := range evs[:n] {
		if uint64(uint32(e.Fd))|uint64(uint32(e.Pad))<<32 == data {
			found = true
		}
	}
	if !found {
		t.Fatalf("pipe event with data %#x missing: %+v", data, evs[:n])
	}
	got, err := parseEpoll(fdinfo(t, int(f.Fd())).Lines)
	must(t, err)
	if len(got.Targets) != 3 {
		t.Fatalf("recreated epoll has %d targets", len(got.Targets))
	}
}
