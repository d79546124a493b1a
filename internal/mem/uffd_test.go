package mem

import (
	"errors"
	"fmt"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"
	"unsafe"

	"golang.org/x/sys/unix"

	"github.com/godwit-dev/godwit/internal/ptrace"
	gunix "github.com/godwit-dev/godwit/internal/unix"
)

// pageServer is a small post-copy server: it serves the faults of a UFFD
// from an image of pages (absent pages are served as zero pages) and keeps
// the image in step with the process's events.
type pageServer struct {
	u        *UFFD
	perFault int // pages served per fault, from the faulting one on

	mu     sync.Mutex
	image  map[uint64][]byte // page address -> content
	end    uint64            // pages at or above are not prefetched
	events []Event
	faults int

	stop chan struct{}
	done chan error
}

func serve(t testing.TB, u *UFFD, image map[uint64][]byte, end uint64, perFault int) *pageServer {
	s := &pageServer{u: u, image: image, end: end, perFault: max(perFault, 1), stop: make(chan struct{}), done: make(chan error, 1)}
	go func() { s.done <- s.loop() }()
	t.Cleanup(func() {
		if err := s.close(); err != nil {
			t.Errorf("page server: %v", err)
		}
	})
	return s
}

// close stops the server and returns its error.
func (s *pageServer) close() error {
	select {
	case <-s.stop:
		return nil
	default:
	}
	close(s.stop)
	return <-s.done
}

func (s *pageServer) loop() error {
	for {
		select {
		case <-s.stop:
			return nil
		default:
		}
		if ok, err := s.u.Poll(20 * time.Millisecond); err != nil || !ok {
			if err != nil {
				return err
			}
			continue
		}
		for {
			ev, ok, err := s.u.ReadEvent()
			if err != nil {
				return err
			}
			if !ok {
				break
			}
			if err := s.handle(ev); err != nil {
				return err
			}
		}
	}
}

func (s *pageServer) handle(ev Event) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	if ev.Kind != EventPagefault {
		s.events = append(s.events, ev)
	}
	switch ev.Kind {
	case EventPagefault:
		s.faults++
		// Serve perFault pages from the faulting one, in runs of pages
		// with content and of zero pages.
		last := min(ev.Addr+uint64(s.perFault)*PageSize, max(s.end, ev.Addr+PageSize))
		for a := ev.Addr; a < last; {
			if s.image[a] == nil {
				if err := s.u.Zero(a, PageSize); err != nil {
					return err
				}
				a += PageSize
				continue
			}
			var run []byte
			b := a
			for ; b < last && s.image[b] != nil; b += PageSize {
				run = append(run, s.image[b]...)
			}
			if err := s.u.Copy(a, run, true); err != nil {
				return err
			}
			a = b
		}
	case EventRemove, EventUnmap:
		// The pages read as zero (or are gone) from now on.
		for a := ev.Addr; a < ev.Addr+ev.Len; a += PageSize {
			delete(s.image, a)
		}
	case EventRemap:
		moved := map[uint64][]byte{}
		for a := ev.Addr; a < ev.Addr+ev.Len; a += PageSize {
			if p, ok := s.image[a]; ok {
				moved[a-ev.Addr+ev.To] = p
				delete(s.image, a)
			}
		}
		for a, p := range moved {
			s.image[a] = p
		}
		s.end = ev.To + ev.Len
	case EventFork:
		unix.Close(ev.FD)
	}
	return nil
}

func (s *pageServer) faultsServed() int {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.faults
}

func (s *pageServer) eventsSeen() []Event {
	s.mu.Lock()
	defer s.mu.Unlock()
	return append([]Event(nil), s.events...)
}

// imageOf returns pages as an image at addr, leaving out (zero) the pages
// for which zero is true.
func imageOf(addr uint64, words []uint64, zero func(i int) bool) map[uint64][]byte {
	b := unsafe.Slice((*byte)(unsafe.Pointer(&words[0])), len(words)*8)
	img := map[uint64][]byte{}
	for i := 0; i < len(b)/PageSize; i++ {
		if zero == nil || !zero(i) {
			img[addr+uint64(i)*PageSize] = b[i*PageSize : (i+1)*PageSize]
		}
	}
	return img
}

// takeFd takes fd of pid with pidfd_getfd.
func takeFd(t testing.TB, pid, fd int) int {
	t.Helper()
	pidfd, err := unix.PidfdOpen(pid, 0)
	if err != nil {
		t.Fatal(err)
	}
	defer unix.Close(pidfd)
	ours, err := unix.PidfdGetfd(pidfd, fd, 0)
	if err != nil {
		t.Fatalf("pidfd_getfd: %v", err)
	}
	return ours
}

// victimUFFD has the victim make a userfaultfd with flags, takes it and
// opens it.
func victimUFFD(t testing.TB, v *victim, flags int) *UFFD {
	t.Helper()
	l := v.do("fd ", "uffd 0 %d", flags)
	theirs, err := strconv.Atoi(strings.TrimPrefix(l, "fd "))
	if err != nil {
		t.Fatal(err)
	}
	fd := takeFd(t, v.pid, theirs)
	u, err := OpenUFFD(fd)
	if err != nil {
		unix.Close(fd)
		t.Fatal(err)
	}
	t.Cleanup(func() { u.Close() })
	return u
}

// TestUFFDServe serves a program's faults from an image (copies and zero
// pages) and follows its mapping changes: MADV_DONTNEED, mremap, munmap.
func TestUFFDServe(t *testing.T) {
	v := startVictim(t)
	const n = 256
	addr := v.mapPages(n)
	u := victimUFFD(t, v, unix.O_CLOEXEC|unix.O_NONBLOCK)
	if u.Features() != UFFDFeatures {
		t.Errorf("features %#x, want %#x", u.Features(), UFFDFeatures)
	}
	if err := u.Register(addr, n*PageSize); err != nil {
		t.Fatal(err)
	}
	words := fillPattern(n, 9)
	zero := func(i int) bool { return i%4 == 3 }
	s := serve(t, u, imageOf(addr, words, zero), addr+n*PageSize, 1)
	for i := range n {
		if zero(i) {
			clear(words[i*PageSize/8 : (i+1)*PageSize/8])
		}
	}
	if got := v.sum(addr, n); got != fnv(words) {
		t.Fatalf("checksum of the served pages: %#x, want %#x", got, fnv(words))
	}
	if f := s.faultsServed(); f != n {
		t.Errorf("%d faults served, want %d", f, n)
	}

	// Pages there already: nothing to do, no error.
	page := make([]byte, 2*PageSize)
	if err := u.Copy(addr, page, true); err != nil {
		t.Errorf("Copy over present pages: %v", err)
	}
	if err := u.Zero(addr, PageSize); err != nil {
		t.Errorf("Zero over a present page: %v", err)
	}
	if err := u.Copy(addr+1, page, true); err == nil {
		t.Error("Copy to an unaligned address: no error")
	}

	// MADV_DONTNEED: the pages read as zero from now on.
	v.do("ok", "dontneed %x 4", addr+8*PageSize)
	clear(words[8*PageSize/8 : 12*PageSize/8])
	// mremap moves the pages (served or not) to a new address.
	moved := v.addr(v.do("addr ", "remap %x %d %d", addr, n, 2*n))
	if got := v.sum(moved, n); got != fnv(words) {
		t.Errorf("checksum after MADV_DONTNEED and mremap: %#x, want %#x", got, fnv(words))
	}
	v.do("ok", "unmap %x %d", moved, 2*n)
	if err := s.close(); err != nil {
		t.Fatal(err)
	}
	want := []Event{{Kind: EventRemove, Addr: addr + 8*PageSize, Len: 4 * PageSize}}
	if moved != addr { // grown in place otherwise: no event
		want = append(want, Event{Kind: EventRemap, Addr: addr, To: moved, Len: n * PageSize},
			Event{Kind: EventUnmap, Addr: addr, Len: n * PageSize}) // the old range
	}
	want = append(want, Event{Kind: EventUnmap, Addr: moved, Len: 2 * n * PageSize})
	if got := s.eventsSeen(); fmt.Sprint(got) != fmt.Sprint(want) {
		t.Errorf("events %+v, want %+v", got, want)
	}
	if err := u.Copy(moved, page[:PageSize], true); !errors.Is(err, unix.ENOENT) {
		t.Errorf("Copy into unmapped memory: %v, want ENOENT", err)
	}
}

// While an event is pending Copy fails with ErrMappingsChanging; once it
// is read, Copy works again.
func TestUFFDMappingsChanging(t *testing.T) {
	v := startVictim(t)
	addr := v.mapPages(4)
	u := victimUFFD(t, v, unix.O_CLOEXEC)
	if err := u.Register(addr, 4*PageSize); err != nil {
		t.Fatal(err)
	}
	v.send("dontneed %x 1", addr) // waits until its event is read
	if ok, err := u.Poll(time.Minute); !ok || err != nil {
		t.Fatalf("Poll: %v, %v", ok, err)
	}
	page := make([]byte, PageSize)
	if err := u.Copy(addr+PageSize, page, true); !errors.Is(err, ErrMappingsChanging) || !errors.Is(err, unix.EAGAIN) {
		t.Fatalf("Copy while an event is pending: %v, want ErrMappingsChanging", err)
	}
	if ev, ok, err := u.ReadEvent(); !ok || err != nil || ev.Kind != EventRemove {
		t.Fatalf("ReadEvent: %+v, %v, %v", ev, ok, err)
	}
	// Right away: Copy waits for the madvise to finish.
	if err := u.Copy(addr+PageSize, page, true); err != nil {
		t.Fatalf("Copy after the event was read: %v", err)
	}
	if l := v.line(); l != "ok" {
		t.Errorf("madvise answered %q", l)
	}
}

// ReadFault returns faults, and other events as *EventError.
func TestUFFDReadFault(t *testing.T) {
	v := startVictim(t)
	addr := v.mapPages(4)
	u := victimUFFD(t, v, unix.O_CLOEXEC)
	if err := u.Register(addr, 4*PageSize); err != nil {
		t.Fatal(err)
	}
	if _, ok, err := u.ReadFault(); ok || err != nil {
		t.Fatalf("ReadFault with nothing queued: %v, %v", ok, err)
	}
	v.send("sum %x 1", addr)
	if ok, err := u.Poll(time.Minute); !ok || err != nil {
		t.Fatalf("Poll: %v, %v", ok, err)
	}
	a, ok, err := u.ReadFault()
	if !ok || err != nil || a != addr {
		t.Fatalf("ReadFault: %#x, %v, %v; want %#x", a, ok, err, addr)
	}
	if err := u.Copy(a, make([]byte, PageSize), true); err != nil {
		t.Fatal(err)
	}
	v.line()
	v.send("dontneed %x 1", addr) // waits until the event is read
	if ok, err := u.Poll(time.Minute); !ok || err != nil {
		t.Fatalf("Poll: %v, %v", ok, err)
	}
	var ee *EventError
	if _, ok, err := u.ReadFault(); ok || !errors.As(err, &ee) || ee.Event.Kind != EventRemove || ee.Event.Addr != addr {
		t.Fatalf("ReadFault of a remove event: %v, %v", ok, err)
	}
	v.line()
}

// A userfaultfd injected into the process (as restore makes it), not
// user-mode-only, serves the faults the kernel takes for the process too
// (read(2) into missing pages).
func TestUFFDInjected(t *testing.T) {
	v := startVictim(t)
	const n = 64
	a := v.mapPages(n)
	b := v.mapPages(n)
	fds := fdCount(t, v.pid)
	v.waitSyscall(unix.SYS_READ)
	var fd int
	err := injectInto(v.pid, func(in *ptrace.Injector) error {
		var err error
		fd, err = CreateUFFDIn(in, v.pid, unix.O_CLOEXEC|unix.O_NONBLOCK)
		return err
	})
	if err != nil {
		t.Fatal(err)
	}
	u, err := OpenUFFD(fd)
	if err != nil {
		unix.Close(fd)
		t.Fatal(err)
	}
	t.Cleanup(func() { u.Close() }) // after the server stops
	if got := fdCount(t, v.pid); got != fds {
		t.Errorf("the process has %d descriptors, %d before", got, fds)
	}
	for _, r := range []uint64{a, b} {
		if err := u.Register(r, n*PageSize); err != nil {
			t.Fatal(err)
		}
	}
	img := imageOf(a, fillPattern(n, 5), nil)
	for k, p := range imageOf(b, fillPattern(n, 5), nil) {
		img[k] = p
	}
	serve(t, u, img, 0, 1)
	// The read the program was blocked in restarted: it reads this.
	v.do("ok", "pipefill %x %d 6", a, n) // kernel faults, then overwritten
	if got, want := v.sum(a, n), fnv(fillPattern(n, 6)); got != want {
		t.Errorf("checksum after read(2) into served pages: %#x, want %#x", got, want)
	}
	if got, want := v.sum(b, n), fnv(fillPattern(n, 5)); got != want {
		t.Errorf("checksum of served pages: %#x, want %#x", got, want)
	}
}

// With a user-mode-only userfaultfd (all an unprivileged user gets), a
// fault the kernel takes for the process is not served: read(2) fails with
// EFAULT. Post-copy is not transparent then.
func TestUFFDUserModeOnlyKernelFault(t *testing.T) {
	v := startVictim(t)
	a := v.mapPages(1)
	u := victimUFFD(t, v, unix.O_CLOEXEC|gunix.UFFD_USER_MODE_ONLY)
	if err := u.Register(a, PageSize); err != nil {
		t.Fatal(err)
	}
	serve(t, u, nil, 0, 1)
	v.do(fmt.Sprintf("err %d", unix.EFAULT), "pipefill %x 1 1", a)
}
