package mem

import (
	"errors"
	"fmt"
	"runtime"
	"sync"
	"time"

	"golang.org/x/sys/unix"

	gunix "github.com/godwit-dev/godwit/internal/unix"
)

// UFFDFeatures are the userfaultfd features OpenUFFD enables: the events a
// post-copy server must see to stay correct while the process changes its
// mappings (see Event), and the faulting thread's id.
//
//   - without EVENT_REMAP, a mapping moved by mremap loses its registration
//     and its pages not served yet read as zero at the new address;
//   - without EVENT_REMOVE, a page given back with MADV_DONTNEED would be
//     served again from the image instead of reading as zero;
//   - without EVENT_UNMAP, the server cannot drop pages that no longer exist.
//
// EVENT_FORK is not asked for (it needs CAP_SYS_PTRACE and a server for the
// child): a child forked before its parent's pages are all served reads the
// missing ones as zero. Use OpenUFFDFeatures to ask for it.
const UFFDFeatures = gunix.UFFD_FEATURE_EVENT_REMAP | gunix.UFFD_FEATURE_EVENT_REMOVE |
	gunix.UFFD_FEATURE_EVENT_UNMAP | gunix.UFFD_FEATURE_THREAD_ID

// EventKind is the kind of a userfaultfd message (UFFD_EVENT_*).
type EventKind uint8

// Kinds of events.
const (
	EventPagefault EventKind = gunix.UFFD_EVENT_PAGEFAULT
	EventFork      EventKind = gunix.UFFD_EVENT_FORK
	EventRemap     EventKind = gunix.UFFD_EVENT_REMAP
	EventRemove    EventKind = gunix.UFFD_EVENT_REMOVE
	EventUnmap     EventKind = gunix.UFFD_EVENT_UNMAP
)

func (k EventKind) String() string {
	switch k {
	case EventPagefault:
		return "pagefault"
	case EventFork:
		return "fork"
	case EventRemap:
		return "remap"
	case EventRemove:
		return "remove"
	case EventUnmap:
		return "unmap"
	}
	return fmt.Sprintf("event(%#x)", uint8(k))
}

// Event is one message read from a userfaultfd. What a post-copy server
// must do with each:
//
//   - EventPagefault: a thread waits for the page at Addr: Copy or Zero it
//     (which wakes the thread), or Wake it if it is there already.
//   - EventRemap: the process moved [Addr, Addr+Len) to To with mremap: the
//     pages not served yet must be served at their new address. An
//     EventUnmap of the old range follows it.
//   - EventRemove: [Addr, Addr+Len) was given back (MADV_DONTNEED or
//     MADV_REMOVE): its pages not served yet must now read as zero, not as
//     the image says; they fault again and are served with Zero.
//   - EventUnmap: [Addr, Addr+Len) was unmapped: forget its pages.
//   - EventFork: only with UFFD_FEATURE_EVENT_FORK: FD is a new userfaultfd,
//     open in this process, for the child's copy of the registered
//     mappings; the caller owns it (serve it, or close it to let the child
//     read the missing pages as zero).
//
// The thread that caused a remap, remove, unmap or fork waits until its
// message is read (not handled): read events promptly. While one is pending,
// Copy and Zero fail with EAGAIN (see ErrMappingsChanging).
type Event struct {
	Kind  EventKind
	Addr  uint64 // the faulting address (page-aligned), or the start of the range
	Len   uint64 // the length of the range
	To    uint64 // EventRemap: the new address
	Flags uint64 // EventPagefault: UFFD_PAGEFAULT_FLAG_* (write, wp, minor)
	TID   uint32 // EventPagefault: the faulting thread, as the process sees it
	FD    int    // EventFork: the child's userfaultfd
}

// EventError is what ReadFault returns for a message other than a page
// fault, so that none is lost: handle Event and go on reading.
type EventError struct {
	Event Event
}

func (e *EventError) Error() string {
	return fmt.Sprintf("userfaultfd %s event at %#x (+%#x)", e.Event.Kind, e.Event.Addr, e.Event.Len)
}

// ErrMappingsChanging is wrapped by Copy and Zero when the process is in
// the middle of changing its mappings (mremap, munmap, madvise, fork): the
// kernel refuses to fill pages (EAGAIN) until the event it queued is read
// and the thread that caused it has woken up. Copy and Zero retry for
// stallBudget (10 ms) first; then read events (ReadEvent) and copy again.
var ErrMappingsChanging = errors.New("the process is changing its mappings: read its userfaultfd events, then copy again")

// UFFD serves the page faults of another process's registered memory
// (post-copy): its threads stop on a missing page until the page is copied
// in. The userfaultfd comes from the process (see CreateUFFDIn).
//
// Copy, Zero and Wake may be called from several goroutines at once;
// ReadEvent and ReadFault from one at a time.
type UFFD struct {
	fd       int
	features uint64

	mu   sync.Mutex // guards the read buffer
	msgs [16]gunix.UffdMsg
	next int // next message of msgs to hand out
	n    int // messages in msgs

	closeOnce sync.Once
	closeErr  error
}

// OpenUFFD takes a userfaultfd on which UFFDIO_API was not done yet, makes
// it non-blocking and enables UFFDFeatures on it. From then on the UFFD owns
// fd; on error the caller still owns it.
func OpenUFFD(fd int) (*UFFD, error) { return OpenUFFDFeatures(fd, UFFDFeatures) }

// OpenUFFDFeatures is OpenUFFD enabling the UFFD_FEATURE_* bits features.
// It fails when the kernel lacks one of them.
func OpenUFFDFeatures(fd int, features uint64) (*UFFD, error) {
	fl, err := unix.FcntlInt(uintptr(fd), unix.F_GETFL, 0)
	if err == nil && fl&unix.O_NONBLOCK == 0 {
		_, err = unix.FcntlInt(uintptr(fd), unix.F_SETFL, fl|unix.O_NONBLOCK)
	}
	if err != nil {
		return nil, fmt.Errorf("userfaultfd %d: make it non-blocking: %w", fd, err)
	}
	api := gunix.UffdioAPI{API: gunix.UFFD_API, Features: features}
	if err := gunix.UffdAPI(fd, &api); err != nil {
		return nil, fmt.Errorf("userfaultfd %d: UFFDIO_API with features %q (unsupported, or UFFDIO_API done already): %w",
			fd, gunix.UffdFeatureNames(features), err)
	}
	return &UFFD{fd: fd, features: features}, nil
}

// Fd returns the userfaultfd, e.g. to poll it with other descriptors. It is
// non-blocking.
func (u *UFFD) Fd() int { return u.fd }

// Features returns the UFFD_FEATURE_* bits enabled.
func (u *UFFD) Features() uint64 { return u.features }

// Register registers [addr, addr+length) of the process in missing mode: a
// thread touching a page not present there waits until the page is served.
// The range must be page-aligned and made of mappings userfaultfd can serve
// (anonymous, shmem, hugetlbfs); it fails with EINVAL otherwise.
func (u *UFFD) Register(addr, length uint64) error {
	reg := gunix.UffdioRegister{Range: gunix.UffdioRange{Start: addr, Len: length}, Mode: gunix.UFFDIO_REGISTER_MODE_MISSING}
	if err := gunix.UffdRegister(u.fd, &reg); err != nil {
		return fmt.Errorf("userfaultfd: register %#x-%#x: %w", addr, addr+length, err)
	}
	if reg.Ioctls&(1<<(gunix.UFFDIO_COPY&0xff)) == 0 {
		return fmt.Errorf("userfaultfd: register %#x-%#x: UFFDIO_COPY is not available there (ioctls %#x)", addr, addr+length, reg.Ioctls)
	}
	return nil
}

// Unregister ends serving [addr, addr+length): its missing pages fault as
// usual again (anonymous memory reads as zero).
func (u *UFFD) Unregister(addr, length uint64) error {
	r := gunix.UffdioRange{Start: addr, Len: length}
	if err := gunix.UffdUnregister(u.fd, &r); err != nil {
		return fmt.Errorf("userfaultfd: unregister %#x-%#x: %w", addr, addr+length, err)
	}
	return nil
}

// ReadEvent returns the next message, in the order the kernel queued them;
// ok is false when there is none now (it never blocks: wait with Poll).
// Messages are read from the kernel 16 at a time.
func (u *UFFD) ReadEvent() (ev Event, ok bool, err error) {
	u.mu.Lock()
	defer u.mu.Unlock()
	if u.next == u.n {
		u.next, u.n = 0, 0
		for {
			n, err := gunix.ReadUffdMsgs(u.fd, u.msgs[:])
			if err == unix.EINTR {
				continue
			}
			if err == unix.EAGAIN {
				return Event{}, false, nil
			}
			if err != nil {
				return Event{}, false, fmt.Errorf("userfaultfd: read: %w", err)
			}
			u.n = n
			break
		}
		if u.n == 0 {
			return Event{}, false, nil
		}
	}
	m := &u.msgs[u.next]
	u.next++
	ev.Kind = EventKind(m.Event)
	switch ev.Kind {
	case EventPagefault:
		var addr uint64
		ev.Flags, addr, ev.TID = m.Pagefault()
		ev.Addr = addr &^ (PageSize - 1)
	case EventFork:
		ev.FD = int(m.Fork())
	case EventRemap:
		ev.Addr, ev.To, ev.Len = m.Remap()
	case EventRemove, EventUnmap:
		start, end := m.Remove()
		ev.Addr, ev.Len = start, end-start
	}
	return ev, true, nil
}

// ReadFault returns the page-aligned address of the next page fault; ok is
// false when no message is queued (it never blocks: wait with Poll). A
// message of another kind is returned as an *EventError holding it, so that
// none is lost: the caller handles it (see Event) and reads on.
func (u *UFFD) ReadFault() (addr uint64, ok bool, err error) {
	ev, ok, err := u.ReadEvent()
	if err != nil || !ok {
		return 0, false, err
	}
	if ev.Kind != EventPagefault {
		return 0, false, &EventError{Event: ev}
	}
	return ev.Addr, true, nil
}

// Poll waits up to timeout (forever when negative) for a message and
// reports whether one is there.
func (u *UFFD) Poll(timeout time.Duration) (bool, error) {
	u.mu.Lock()
	buffered := u.next < u.n
	u.mu.Unlock()
	if buffered {
		return true, nil
	}
	ms := -1
	if timeout >= 0 {
		ms = int((timeout + time.Millisecond - 1) / time.Millisecond)
	}
	deadline := time.Now().Add(timeout)
	for {
		fds := []unix.PollFd{{Fd: int32(u.fd), Events: unix.POLLIN}}
		n, err := unix.Poll(fds, ms)
		if err == unix.EINTR {
			if timeout >= 0 {
				ms = max(0, int(time.Until(deadline)/time.Millisecond))
			}
			continue
		}
		if err != nil {
			return false, fmt.Errorf("userfaultfd: poll: %w", err)
		}
		if n > 0 && fds[0].Revents&(unix.POLLERR|unix.POLLNVAL) != 0 {
			return false, fmt.Errorf("userfaultfd: poll: revents %#x", fds[0].Revents)
		}
		return n > 0, nil
	}
}

// stallBudget bounds how long Copy and Zero retry while the kernel answers
// EAGAIN without progress, before they report ErrMappingsChanging. The
// kernel keeps refusing for a moment after the event was read: until the
// thread that caused it has woken up.
const stallBudget = 10 * time.Millisecond

// Copy copies src into the process at dst (UFFDIO_COPY) and, when wake is
// set, wakes the threads waiting for those pages. dst and len(src) must be
// page-aligned. Pages present already are left as they are (EEXIST: another
// copy, or the process, filled them first) and their waiters are woken.
// Partial copies are continued. It fails with an error wrapping
// ErrMappingsChanging (and EAGAIN) while an event is pending, ENOENT when
// the range is no longer mapped and ESRCH once the process has exited.
func (u *UFFD) Copy(dst uint64, src []byte, wake bool) error {
	if dst%PageSize != 0 || len(src)%PageSize != 0 {
		return fmt.Errorf("userfaultfd: copy %d bytes to %#x: not whole pages", len(src), dst)
	}
	var mode uint64
	if !wake {
		mode = gunix.UFFDIO_COPY_MODE_DONTWAKE
	}
	return u.fill("copy", dst, uint64(len(src)), wake, func(dst, off, n uint64) (int64, error) {
		return gunix.UffdCopyFrom(u.fd, dst, src[off:off+n], mode)
	})
}

// Zero maps zero pages at [dst, dst+length) (UFFDIO_ZEROPAGE) and wakes the
// threads waiting for them. It handles present pages, partial progress and
// errors as Copy does.
func (u *UFFD) Zero(dst, length uint64) error {
	if dst%PageSize != 0 || length%PageSize != 0 {
		return fmt.Errorf("userfaultfd: zero %#x bytes at %#x: not whole pages", length, dst)
	}
	return u.fill("zero", dst, length, true, func(dst, _, n uint64) (int64, error) {
		z := gunix.UffdioZeropage{Range: gunix.UffdioRange{Start: dst, Len: n}}
		err := gunix.UffdZeropage(u.fd, &z)
		return max(z.Zeropage, 0), err
	})
}

// fill runs op over [dst, dst+length) until it is all filled: op(dst, off,
// n) fills n bytes at dst, from offset off of the source, and returns how
// many it filled.
func (u *UFFD) fill(what string, dst, length uint64, wake bool, op func(dst, off, n uint64) (int64, error)) error {
	var off uint64
	stalls := 0
	var stalled time.Time // when the current run of EAGAIN began
	for off < length {
		n, err := op(dst+off, off, length-off)
		if n > 0 {
			off += uint64(n)
			stalls = 0
		}
		switch {
		case err == nil:
			if n <= 0 {
				return fmt.Errorf("userfaultfd: %s at %#x: no progress", what, dst+off)
			}
		case errors.Is(err, unix.EEXIST):
			// The page at dst+off is there already: skip it, and wake
			// whoever waits for it.
			if wake {
				if err := u.Wake(dst+off, PageSize); err != nil {
					return err
				}
			}
			off += PageSize
			stalls = 0
		case errors.Is(err, unix.EAGAIN) || errors.Is(err, unix.EINTR):
			if n > 0 {
				continue // partial: go on from where it stopped
			}
			if stalls == 0 {
				stalled = time.Now()
			} else if time.Since(stalled) > stallBudget {
				return fmt.Errorf("userfaultfd: %s %#x bytes at %#x: %w (%w)", what, length-off, dst+off, ErrMappingsChanging, err)
			}
			if stalls++; stalls < 16 {
				runtime.Gosched()
			} else {
				time.Sleep(50 * time.Microsecond) // back off: another thread must run
			}
		default:
			return fmt.Errorf("userfaultfd: %s %#x bytes at %#x: %w", what, length-off, dst+off, err)
		}
	}
	return nil
}

// Wake wakes the threads waiting for pages of [addr, addr+length) (after a
// copy with wake unset). A woken thread whose page is still missing faults
// again.
func (u *UFFD) Wake(addr, length uint64) error {
	r := gunix.UffdioRange{Start: addr, Len: length}
	if err := gunix.UffdWake(u.fd, &r); err != nil {
		return fmt.Errorf("userfaultfd: wake %#x-%#x: %w", addr, addr+length, err)
	}
	return nil
}

// Close closes the userfaultfd. The kernel then unregisters its ranges and
// wakes every waiting thread: from then on missing pages fault as usual
// (anonymous memory reads as zero).
func (u *UFFD) Close() error {
	u.closeOnce.Do(func() {
		if err := unix.Close(u.fd); err != nil {
			u.closeErr = fmt.Errorf("userfaultfd: close: %w", err)
		}
	})
	return u.closeErr
}
