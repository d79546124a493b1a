package migrate

import (
	"golang.org/x/sys/unix"

	"fmt"
	"github.com/godwit-dev/godwit/internal/mem"
	"sort"
	"sync"
	"unsafe"

	"github.com/godwit-dev/godwit/checkpoint"
	"github.com/godwit-dev/godwit/image"
)

// store is the destination's page store: every page sent by a pre-copy
// round, once, the newest copy winning. It serves restore.PageSource.
type store struct {
	mu    sync.Mutex
	limit int64 // bytes of page data it may hold; 0: no limit
	procs map[int]map[uint64]int32
	slabs [][]byte // page data, slabPages pages each
	maps  [][]byte // the mappings the slabs are in
	used  int      // slots used
	free  []int32  // slots freed by zero pages that replaced data
	bytes int64    // page data received (including pages sent again)
	again int64    // pages received that replaced an earlier copy
}

const (
	slabPages = 8192 // 32 MiB
	zeroSlot  = -1
)

// errNoMemory is returned when the store would grow past its limit.
var errNoMemory = fmt.Errorf("the destination's page store is full")

func newStore(limit int64) *store {
	return &store{limit: limit, procs: map[int]map[uint64]int32{}}
}

// put stores a frame's pages.
func (s *store) put(f *pageFrame) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	pages := s.procs[f.pid]
	if pages == nil {
		pages = map[uint64]int32{}
		s.procs[f.pid] = pages
	}
	for i := 0; i < f.count; i++ {
		addr := f.addr + uint64(i)*image.PageSize
		slot, had := pages[addr]
		if had {
			s.again++
		}
		if f.zero {
			if had && slot != zeroSlot {
				s.free = append(s.free, slot)
			}
			pages[addr] = zeroSlot
			continue
		}
		s.bytes += image.PageSize
		if !had || slot == zeroSlot {
			var err error
			if slot, err = s.alloc(); err != nil {
				return err
			}
			pages[addr] = slot
		}
		copy(s.page(slot), f.data[i*image.PageSize:(i+1)*image.PageSize])
	}
	return nil
}

func (s *store) alloc() (int32, error) {
	if n := len(s.free); n > 0 {
		slot := s.free[n-1]
		s.free = s.free[:n-1]
		return slot, nil
	}
	if s.used%slabPages == 0 {
		if s.limit > 0 && int64(len(s.slabs)+1)*slabPages*image.PageSize > s.limit {
			return 0, errNoMemory
		}
		// Outside the Go heap and populated at once: faulting fresh memory
		// in page by page is slow on virtual machines.
		// 2 MiB aligned, so that huge pages back it.
		const huge = 2 << 20
		m, err := unix.Mmap(-1, 0, slabPages*image.PageSize+huge, unix.PROT_READ|unix.PROT_WRITE, unix.MAP_PRIVATE|unix.MAP_ANONYMOUS)
		if err != nil {
			return 0, fmt.Errorf("%w: %v", errNoMemory, err)
		}
		off := int((huge - uintptr(unsafe.Pointer(&m[0]))%huge) % huge)
		slab := m[off : off+slabPages*image.PageSize]
		mem.Prefault(slab)
		s.maps = append(s.maps, m)
		s.slabs = append(s.slabs, slab)
	}
	slot := int32(s.used)
	s.used++
	return slot, nil
}

func (s *store) page(slot int32) []byte {
	slab := s.slabs[slot/slabPages]
	off := int(slot%slabPages) * image.PageSize
	return slab[off : off+image.PageSize]
}

// release gives the store's memory back.
func (s *store) release() {
	s.mu.Lock()
	defer s.mu.Unlock()
	for _, m := range s.maps {
		unix.Munmap(m)
	}
	s.maps, s.slabs, s.procs, s.free, s.used = nil, nil, map[int]map[uint64]int32{}, nil, 0
}

// held is the number of pages the store holds with data.
func (s *store) held() int {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.used - len(s.free)
}

// Pages implements restore.PageSource: runs of consecutive pages, zero
// pages as zeroes.
func (s *store) Pages(pid int, want func(addr uint64) bool, fn func(addr uint64, data []byte) error) error {
	s.mu.Lock()
	pages := s.procs[pid]
	addrs := make([]uint64, 0, len(pages))
	for a := range pages {
		if want == nil || want(a) {
			addrs = append(addrs, a)
		}
	}
	s.mu.Unlock()
	sort.Slice(addrs, func(i, j int) bool { return addrs[i] < addrs[j] })
	buf := make([]byte, 0, image.MaxPagesPerRecord*image.PageSize)
	start := uint64(0)
	flush := func() error {
		if len(buf) == 0 {
			return nil
		}
		err := fn(start, buf)
		buf = buf[:0]
		return err
	}
	var zero [image.PageSize]byte
	for _, a := range addrs {
		if len(buf) > 0 && (a != start+uint64(len(buf)) || len(buf) == cap(buf)) {
			if err := flush(); err != nil {
				return err
			}
		}
		if len(buf) == 0 {
			start = a
		}
		s.mu.Lock()
		slot := pages[a]
		if slot == zeroSlot {
			buf = append(buf, zero[:]...)
		} else {
			buf = append(buf, s.page(slot)...)
		}
		s.mu.Unlock()
	}
	return flush()
}

// ranges lists the runs of pages held for pid inside the mappings vmas.
func (s *store) ranges(pid int, vmas []image.VMA) []checkpoint.PageRange {
	s.mu.Lock()
	pages := s.procs[pid]
	addrs := make([]uint64, 0, len(pages))
	for a := range pages {
		addrs = append(addrs, a)
	}
	s.mu.Unlock()
	sort.Slice(addrs, func(i, j int) bool { return addrs[i] < addrs[j] })
	var out []checkpoint.PageRange
	v := 0
	for _, a := range addrs {
		for v < len(vmas) && vmas[v].End <= a {
			v++
		}
		if v == len(vmas) {
			break
		}
		if a < vmas[v].Start {
			continue
		}
		if k := len(out) - 1; k >= 0 && out[k].End() == a {
			out[k].Pages++
		} else {
			out = append(out, checkpoint.PageRange{Addr: a, Pages: 1})
		}
	}
	return out
}

// frame returns n pages of pid from addr as a frame whose data is in buf
// (pages not held read as zero).
func (s *store) frame(pid int, addr uint64, n int, buf []byte) pageFrame {
	s.mu.Lock()
	defer s.mu.Unlock()
	pages := s.procs[pid]
	data := buf[:n*image.PageSize]
	for i := 0; i < n; i++ {
		dst := data[i*image.PageSize : (i+1)*image.PageSize]
		slot, ok := pages[addr+uint64(i)*image.PageSize]
		if !ok || slot == zeroSlot {
			clear(dst)
			continue
		}
		copy(dst, s.page(slot))
	}
	return pageFrame{pid: pid, addr: addr, count: n, data: data}
}

// drop forgets the pages of pid inside ranges.
func (s *store) drop(pid int, ranges []checkpoint.PageRange) {
	s.mu.Lock()
	defer s.mu.Unlock()
	pages := s.procs[pid]
	for _, r := range ranges {
		for a := r.Addr; a < r.End(); a += image.PageSize {
			if slot, ok := pages[a]; ok {
				if slot != zeroSlot {
					s.free = append(s.free, slot)
				}
				delete(pages, a)
			}
		}
	}
}

// run returns how many of the n pages of pid from addr the store holds in
// a row.
func (s *store) run(pid int, addr uint64, n int) int {
	s.mu.Lock()
	defer s.mu.Unlock()
	pages := s.procs[pid]
	k := 0
	for k < n {
		if _, ok := pages[addr+uint64(k)*image.PageSize]; !ok {
			break
		}
		k++
	}
	return k
}
