package checkpoint

import (
	"testing"

	"github.com/godwit-dev/godwit/internal/mem"
)

func TestAppendRuns(t *testing.T) {
	page := func(v byte) []byte {
		b := make([]byte, mem.PageSize)
		if v != 0 {
			b[100] = v
		}
		return b
	}
	var buf []byte
	for _, v := range []byte{1, 0, 0, 2, 3, 0} {
		buf = append(buf, page(v)...)
	}
	t.Run("anonymous drops zero pages", func(t *testing.T) {
		var pages, zero uint64
		runs := appendRuns(nil, 0x1000, buf, false, &pages, &zero)
		if len(runs) != 2 || runs[0].count != 1 || runs[1].addr != 0x1000+3*mem.PageSize || runs[1].count != 2 {
			t.Fatalf("runs %+v", runs)
		}
		if pages != 3 || zero != 3 {
			t.Errorf("pages %d zero %d, want 3 3", pages, zero)
		}
	})
	t.Run("file mappings keep zero runs", func(t *testing.T) {
		var pages, zero uint64
		runs := appendRuns(nil, 0x1000, buf, true, &pages, &zero)
		if len(runs) != 4 || runs[1].data != nil || runs[1].count != 2 || runs[3].data != nil {
			t.Fatalf("runs %+v", runs)
		}
		if pages != 6 || zero != 3 {
			t.Errorf("pages %d zero %d, want 6 3", pages, zero)
		}
	})
}

func TestFDKind(t *testing.T) {
	for link, want := range map[string]string{
		"pipe:[123]":             "pipe",
		"socket:[9]":             "socket",
		"anon_inode:[eventfd]":   "eventfd",
		"anon_inode:[eventpoll]": "eventpoll",
		"/dev/pts/3":             "terminal",
		"/weird":                 "file /weird",
	} {
		if got := fdKind(link); got != want {
			t.Errorf("fdKind(%q) = %q, want %q", link, got, want)
		}
	}
}
