package migrate

// Post-copy: the destination resumes the tree before its anonymous memory
// has arrived. Every process has a userfaultfd registered over its
// anonymous mappings; a thread touching a page not there yet stops until
// the page is copied in. The source, its tree still frozen, pushes every
// page in the background on one stream and answers the destination's
// requests for faulted pages on another, moving its push to where the
// faults are. Once all pages are in, the destination closes the
// userfaultfds and the source kills its tree.

import (
	"bufio"
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"net"
	"sort"
	"sync"
	"sync/atomic"
	"time"

	"golang.org/x/sys/unix"

	"github.com/godwit-dev/godwit/checkpoint"
	"github.com/godwit-dev/godwit/fault"
	"github.com/godwit-dev/godwit/image"
	"github.com/godwit-dev/godwit/internal/mem"
)

// A request frame (destination to source) asks for the page at addr of
// pid: pid u32, reserved u32, addr u64, little endian.
const requestFrame = 16

// aroundFault is how many pages the source sends for one request: the
// faulted page and those after it, which are likely next.
const aroundFault = 16

// pushChunk is how many pages the background push reads at a time.
const pushChunk = 64

// lazyRanges are the pages a post-copy left behind, by pid.
type lazyRanges map[int][]checkpoint.PageRange

// contains tells whether addr is in the sorted ranges rs.
func containsPage(rs []checkpoint.PageRange, addr uint64) bool {
	i := sort.Search(len(rs), func(i int) bool { return rs[i].End() > addr })
	return i < len(rs) && rs[i].Addr <= addr
}

// ---- source ----

// pusher sends the frozen tree's lazy pages.
type pusher struct {
	lazy   lazyRanges
	procs  map[int]*mem.Process
	sent   map[int]map[uint64]bool
	reqs   chan [2]uint64 // pid, addr
	push   *bufio.Writer
	urg    *bufio.Writer
	buf    []byte
	hdr    []byte
	pages  uint64
	faults uint64
	hint   *pushHint // where the last fault answered was
}

// pushHint is where the push should go on: after the pages a fault asked.
type pushHint struct {
	pid  int
	addr uint64
}

// pushPos is the push's position: pid index, range index, address.
type pushPos struct {
	pi, ri int
	addr   uint64
}

// servePostcopy runs on the source after the commit, with the tree still
// frozen: it pushes every lazy page and answers requests until the
// destination has them all.
func (s *source) servePostcopy(ctx context.Context, lazy lazyRanges, onRunning func(*message)) error {
	p := &pusher{lazy: lazy, procs: map[int]*mem.Process{}, sent: map[int]map[uint64]bool{},
		reqs: make(chan [2]uint64, 1024), buf: make([]byte, max(pushChunk, aroundFault)*image.PageSize), hdr: make([]byte, frameHeader)}
	for pid := range lazy {
		m, err := mem.Open(pid, false)
		if err != nil {
			return &fault.Error{Code: fault.CodeMigration, Op: "post-copy", PID: pid, Err: err}
		}
		defer m.Close()
		p.procs[pid] = m
		p.sent[pid] = map[uint64]bool{}
	}
	pushSt, err := s.sess.Open(ctx)
	if err != nil {
		return connError("open the post-copy stream", err)
	}
	defer pushSt.Close()
	urgSt, err := s.sess.Open(ctx)
	if err != nil {
		return connError("open the post-copy stream", err)
	}
	defer urgSt.Close()
	reqSt, err := s.sess.Accept(ctx)
	if err != nil {
		return connError("accept the page requests", err)
	}
	defer reqSt.Close()
	s.setPhase("post-copy")
	for _, rs := range lazy {
		for _, r := range rs {
			s.pExpect.Add(int64(r.Pages) * image.PageSize)
		}
	}
	p.push = bufio.NewWriterSize(countWriter{w: pushSt, n: &s.sent}, 1<<20)
	p.urg = bufio.NewWriterSize(countWriter{w: urgSt, n: &s.sent}, 64<<10)
	reqErr := make(chan error, 1)
	go func() {
		defer close(p.reqs)
		b := make([]byte, requestFrame)
		for {
			if _, err := io.ReadFull(reqSt, b); err != nil {
				if !errors.Is(err, io.EOF) {
					reqErr <- err
				}
				return
			}
			p.reqs <- [2]uint64{uint64(binary.LittleEndian.Uint32(b)), binary.LittleEndian.Uint64(b[8:])}
		}
	}()
	pids := make([]int, 0, len(lazy))
	for pid := range lazy {
		pids = append(pids, pid)
	}
	sort.Ints(pids)
	// The push: range by range, and from where the last fault was once
	// one is answered (the pages after a fault are likely next), until
	// every page went one way or the other.
	total := uint64(0)
	for _, rs := range lazy {
		for _, r := range rs {
			total += uint64(r.Pages)
		}
	}
	cur := pushPos{}
	for p.pages < total && len(pids) > 0 {
		if err := p.serveRequests(false); err != nil {
			return err
		}
		select {
		case m, ok := <-s.msgs:
			if !ok {
				err := <-s.rerr
				s.rerr <- err
				return connError("post-copy", err)
			}
			if m.Type != msgRunning {
				if _, err := s.check(m, msgRunning); err != nil {
					return err
				}
			}
			onRunning(m)
		default:
		}
		if h := p.hint; h != nil {
			p.hint = nil
			for k, pid := range pids {
				if pid != h.pid {
					continue
				}
				rs := lazy[pid]
				if ri := sort.Search(len(rs), func(i int) bool { return rs[i].End() > h.addr }); ri < len(rs) {
					cur = pushPos{pi: k, ri: ri, addr: max(h.addr, rs[ri].Addr)}
				}
			}
		}
		rs := lazy[pids[cur.pi]]
		if cur.ri >= len(rs) {
			cur = pushPos{pi: (cur.pi + 1) % len(pids)}
			continue
		}
		r := rs[cur.ri]
		if cur.addr < r.Addr {
			cur.addr = r.Addr
		}
		n := min(pushChunk, int((r.End()-cur.addr)/image.PageSize))
		if err := p.send(p.push, pids[cur.pi], cur.addr, n); err != nil {
			return err
		}
		cur.addr += uint64(n) * image.PageSize
		if cur.addr >= r.End() {
			cur.ri++
			cur.addr = 0
		}
	}
	if err := p.push.Flush(); err != nil {
		return connError("push pages", err)
	}
	pushSt.Close() // the destination sees the end of the push
	// Answer the requests still in flight until the destination is done.
	for {
		select {
		case m, ok := <-s.msgs:
			if !ok {
				err := <-s.rerr
				s.rerr <- err
				return connError("post-copy", err)
			}
			switch m.Type {
			case msgRunning:
				onRunning(m)
				continue
			case msgPostcopyDone:
				s.rep.PostcopyFaults = p.faults
				return nil
			}
			if _, err := s.check(m, msgPostcopyDone); err != nil {
				return err
			}
		case err := <-reqErr:
			// The destination may have finished and gone: its last word
			// is what counts.
			t := time.NewTimer(2 * time.Second)
			for {
				select {
				case m, ok := <-s.msgs:
					if !ok {
						t.Stop()
						return connError("post-copy", err)
					}
					switch m.Type {
					case msgRunning:
						onRunning(m)
						continue
					case msgPostcopyDone:
						t.Stop()
						s.rep.PostcopyFaults = p.faults
						return nil
					}
					t.Stop()
					if _, cerr := s.check(m, msgPostcopyDone); cerr != nil {
						return cerr
					}
					return connError("post-copy", err)
				case <-t.C:
					return connError("post-copy", err)
				}
			}
		case req, ok := <-p.reqs:
			if !ok {
				p.reqs = nil
				continue
			}
			if err := p.answer(req); err != nil {
				return err
			}
			if err := p.urg.Flush(); err != nil {
				return connError("answer a page request", err)
			}
		case <-ctx.Done():
			return ctx.Err()
		}
	}
}

// serveRequests answers the requests queued (without waiting when block is
// false).
func (p *pusher) serveRequests(block bool) error {
	answered := false
	for {
		select {
		case req, ok := <-p.reqs:
			if !ok {
				p.reqs = nil
				return nil
			}
			if err := p.answer(req); err != nil {
				return err
			}
			answered = true
			continue
		default:
		}
		break
	}
	if answered {
		if err := p.urg.Flush(); err != nil {
			return connError("answer a page request", err)
		}
	}
	_ = block
	return nil
}

// answer sends the requested page and the ones after it in its range.
func (p *pusher) answer(req [2]uint64) error {
	pid, addr := int(req[0]), req[1]&^(image.PageSize-1)
	rs := p.lazy[pid]
	if p.sent[pid] == nil {
		return nil
	}
	p.faults++
	i := sort.Search(len(rs), func(i int) bool { return rs[i].End() > addr })
	if i == len(rs) || rs[i].Addr > addr {
		// Not a page the source has: zero.
		return writeFrame(p.urg, p.hdr, &pageFrame{pid: pid, addr: addr, count: 1, zero: true})
	}
	n := min(aroundFault, int((rs[i].End()-addr)/image.PageSize))
	p.hint = &pushHint{pid: pid, addr: addr + uint64(n)*image.PageSize}
	return p.send(p.urg, pid, addr, n)
}

// send reads n pages of pid at addr, skipping those sent already, and
// writes them to w.
func (p *pusher) send(w *bufio.Writer, pid int, addr uint64, n int) error {
	sent := p.sent[pid]
	for i := 0; i < n; {
		a := addr + uint64(i)*image.PageSize
		if sent[a] {
			i++
			continue
		}
		j := i
		for j < n && !sent[addr+uint64(j)*image.PageSize] {
			sent[addr+uint64(j)*image.PageSize] = true
			j++
		}
		data := p.buf[:(j-i)*image.PageSize]
		if err := p.procs[pid].Read(a, data); err != nil {
			return &fault.Error{Code: fault.CodeMigration, Op: "post-copy: read pages", PID: pid, Addr: a, Err: err}
		}
		if err := writeFrame(w, p.hdr, &pageFrame{pid: pid, addr: a, count: j - i, data: data}); err != nil {
			return connError("send pages", err)
		}
		p.pages += uint64(j - i)
		i = j
	}
	return nil
}

// ---- destination ----

// Page states at the destination.
const (
	pageWanted  = iota // in a lazy range, not here yet
	pageHere           // copied in
	pageDropped        // given back or unmapped by the process: stays zero
)

// lazyProc serves the page faults of one restored process.
type lazyProc struct {
	pid   int // the image's (the source's) pid
	u     *mem.UFFD
	mu    sync.Mutex
	state map[uint64]uint8
	asked map[uint64]bool
	lazy  []checkpoint.PageRange
	anon  []image.VMA
	// net are the pages the source left behind (post-copy, hybrid)
	net []checkpoint.PageRange
	// done are the source pages settled (see settled).
	done map[uint64]bool
	// queued are faults read by fill while it drained events.
	queued []mem.Event
	// remaps translate addresses after the process moved memory.
	remaps []remap
}

type remap struct{ from, to, len uint64 }

// toDest maps a source address to where the page lives now.
func (lp *lazyProc) toDest(a uint64) uint64 {
	for _, r := range lp.remaps {
		if a >= r.from && a < r.from+r.len {
			a = a - r.from + r.to
		}
	}
	return a
}

// toSource maps an address of the process now to the source's.
func (lp *lazyProc) toSource(a uint64) uint64 {
	for i := len(lp.remaps) - 1; i >= 0; i-- {
		r := lp.remaps[i]
		if a >= r.to && a < r.to+r.len {
			a = a - r.to + r.from
		}
	}
	return a
}

// postcopy is the destination's side of a post-copy.
type postcopy struct {
	procs  map[int]*lazyProc
	req    net.Conn
	reqMu  sync.Mutex
	hdr    []byte
	done   chan struct{}
	fail   chan error
	wg     sync.WaitGroup
	faults atomic.Uint64
	// remaining counts the lazy pages not here (nor dropped) yet.
	remaining atomic.Int64
	// local, for a pre-copy, holds the pages received in its rounds:
	// the processes are filled from it after they resumed.
	local   *store
	allHere chan struct{}
	once    sync.Once
}

// settled notes that a page of the lazy ranges is here or dropped, once
// per page of the source (lp.mu held).
func (pc *postcopy) settled(lp *lazyProc, dst uint64) {
	src := lp.toSource(dst)
	if lp.done[src] || !containsPage(lp.lazy, src) {
		return
	}
	lp.done[src] = true
	if pc.remaining.Add(-1) == 0 {
		pc.once.Do(func() { close(pc.allHere) })
	}
}

// adopt takes the userfaultfd of a restored process and registers its
// anonymous mappings.
func (pc *postcopy) adopt(pid, fd int, anon []image.VMA) error {
	u, err := mem.OpenUFFD(fd)
	if err != nil {
		unix.Close(fd)
		return &fault.Error{Code: fault.CodeRestoreFailed, Op: "post-copy", PID: pid, Msg: "userfaultfd", Err: err}
	}
	for _, v := range anon {
		if err := u.Register(v.Start, v.End-v.Start); err != nil {
			u.Close()
			return &fault.Error{Code: fault.CodeRestoreFailed, Op: "post-copy: register", PID: pid, Addr: v.Start, Err: err}
		}
	}
	pc.procs[pid] = &lazyProc{pid: pid, u: u, state: map[uint64]uint8{}, asked: map[uint64]bool{}, anon: anon, done: map[uint64]bool{}}
	return nil
}

// closeAll closes every userfaultfd: missing pages read as zero from then on.
func (pc *postcopy) closeAll() {
	for _, lp := range pc.procs {
		lp.u.Close()
	}
}

// start serves faults and applies the pages arriving on the two page
// streams, until both streams end; then done is closed.
func (pc *postcopy) start(ctx context.Context, sess Session, lazy lazyRanges) error {
	pc.allHere = make(chan struct{})
	total := int64(0)
	for pid, lp := range pc.procs {
		lp.net = lazy[pid]
		lp.lazy = lazy[pid]
		if pc.local != nil {
			// Hybrid: what the source left behind comes from it; the
			// store's older copies of those pages are dropped.
			pc.local.drop(pid, lp.net)
			lp.lazy = mergeRanges(append(pc.local.ranges(pid, lp.anon), lp.net...))
		}
		for _, r := range lp.lazy {
			total += int64(r.Pages)
		}
	}
	pc.remaining.Store(total)
	if total == 0 {
		close(pc.allHere)
	}
	push, err := sess.Accept(ctx)
	if err != nil {
		return connError("accept the post-copy stream", err)
	}
	urg, err := sess.Accept(ctx)
	if err != nil {
		return connError("accept the post-copy stream", err)
	}
	if pc.req, err = sess.Open(ctx); err != nil {
		return connError("open the page requests", err)
	}
	pc.hdr = make([]byte, requestFrame)
	pc.done = make(chan struct{})
	pc.fail = make(chan error, 4)
	stop := make(chan struct{})
	for _, lp := range pc.procs {
		pc.wg.Add(1)
		go pc.serveFaults(lp, stop)
	}
	if pc.local != nil {
		go pc.fillLocal()
	}
	pushed := make(chan struct{})
	for i, st := range []net.Conn{push, urg} {
		go func(st net.Conn) {
			err := pc.apply(st)
			select {
			case <-pc.allHere:
				return // the urgent stream ends with the migration
			default:
			}
			if err != nil {
				pc.fail <- err
			} else if i == 0 {
				close(pushed)
			}
		}(st)
	}
	go func() {
		select {
		case <-pc.allHere:
		case <-pushed:
			// Every page was sent; the last answers may still be coming.
			select {
			case <-pc.allHere:
			case <-time.After(10 * time.Second):
				pc.fail <- fmt.Errorf("%d pages did not arrive after the push ended", pc.remaining.Load())
			}
		}
		close(stop)
		pc.wg.Wait()
		close(pc.done)
	}()
	return nil
}

// apply copies the pages of one stream into the processes.
func (pc *postcopy) apply(st net.Conn) error {
	defer st.Close()
	br := bufio.NewReaderSize(st, 1<<20)
	hdr := make([]byte, frameHeader)
	var buf []byte
	var f pageFrame
	for {
		var err error
		buf, err = readFrame(br, hdr, &f, buf)
		if errors.Is(err, io.EOF) {
			return nil
		}
		if err != nil {
			return connError("receive post-copy pages", err)
		}
		if err := pc.fill(&f); err != nil {
			return err
		}
	}
}

// fill copies the pages of f that are still wanted into their process.
func (pc *postcopy) fill(f *pageFrame) error {
	lp := pc.procs[f.pid]
	if lp == nil {
		return nil
	}
	for i, tries := 0, 0; i < f.count; {
		// A run of pages wanted here, contiguous where they live now: one
		// UFFDIO_COPY (and one wake) for all of them. lp.mu is held from
		// the check to the copy: a page the process gave back or moved
		// meanwhile (its event is applied under lp.mu) is not filled.
		lp.mu.Lock()
		dst := lp.toDest(f.addr + uint64(i)*image.PageSize)
		n := 0
		for i+n < f.count {
			d := lp.toDest(f.addr + uint64(i+n)*image.PageSize)
			if d != dst+uint64(n)*image.PageSize || lp.state[d] != pageWanted {
				break
			}
			n++
		}
		if n == 0 {
			lp.mu.Unlock()
			i++
			continue
		}
		put := func(d uint64, k, m int) error {
			if f.zero {
				return lp.u.Zero(d, uint64(m)*image.PageSize)
			}
			return lp.u.Copy(d, f.data[k*image.PageSize:(k+m)*image.PageSize], true)
		}
		err := put(dst, i, n)
		if errors.Is(err, unix.ENOENT) && n > 1 {
			// Part of the run is no longer mapped (its unmap event may not
			// be read yet): page by page, so that the rest is filled and
			// only what is gone is counted gone.
			for k := 0; k < n; k++ {
				d := dst + uint64(k)*image.PageSize
				perr := put(d, i+k, 1)
				if perr != nil && !errors.Is(perr, unix.ENOENT) && !errors.Is(perr, unix.ESRCH) {
					lp.mu.Unlock()
					return &fault.Error{Code: fault.CodeMigration, Op: "post-copy: copy a page", PID: f.pid, Addr: d, Err: perr}
				}
				if errors.Is(perr, unix.ENOENT) {
					lp.state[d] = pageDropped
				} else {
					lp.state[d] = pageHere
				}
				pc.settled(lp, d)
			}
			lp.mu.Unlock()
			i += n
			tries = 0
			continue
		}
		if errors.Is(err, mem.ErrMappingsChanging) && tries < 1000 {
			// An event waits to be read: read and apply it (faults are
			// queued for the fault server), then look again.
			pc.drainLocked(lp)
			lp.mu.Unlock()
			tries++
			time.Sleep(100 * time.Microsecond)
			continue
		}
		if err != nil && !errors.Is(err, unix.ENOENT) && !errors.Is(err, unix.ESRCH) {
			lp.mu.Unlock()
			return &fault.Error{Code: fault.CodeMigration, Op: "post-copy: copy pages", PID: f.pid, Addr: dst, Err: err}
		}
		for k := 0; k < n; k++ {
			d := dst + uint64(k)*image.PageSize
			lp.state[d] = pageHere
			pc.settled(lp, d)
		}
		lp.mu.Unlock()
		i += n
		tries = 0
	}
	return nil
}

// serveFaults answers the faults of one process until stop.
func (pc *postcopy) serveFaults(lp *lazyProc, stop <-chan struct{}) {
	defer pc.wg.Done()
	for {
		select {
		case <-stop:
			return
		default:
		}
		lp.mu.Lock()
		queued := lp.queued
		lp.queued = nil
		lp.mu.Unlock()
		for _, ev := range queued {
			if err := pc.event(lp, ev); err != nil {
				pc.fail <- err
				return
			}
		}
		ok, err := lp.u.Poll(50 * time.Millisecond)
		if err != nil {
			pc.fail <- err
			return
		}
		if !ok {
			continue
		}
		for {
			// An event is read and applied under lp.mu: fill holds it
			// from its check of a page's state to its copy, so no page
			// given back or moved by the process is filled with old data.
			lp.mu.Lock()
			ev, ok, err := lp.u.ReadEvent()
			if err == nil && ok && ev.Kind != mem.EventPagefault {
				pc.mappingEvent(lp, ev)
			}
			lp.mu.Unlock()
			if err != nil {
				if errors.Is(err, unix.ESRCH) {
					return
				}
				pc.fail <- err
				return
			}
			if !ok {
				break
			}
			if ev.Kind != mem.EventPagefault {
				continue
			}
			if err := pc.event(lp, ev); err != nil {
				pc.fail <- err
				return
			}
		}
	}
}

// drainLocked reads the events queued in lp's userfaultfd, applies the
// changes of mappings and queues the faults (lp.mu held).
func (pc *postcopy) drainLocked(lp *lazyProc) {
	for {
		ev, ok, err := lp.u.ReadEvent()
		if err != nil || !ok {
			return
		}
		if ev.Kind == mem.EventPagefault {
			lp.queued = append(lp.queued, ev)
		} else {
			pc.mappingEvent(lp, ev)
		}
	}
}

// mappingEvent applies a change of the process's mappings (lp.mu held).
func (pc *postcopy) mappingEvent(lp *lazyProc, ev mem.Event) {
	switch ev.Kind {
	case mem.EventRemove, mem.EventUnmap:
		for a := ev.Addr; a < ev.Addr+ev.Len; a += image.PageSize {
			// Settled only where the page lives now: after a move, the
			// old range is unmapped while the pages live on elsewhere.
			if lp.state[a] == pageWanted && lp.toDest(lp.toSource(a)) == a {
				pc.settled(lp, a)
			}
			lp.state[a] = pageDropped
		}
	case mem.EventRemap:
		lp.remaps = append(lp.remaps, remap{from: ev.Addr, to: ev.To, len: ev.Len})
		for a := uint64(0); a < ev.Len; a += image.PageSize {
			if st, ok := lp.state[ev.Addr+a]; ok {
				lp.state[ev.To+a] = st
				delete(lp.state, ev.Addr+a)
			}
		}
	}
}

// event handles one page fault.
func (pc *postcopy) event(lp *lazyProc, ev mem.Event) error {
	if ev.Kind == mem.EventPagefault && pc.local != nil {
		a := ev.Addr &^ (image.PageSize - 1)
		lp.mu.Lock()
		net := containsPage(lp.net, lp.toSource(a))
		lp.mu.Unlock()
		if !net {
			return pc.localFault(lp, a)
		}
	}
	lp.mu.Lock()
	defer lp.mu.Unlock()
	switch ev.Kind {
	case mem.EventPagefault:
		a := ev.Addr &^ (image.PageSize - 1)
		src := lp.toSource(a)
		st := lp.state[a]
		if st == pageHere {
			return lp.u.Wake(a, image.PageSize)
		}
		if st == pageDropped || !containsPage(lp.lazy, src) {
			if st == pageWanted {
				lp.state[a] = pageHere
			}
			if err := lp.u.Zero(a, image.PageSize); err != nil && !errors.Is(err, unix.ENOENT) {
				return err
			}
			return nil
		}
		if lp.asked[a] {
			return nil
		}
		lp.asked[a] = true
		pc.faults.Add(1)
		pc.reqMu.Lock()
		defer pc.reqMu.Unlock()
		binary.LittleEndian.PutUint32(pc.hdr, uint32(lp.pid))
		binary.LittleEndian.PutUint32(pc.hdr[4:], 0)
		binary.LittleEndian.PutUint64(pc.hdr[8:], src)
		if _, err := pc.req.Write(pc.hdr); err != nil {
			return connError("request a page", err)
		}
	}
	return nil
}

// startLocal fills the processes, once they run, from the pages the
// pre-copy rounds brought here: in the background, and at once for a page
// a thread faults on. The freeze then only waits for the last round's
// pages, not for writing every page received before.
func (pc *postcopy) startLocal(st *store) {
	pc.local = st
	pc.allHere = make(chan struct{})
	pc.done = make(chan struct{})
	pc.fail = make(chan error, 4)
	total := int64(0)
	for pid, lp := range pc.procs {
		lp.lazy = st.ranges(pid, lp.anon)
		for _, r := range lp.lazy {
			total += int64(r.Pages)
		}
	}
	pc.remaining.Store(total)
	if total == 0 {
		close(pc.allHere)
	}
	stop := make(chan struct{})
	for _, lp := range pc.procs {
		pc.wg.Add(1)
		go pc.serveFaults(lp, stop)
	}
	go pc.fillLocal()
	go func() {
		<-pc.allHere
		close(stop)
		pc.wg.Wait()
		close(pc.done)
	}()
}

// fillLocal copies every page of the local store into its process.
func (pc *postcopy) fillLocal() {
	buf := make([]byte, image.MaxPagesPerRecord*image.PageSize)
	for pid, lp := range pc.procs {
		for _, r := range lp.lazy {
			for a := r.Addr; a < r.End(); {
				n := min(image.MaxPagesPerRecord, int((r.End()-a)/image.PageSize))
				// Pages the source left behind (hybrid) are not in the
				// store: fill skips them only once they are here, so a
				// frame is taken page run by page run of the store.
				n = pc.local.run(pid, a, n)
				if n == 0 {
					a += image.PageSize
					continue
				}
				f := pc.local.frame(pid, a, n, buf)
				if err := pc.fill(&f); err != nil {
					pc.fail <- err
					return
				}
				a += uint64(n) * image.PageSize
			}
		}
	}
}

// localFault serves a fault from the local store: the page and a few after
// it, or a zero page for one the source never had.
func (pc *postcopy) localFault(lp *lazyProc, a uint64) error {
	lp.mu.Lock()
	st := lp.state[a]
	src := lp.toSource(a)
	in := st == pageWanted && containsPage(lp.lazy, src)
	if st == pageWanted && !in {
		lp.state[a] = pageHere
	}
	lp.mu.Unlock()
	switch {
	case st == pageHere:
		return lp.u.Wake(a, image.PageSize)
	case !in:
		if err := lp.u.Zero(a, image.PageSize); err != nil && !errors.Is(err, unix.ENOENT) && !errors.Is(err, unix.EEXIST) {
			return err
		}
		return nil
	}
	pc.faults.Add(1)
	i := sort.Search(len(lp.lazy), func(i int) bool { return lp.lazy[i].End() > src })
	n := min(aroundFault, int((lp.lazy[i].End()-src)/image.PageSize))
	// Only what the store holds: in a hybrid, the pages after it may be
	// the source's to send.
	if n = pc.local.run(lp.pid, src, n); n == 0 {
		return fmt.Errorf("pid %d: page %#x faulted is not in the store", lp.pid, src)
	}
	buf := make([]byte, n*image.PageSize)
	f := pc.local.frame(lp.pid, src, n, buf)
	return pc.fill(&f)
}

// mergeRanges sorts ranges and merges those that touch or overlap.
func mergeRanges(rs []checkpoint.PageRange) []checkpoint.PageRange {
	sort.Slice(rs, func(i, j int) bool { return rs[i].Addr < rs[j].Addr })
	var out []checkpoint.PageRange
	for _, r := range rs {
		if k := len(out) - 1; k >= 0 && out[k].End() >= r.Addr {
			if r.End() > out[k].End() {
				out[k].Pages = int((r.End() - out[k].Addr) / image.PageSize)
			}
			continue
		}
		out = append(out, r)
	}
	return out
}
