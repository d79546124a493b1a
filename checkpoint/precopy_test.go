package checkpoint

import (
	"math/rand/v2"
	"testing"

	"github.com/godwit-dev/godwit/image"
	"github.com/godwit-dev/godwit/internal/mem"
)

const pg = mem.PageSize

func TestNormalize(t *testing.T) {
	got := normalize([]PageRange{{Addr: 5 * pg, Pages: 2}, {Addr: pg, Pages: 2}, {Addr: 3 * pg, Pages: 1}, {Addr: 9 * pg, Pages: 0}, {Addr: 6 * pg, Pages: 1}})
	want := []PageRange{{Addr: pg, Pages: 3}, {Addr: 5 * pg, Pages: 2}}
	if len(got) != 2 || got[0] != want[0] || got[1] != want[1] {
		t.Fatalf("got %+v", got)
	}
}

func TestClipExtents(t *testing.T) {
	exts := []extent{
		{addr: 0, pages: 10, vma: 0},
		{addr: 20 * pg, pages: 4, vma: 1, zero: true},
		{addr: 30 * pg, pages: 10, vma: 1},
	}
	dirty := normalize([]PageRange{{Addr: 2 * pg, Pages: 3}, {Addr: 8 * pg, Pages: 25}, {Addr: 39 * pg, Pages: 5}})
	got, total := clipExtents(exts, dirty)
	type want struct {
		addr  uint64
		pages int
		zero  bool
		off   int
	}
	ws := []want{{2 * pg, 3, false, 0}, {8 * pg, 2, false, 3 * pg}, {20 * pg, 4, true, 5 * pg}, {30 * pg, 3, false, 5 * pg}, {39 * pg, 1, false, 8 * pg}}
	if len(got) != len(ws) || total != 9*pg {
		t.Fatalf("got %+v total %d", got, total)
	}
	for i, w := range ws {
		g := got[i]
		if g.addr != w.addr || g.pages != w.pages || g.zero != w.zero || g.off != w.off || !g.keepZero {
			t.Fatalf("extent %d: got %+v want %+v", i, g, w)
		}
	}
}

func TestDroppedRuns(t *testing.T) {
	vmas := []image.VMA{
		{Start: 0, End: 16 * pg, Kind: image.VMAAnon},
		{Start: 16 * pg, End: 32 * pg, Kind: image.VMAFile},
	}
	exts := []extent{{addr: 2 * pg, pages: 2}, {addr: 6 * pg, pages: 1}}
	dirty := []PageRange{{Addr: 0, Pages: 8}, {Addr: 16 * pg, Pages: 4}}
	runs := droppedRuns(vmas, exts, dirty)
	want := []pageRun{{addr: 0, count: 2}, {addr: 4 * pg, count: 2}, {addr: 7 * pg, count: 1}}
	if len(runs) != len(want) {
		t.Fatalf("got %+v", runs)
	}
	for i := range want {
		if runs[i].addr != want[i].addr || runs[i].count != want[i].count || runs[i].data != nil {
			t.Fatalf("run %d: got %+v", i, runs[i])
		}
	}
}

// TestDroppedRunsRandom compares droppedRuns with a page-by-page answer on
// random layouts.
func TestDroppedRunsRandom(t *testing.T) {
	rng := rand.New(rand.NewPCG(1, 2))
	for iter := 0; iter < 500; iter++ {
		var vmas []image.VMA
		var exts []extent
		a := uint64(0)
		for i := 0; i < 1+rng.IntN(5); i++ {
			a += uint64(rng.IntN(3)) * pg
			n := uint64(1 + rng.IntN(20))
			kind := image.VMAAnon
			if rng.IntN(3) == 0 {
				kind = image.VMAFile
			}
			vmas = append(vmas, image.VMA{Start: a, End: a + n*pg, Kind: kind})
			for p := a; p < a+n*pg; {
				k := uint64(1 + rng.IntN(4))
				if p+k*pg > a+n*pg {
					k = (a + n*pg - p) / pg
				}
				if rng.IntN(2) == 0 {
					exts = append(exts, extent{addr: p, pages: int(k), vma: len(vmas) - 1})
				}
				p += k * pg
			}
			a += n * pg
		}
		var dirty []PageRange
		for i := 0; i < rng.IntN(6); i++ {
			dirty = append(dirty, PageRange{Addr: uint64(rng.IntN(int(a/pg)+2)) * pg, Pages: 1 + rng.IntN(15)})
		}
		dirty = normalize(dirty)
		want := map[uint64]bool{}
		for _, d := range dirty {
			for p := d.Addr; p < d.End(); p += pg {
				anon, present := false, false
				for _, v := range vmas {
					anon = anon || (v.Kind == image.VMAAnon && v.Start <= p && p < v.End)
				}
				for _, e := range exts {
					present = present || (e.addr <= p && p < e.addr+uint64(e.pages)*pg)
				}
				if anon && !present {
					want[p] = true
				}
			}
		}
		got := map[uint64]bool{}
		for _, r := range droppedRuns(vmas, exts, dirty) {
			for k := 0; k < r.count; k++ {
				p := r.addr + uint64(k)*pg
				if got[p] {
					t.Fatalf("page %#x twice", p)
				}
				got[p] = true
			}
		}
		if len(got) != len(want) {
			t.Fatalf("iteration %d: %d pages dropped, want %d", iter, len(got), len(want))
		}
		for p := range want {
			if !got[p] {
				t.Fatalf("iteration %d: page %#x not dropped", iter, p)
			}
		}
	}
}
