package mem

import (
	"bytes"
	"errors"
	"fmt"
	"os"
	"slices"
	"strconv"
	"sync"

	"golang.org/x/sys/unix"

	"github.com/godwit-dev/godwit/internal/procfs"
	"github.com/godwit-dev/godwit/internal/ptrace"
	gunix "github.com/godwit-dev/godwit/internal/unix"
)

// ErrNoWPAsync means the kernel has no asynchronous userfaultfd
// write-protection (UFFD_FEATURE_WP_ASYNC and WP_UNPOPULATED, Linux 6.7),
// which Track needs.
var ErrNoWPAsync = errors.New("the kernel has no userfaultfd async write-protect (UFFD_FEATURE_WP_ASYNC, Linux 6.7)")

// ErrShared is why a shared mapping is not tracked: its pages are also
// written through other processes' mappings and through descriptors, which
// the page tables of this process do not show.
var ErrShared = errors.New("shared mapping: writes through other mappings or descriptors are not seen")

// trackFeatures are the userfaultfd features tracking needs: writes
// unprotect pages by themselves (no fault handler), and pages not populated
// yet can be protected too.
const trackFeatures = gunix.UFFD_FEATURE_WP_ASYNC | gunix.UFFD_FEATURE_WP_UNPOPULATED

// Untracked is a mapping a Tracker does not track: its pages must be sent
// whole each round (Dirty includes private ones whole).
type Untracked struct {
	Start, End uint64
	Path       string // as in /proc/PID/maps
	Shared     bool
	// Err is why: ErrShared, or the error of UFFDIO_REGISTER (EINVAL for
	// memory userfaultfd cannot handle, such as MAP_DROPPABLE; EBUSY when
	// another userfaultfd has it).
	Err error
}

// Tracker finds the pages another process writes while it runs, for
// pre-copy migration: each Dirty round reports the pages written since the
// previous one, with no false negatives at page granularity.
//
// It write-protects the process's private mappings with a userfaultfd in
// asynchronous mode (UFFD_FEATURE_WP_ASYNC): the first write to a protected
// page unprotects it inside the kernel, in about a microsecond, without a
// fault handler and without a signal; PAGEMAP_SCAN finds the unprotected
// pages and protects them again, atomically. The userfaultfd is created
// inside the process, so it needs no privilege beyond ptrace: a user may
// track their own processes. Tracking ends when the Tracker is closed;
// children the process forks are not tracked.
//
// Methods are safe for concurrent use, but rounds are serialized.
type Tracker struct {
	pid  int
	fd   int // the userfaultfd, acting on the process's memory
	proc *Process

	mu         sync.Mutex
	registered map[[2]uint64]bool // bounds of the mappings registered, as of the last round
	untracked  []Untracked
	regions    []Region
	closed     bool
}

// Track starts tracking the pages process pid writes. It seizes one thread
// of pid with ptrace (PTRACE_SEIZE and PTRACE_INTERRUPT: no SIGSTOP),
// injects userfaultfd(O_CLOEXEC|O_NONBLOCK|UFFD_USER_MODE_ONLY), takes the
// fd with pidfd_getfd, closes the process's copy by another injected call
// and detaches: the process runs on as before, a system call it was blocked
// in restarts, and its descriptors are unchanged. Then it registers every
// private mapping for write-protection. Nothing is protected yet: the first
// Dirty reports every page present and protects them.
//
// It fails with an error wrapping ErrNoWPAsync on kernels without
// UFFD_FEATURE_WP_ASYNC, and with the errno of ptrace or of the injected
// calls otherwise (EPERM when pid is traced already or not ours).
func Track(pid int) (*Tracker, error) {
	fd := -1
	err := injectInto(pid, func(in *ptrace.Injector) error {
		var err error
		fd, err = CreateUFFDIn(in, pid, unix.O_CLOEXEC|unix.O_NONBLOCK|gunix.UFFD_USER_MODE_ONLY)
		return err
	})
	if err != nil {
		if fd >= 0 {
			unix.Close(fd)
		}
		return nil, fmt.Errorf("track pid %d: %w", pid, err)
	}
	api := gunix.UffdioAPI{API: gunix.UFFD_API, Features: trackFeatures}
	if err := gunix.UffdAPI(fd, &api); err != nil {
		unix.Close(fd)
		if errors.Is(err, unix.EINVAL) {
			return nil, fmt.Errorf("track pid %d: UFFDIO_API: %w (%v)", pid, ErrNoWPAsync, err)
		}
		return nil, fmt.Errorf("track pid %d: UFFDIO_API: %w", pid, err)
	}
	proc, err := Open(pid, false)
	if err != nil {
		unix.Close(fd)
		return nil, fmt.Errorf("track pid %d: %w", pid, err)
	}
	t := &Tracker{pid: pid, fd: fd, proc: proc, registered: map[[2]uint64]bool{}}
	if _, err := t.sync(false); err != nil {
		t.Close()
		return nil, err
	}
	return t, nil
}

// Dirty runs one round: it registers the private mappings that appeared
// since the last round (new mmap, brk growth, mremap), then reports the
// pages written since the last round (the first round: every page present)
// and protects them again. The ranges are sorted and merged; their sizes
// are whole pages.
//
// Reported are: pages written (including pages written and then given back
// with MADV_DONTNEED, which now read as zero), every present page of a
// mapping registered in this round (it was not tracked before), and the
// whole extent of every private mapping that could not be registered
// (Untracked). Before a page is protected once, the kernel also reports the
// empty entries of its page table: the first round is a slight superset of
// the present pages. Shared mappings are not reported (see Untracked).
func (t *Tracker) Dirty() ([]Range, error) {
	t.mu.Lock()
	defer t.mu.Unlock()
	if t.closed {
		return nil, fmt.Errorf("pid %d: dirty pages: the tracker is closed", t.pid)
	}
	regions := t.regions[:0]
	for attempt := 0; ; attempt++ {
		// After a failure, register everything again: some mapping was
		// replaced by one of the same bounds, unregistered.
		maps, err := t.sync(attempt > 0)
		if err != nil {
			return nil, err
		}
		var serr error
		for i := 0; i < len(maps) && serr == nil; {
			if !t.registered[[2]uint64{maps[i].Start, maps[i].End}] {
				i++
				continue
			}
			// Scan adjacent registered mappings at once.
			start, end := maps[i].Start, maps[i].End
			for i++; i < len(maps) && maps[i].Start == end && t.registered[[2]uint64{maps[i].Start, maps[i].End}]; i++ {
				end = maps[i].End
			}
			regions, serr = t.proc.ScanWritten(start, end, regions)
		}
		if serr == nil {
			break
		}
		// EPERM: a mapping in the range is not registered. It appeared
		// since the maps were read (the pages found before it are in
		// regions, protected again).
		if !errors.Is(serr, unix.EPERM) || attempt >= 4 {
			return nil, fmt.Errorf("pid %d: dirty pages: %w", t.pid, serr)
		}
	}
	t.regions = regions
	out := make([]Range, 0, len(regions)+len(t.untracked))
	for _, r := range regions {
		out = append(out, Range{Addr: r.Start, Size: int(r.End - r.Start)})
	}
	for _, u := range t.untracked {
		if !u.Shared {
			out = append(out, Range{Addr: u.Start, Size: int(u.End - u.Start)})
		}
	}
	return mergeRanges(out), nil
}

// Untracked returns the mappings of the last round that are not tracked.
func (t *Tracker) Untracked() []Untracked {
	t.mu.Lock()
	defer t.mu.Unlock()
	return slices.Clone(t.untracked)
}

// Close ends tracking: the kernel unregisters the mappings and unprotects
// their pages (which takes a while for a large process).
func (t *Tracker) Close() error {
	t.mu.Lock()
	defer t.mu.Unlock()
	if t.closed {
		return nil
	}
	t.closed = true
	err := unix.Close(t.fd)
	if err != nil {
		err = fmt.Errorf("pid %d: close the userfaultfd: %w", t.pid, err)
	}
	return errors.Join(err, t.proc.Close())
}

// sync reads the process's mappings and registers, for write-protection,
// those not registered as of the last round (all of them when force is
// set: registering a registered mapping again changes nothing). It records
// what it could not register in t.untracked.
func (t *Tracker) sync(force bool) ([]procfs.Mapping, error) {
	b, err := os.ReadFile("/proc/" + strconv.Itoa(t.pid) + "/maps")
	if err != nil {
		return nil, fmt.Errorf("pid %d: read mappings: %w", t.pid, err)
	}
	maps, err := procfs.ParseMaps(bytes.NewReader(b))
	if err != nil {
		return nil, fmt.Errorf("pid %d: %w", t.pid, err)
	}
	if len(maps) == 0 {
		return nil, fmt.Errorf("pid %d: no mappings: the process exited: %w", t.pid, unix.ESRCH)
	}
	registered := make(map[[2]uint64]bool, len(maps))
	t.untracked = t.untracked[:0]
	for _, m := range maps {
		switch m.Path {
		case "[vdso]", "[vvar]", "[vvar_vclock]", "[vsyscall]":
			continue // the kernel's, never sent
		}
		if m.Shared {
			t.untracked = append(t.untracked, Untracked{Start: m.Start, End: m.End, Path: m.Path, Shared: true, Err: ErrShared})
			continue
		}
		key := [2]uint64{m.Start, m.End}
		if t.registered[key] && !force {
			registered[key] = true
			continue
		}
		reg := gunix.UffdioRegister{Range: gunix.UffdioRange{Start: m.Start, Len: m.Len()}, Mode: gunix.UFFDIO_REGISTER_MODE_WP}
		if err := gunix.UffdRegister(t.fd, &reg); err != nil {
			if errors.Is(err, unix.ESRCH) {
				return nil, fmt.Errorf("pid %d: UFFDIO_REGISTER: the process exited: %w", t.pid, err)
			}
			t.untracked = append(t.untracked, Untracked{Start: m.Start, End: m.End, Path: m.Path,
				Err: fmt.Errorf("UFFDIO_REGISTER: %w", err)})
			continue
		}
		registered[key] = true
	}
	t.registered = registered
	return maps, nil
}

// mergeRanges sorts ranges and merges those that overlap or touch.
func mergeRanges(rs []Range) []Range {
	slices.SortFunc(rs, func(a, b Range) int {
		switch {
		case a.Addr < b.Addr:
			return -1
		case a.Addr > b.Addr:
			return 1
		}
		return 0
	})
	out := rs[:0]
	for _, r := range rs {
		if r.Size <= 0 {
			continue
		}
		if k := len(out) - 1; k >= 0 && out[k].Addr+uint64(out[k].Size) >= r.Addr {
			if end := r.Addr + uint64(r.Size); end > out[k].Addr+uint64(out[k].Size) {
				out[k].Size = int(end - out[k].Addr)
			}
			continue
		}
		out = append(out, r)
	}
	return out
}
