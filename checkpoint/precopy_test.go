package checkpoint

import (
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
