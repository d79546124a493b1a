package procfs

import (
	"bytes"
	"reflect"
	"strings"
	"testing"
)

// Every fuzz target checks that its parser does not panic, that errors are
// *ParseErrors, and some invariants of successful results.

func checkFuzzErr(t *testing.T, err error) {
	t.Helper()
	if err == nil {
		return
	}
	if _, ok := err.(*ParseError); !ok {
		t.Fatalf("error %q (%T) is not a *ParseError", err, err)
	}
}

func FuzzParseMaps(f *testing.F) {
	seed(f, "maps", "1000-2000 r--p 00000000 00:00 0 [anon:x]\n", "1000-2000 r--p 0 0:0 0 /a (deleted)")
	f.Fuzz(func(t *testing.T, data []byte) {
		maps, err := ParseMaps(bytes.NewReader(data))
		checkFuzzErr(t, err)
		if err != nil {
			return
		}
		for _, m := range maps {
			if m.End < m.Start || m.VmFlags != nil || m.Rss != 0 || strings.HasPrefix(m.Path, " ") {
				t.Fatalf("bad mapping %+v", m)
			}
		}
		// Every maps file is an smaps file without fields.
		smaps, err := ParseSmaps(bytes.NewReader(data))
		if err != nil || !reflect.DeepEqual(maps, smaps) {
			t.Fatalf("ParseSmaps disagrees: %v\nmaps  %+v\nsmaps %+v", err, maps, smaps)
		}
	})
}

func FuzzParseSmaps(f *testing.F) {
	seed(f, "smaps", "1000-2000 rw-p 00000000 00:00 0 \nRss: 4 kB\nVmFlags: \n")
	f.Fuzz(func(t *testing.T, data []byte) {
		maps, err := ParseSmaps(bytes.NewReader(data))
		checkFuzzErr(t, err)
		for _, m := range maps {
			if m.End < m.Start || m.Rss%1024 != 0 || m.Anonymous%1024 != 0 || m.Swap%1024 != 0 {
				t.Fatalf("bad mapping %+v", m)
			}
		}
	})
}

func FuzzParseStatus(f *testing.F) {
	seed(f, "status", minStatus+"Name:\t\\\n")
	f.Fuzz(func(t *testing.T, data []byte) {
		st, err := ParseStatus(bytes.NewReader(data))
		checkFuzzErr(t, err)
		if err == nil && st == nil {
			t.Fatal("nil Status without error")
		}
	})
}

func FuzzParseStat(f *testing.F) {
	seed(f, "stat", "1 ()) "+statTail, "1 (\n) "+statTail)
	f.Fuzz(func(t *testing.T, data []byte) {
		st, err := ParseStat(bytes.NewReader(data))
		checkFuzzErr(t, err)
		if err != nil {
			return
		}
		if !bytes.Contains(data, []byte("("+st.Comm+") ")) {
			t.Fatalf("comm %q from %q", st.Comm, data)
		}
	})
}

func FuzzParseFDInfo(f *testing.F) {
	seed(f, "fdinfo")
	f.Fuzz(func(t *testing.T, data []byte) {
		fi, err := ParseFDInfo(bytes.NewReader(data))
		checkFuzzErr(t, err)
		if err == nil && len(fi.Lines) > bytes.Count(data, []byte("\n"))+1 {
			t.Fatalf("%d lines from %q", len(fi.Lines), data)
		}
	})
}

func FuzzParseLimits(f *testing.F) {
	seed(f, "limits", "Max cpu time 1 2\n", "a b c d\n")
	f.Fuzz(func(t *testing.T, data []byte) {
		limits, err := ParseLimits(bytes.NewReader(data))
		checkFuzzErr(t, err)
		if err != nil {
			return
		}
		// What was parsed survives a round trip through the kernel's format.
		again, err := ParseLimits(strings.NewReader(formatLimits(limits)))
		if err != nil || (len(limits) > 0 || len(again) > 0) && !reflect.DeepEqual(limits, again) {
			t.Fatalf("round trip: %v\nfirst  %+v\nsecond %+v", err, limits, again)
		}
	})
}

func FuzzParseTimers(f *testing.F) {
	seed(f, "timers", "ID: 1\nsignal: 1/0\nnotify: x/tid.1\nClockID: 0\n")
	f.Fuzz(func(t *testing.T, data []byte) {
		timers, err := ParseTimers(bytes.NewReader(data))
		checkFuzzErr(t, err)
		if err != nil {
			return
		}
		// Notify strings with '/' do not survive a round trip; the kernel
		// never prints them.
		for _, tm := range timers {
			if strings.ContainsAny(tm.Notify, "/") || tm.Notify != strings.TrimSpace(tm.Notify) {
				return
			}
		}
		again, err := ParseTimers(strings.NewReader(formatTimers(timers)))
		if err != nil || !reflect.DeepEqual(timers, again) {
			t.Fatalf("round trip: %v\nfirst  %+v\nsecond %+v", err, timers, again)
		}
	})
}

func FuzzParseAuxv(f *testing.F) {
	seed(f, "auxv", string(auxvBytes(6, 4096, 0, 0)))
	f.Fuzz(func(t *testing.T, data []byte) {
		words, err := ParseAuxv(bytes.NewReader(data))
		checkFuzzErr(t, err)
		if err != nil || len(words) == 0 {
			return
		}
		if len(words)%2 != 0 || words[len(words)-2] != 0 {
			t.Fatalf("bad auxv %x", words)
		}
		if got := auxvBytes(words...); !bytes.HasPrefix(data, got) {
			t.Fatalf("words %x are not a prefix of the input", words)
		}
	})
}

func FuzzParseChildren(f *testing.F) {
	seed(f, "children", "1\n2 3")
	f.Fuzz(func(t *testing.T, data []byte) {
		kids, err := ParseChildren(bytes.NewReader(data))
		checkFuzzErr(t, err)
		for _, k := range kids {
			if k <= 0 {
				t.Fatalf("pid %d", k)
			}
		}
	})
}
