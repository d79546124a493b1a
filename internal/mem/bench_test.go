package mem

import (
	"fmt"
	"testing"
	"time"

	"golang.org/x/sys/unix"
)

const gib = 1 << 30 / PageSize // pages in 1 GiB

// bigVictim starts a victim with n pages written.
func bigVictim(b *testing.B, n int) (*victim, uint64) {
	v := startVictim(b)
	addr := v.mapPages(n)
	v.do("ok", "fill %x %d 1", addr, n)
	return v, addr
}

// BenchmarkTrackArm1GiB arms tracking of a process with 1 GiB written:
// Track (inject the userfaultfd, register the mappings), the first Dirty
// round (which reports and protects every page), and Close.
func BenchmarkTrackArm1GiB(b *testing.B) {
	v, addr := bigVictim(b, gib)
	var track, first, closing time.Duration
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		t0 := time.Now()
		tr, err := Track(v.pid)
		if err != nil {
			b.Fatal(err)
		}
		t1 := time.Now()
		rs, err := tr.Dirty()
		if err != nil {
			b.Fatal(err)
		}
		t2 := time.Now()
		if err := tr.Close(); err != nil {
			b.Fatal(err)
		}
		t3 := time.Now()
		track, first, closing = track+t1.Sub(t0), first+t2.Sub(t1), closing+t3.Sub(t2)
		b.StopTimer()
		if got := len(pagesIn(rs, addr, gib)); got != gib {
			b.Fatalf("first round: %d of %d pages", got, gib)
		}
		b.StartTimer()
	}
	ms := func(d time.Duration) float64 { return float64(d) / float64(b.N) / 1e6 }
	b.ReportMetric(ms(track), "track-ms")
	b.ReportMetric(ms(first), "first-round-ms")
	b.ReportMetric(ms(closing), "close-ms")
}

// BenchmarkTrackRound1GiB is one Dirty round over a process with 1 GiB
// tracked, of which 1% (every 100th page), nothing, or one page in each
// 2 MiB was written since the last round.
func BenchmarkTrackRound1GiB(b *testing.B) {
	for _, c := range []struct {
		name   string
		stride int
	}{{"1pct", 100}, {"0pct", 0}, {"onePer2MiB", 512}} {
		b.Run(c.name, func(b *testing.B) {
			v, addr := bigVictim(b, gib)
			tr := track(b, v)
			if _, err := tr.Dirty(); err != nil {
				b.Fatal(err)
			}
			want := 0
			b.ResetTimer()
			for i := 0; i < b.N; i++ {
				b.StopTimer()
				if c.stride > 0 {
					want, _ = pokeStride(b, v, addr, gib, c.stride)
				}
				b.StartTimer()
				rs, err := tr.Dirty()
				if err != nil {
					b.Fatal(err)
				}
				b.StopTimer()
				if got := len(pagesIn(rs, addr, gib)); got != want {
					b.Fatalf("round: %d pages of the region reported, %d written", got, want)
				}
				b.StartTimer()
			}
		})
	}
}

// pokeStride has the program write every stride-th page of n at addr and
// returns how many pages it wrote and how long that took it.
func pokeStride(b *testing.B, v *victim, addr uint64, n, stride int) (int, time.Duration) {
	var pages int
	var ns int64
	l := v.do("ok ", "pokestride %x %d %d", addr, n, stride)
	if _, err := fmt.Sscanf(l, "ok %d %d", &pages, &ns); err != nil {
		b.Fatalf("pokestride answered %q: %v", l, err)
	}
	return pages, time.Duration(ns)
}

// BenchmarkTrackWriteCost is what tracking costs the process: the time of
// its first write to a page (of 256 MiB, one word per page) while the page
// is write-protected by a Tracker, against a first-touch page fault (the
// pages given back with MADV_DONTNEED before) without tracking.
func BenchmarkTrackWriteCost(b *testing.B) {
	const n = gib / 4
	for _, tracked := range []bool{false, true} {
		name := "untracked"
		if tracked {
			name = "tracked"
		}
		b.Run(name, func(b *testing.B) {
			v, addr := bigVictim(b, n)
			var tr *Tracker
			if tracked {
				tr = track(b, v)
			}
			var spent time.Duration
			for i := 0; i < b.N; i++ {
				b.StopTimer()
				if tr != nil {
					if _, err := tr.Dirty(); err != nil { // protects every page again
						b.Fatal(err)
					}
				} else {
					v.do("ok", "dontneed %x %d", addr, n)
				}
				b.StartTimer()
				_, d := pokeStride(b, v, addr, n, 1)
				spent += d
			}
			b.ReportMetric(float64(spent)/float64(b.N)/n, "ns/page-write")
		})
	}
}

// BenchmarkUFFDFault measures the service of a missing-page fault of
// another process: the program reads one byte of each page in turn, a
// goroutine here polls the userfaultfd, reads the fault and copies the page
// (and the next ones, with pages > 1). The program times each access: p50
// and p99 are what a thread of a post-copied process waits for a page
// served from memory.
func BenchmarkUFFDFault(b *testing.B) {
	for _, per := range []int{1, 16} {
		b.Run(fmt.Sprintf("pages=%d", per), func(b *testing.B) {
			v := startVictim(b)
			n := max(b.N, 2)
			addr := v.mapPages(n)
			u := victimUFFD(b, v, unix.O_CLOEXEC|unix.O_NONBLOCK)
			if err := u.Register(addr, uint64(n)*PageSize); err != nil {
				b.Fatal(err)
			}
			src := make([]byte, n*PageSize)
			for i := range src {
				src[i] = byte(i / PageSize)
			}
			stop, done := make(chan struct{}), make(chan error, 1)
			go func() {
				done <- func() error {
					for {
						select {
						case <-stop:
							return nil
						default:
						}
						if ok, err := u.Poll(20 * time.Millisecond); err != nil || !ok {
							if err != nil {
								return err
							}
							continue
						}
						for {
							a, ok, err := u.ReadFault()
							if err != nil || !ok {
								if err != nil {
									return err
								}
								break
							}
							off := int(a - addr)
							if err := u.Copy(a, src[off:min(off+per*PageSize, len(src))], true); err != nil {
								return err
							}
						}
					}
				}()
			}()
			b.ResetTimer()
			l := v.do("lat ", "touchtime %x %d", addr, n)
			b.StopTimer()
			close(stop)
			if err := <-done; err != nil {
				b.Fatal(err)
			}
			var p50, p99, worst, total float64
			if _, err := fmt.Sscanf(l, "lat %g %g %g %g", &p50, &p99, &worst, &total); err != nil {
				b.Fatal(err)
			}
			b.ReportMetric(p50/1e3, "p50-µs")
			b.ReportMetric(p99/1e3, "p99-µs")
			b.ReportMetric(worst/1e3, "max-µs")
		})
	}
}

// BenchmarkUFFDCopy2MiB copies 2 MiB at a time into registered memory of
// another process nobody waits for (UFFDIO_COPY throughput).
func BenchmarkUFFDCopy2MiB(b *testing.B) {
	const chunk = 512 // pages
	const n = 32 * chunk
	v := startVictim(b)
	addr := v.mapPages(n)
	u := victimUFFD(b, v, unix.O_CLOEXEC|unix.O_NONBLOCK)
	if err := u.Register(addr, n*PageSize); err != nil {
		b.Fatal(err)
	}
	src := make([]byte, chunk*PageSize)
	for i := range src {
		src[i] = byte(i)
	}
	b.SetBytes(int64(len(src)))
	next := 0
	for i := 0; i < b.N; i++ {
		if next == n {
			// Full: have the program give the pages back, and read the
			// event its madvise waits for.
			b.StopTimer()
			v.send("dontneed %x %d", addr, n)
			for seen := false; !seen; {
				if _, err := u.Poll(time.Minute); err != nil {
					b.Fatal(err)
				}
				ev, ok, err := u.ReadEvent()
				if err != nil {
					b.Fatal(err)
				}
				seen = ok && ev.Kind == EventRemove
			}
			v.line()
			next = 0
			b.StartTimer()
		}
		if err := u.Copy(addr+uint64(next)*PageSize, src, false); err != nil {
			b.Fatal(err)
		}
		next += chunk
	}
}

// BenchmarkMemcpy is this machine's memcpy speed, for comparison (64 MiB).
func BenchmarkMemcpy(b *testing.B) {
	src, dst := make([]byte, 64<<20), make([]byte, 64<<20)
	for i := range src {
		src[i] = byte(i)
	}
	copy(dst, src)
	b.SetBytes(int64(len(src)))
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		copy(dst, src)
	}
}

// BenchmarkProcessVMReadv reads 64 MiB of another process with 1 MiB
// iovecs (ReadRanges), for comparison.
func BenchmarkProcessVMReadv(b *testing.B) {
	const n = 16384
	v, addr := bigVictim(b, n)
	p, err := Open(v.pid, false)
	if err != nil {
		b.Fatal(err)
	}
	defer p.Close()
	var ranges []Range
	for off := 0; off < n*PageSize; off += 1 << 20 {
		ranges = append(ranges, Range{Addr: addr + uint64(off), Size: 1 << 20})
	}
	buf := make([]byte, n*PageSize)
	Prefault(buf)
	b.SetBytes(int64(len(buf)))
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		if err := p.ReadRanges(buf, ranges); err != nil {
			b.Fatal(err)
		}
	}
}
