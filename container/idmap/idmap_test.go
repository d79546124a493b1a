package idmap

import (
	"strings"
	"testing"
)

func TestParseSubIDs(t *testing.T) {
	in := "# comment\nalice:100000:65536\nbob:165536:65536\n1000:300000:10\nalice:bad:1\nalice:1:0\n\nalice:4294967295:2\n"
	got, err := ParseSubIDs(strings.NewReader(in), "alice", 1000)
	if err != nil {
		t.Fatal(err)
	}
	want := []SubRange{{100000, 65536}, {300000, 10}}
	if len(got) != len(want) || got[0] != want[0] || got[1] != want[1] {
		t.Errorf("got %v, want %v", got, want)
	}
}

func TestShiftAndLookup(t *testing.T) {
	m := Map{{0, 1000, 1}, {1, 100000, 65536}}
	if err := m.Validate(); err != nil {
		t.Fatal(err)
	}
	s := m.Shift(1000)
	if s[0] != (Range{1000, 1000, 1}) || s[1] != (Range{1001, 100000, 65536}) {
		t.Errorf("shift: %v", s)
	}
	if h, ok := m.ToHost(5); !ok || h != 100004 {
		t.Errorf("ToHost(5) = %d %v", h, ok)
	}
	if c, ok := m.ToContainer(1000); !ok || c != 0 {
		t.Errorf("ToContainer(1000) = %d %v", c, ok)
	}
	if _, ok := m.ToContainer(5); ok {
		t.Error("unmapped id mapped")
	}
	if m.String() != "0 1000 1\n1 100000 65536\n" {
		t.Errorf("String: %q", m.String())
	}
}

func TestValidateRefuses(t *testing.T) {
	for _, m := range []Map{
		nil,
		{{0, 0, 0}},
		{{0, 1000, 10}, {5, 2000, 10}},
		{{0, 1000, 10}, {20, 1005, 10}},
		{{4294967295, 0, 2}},
	} {
		if m.Validate() == nil {
			t.Errorf("accepted %v", m)
		}
	}
}

func FuzzParseSubIDs(f *testing.F) {
	f.Add([]byte("alice:100000:65536\n"))
	f.Add([]byte("1000:1:4294967295\n::\n"))
	f.Fuzz(func(t *testing.T, in []byte) {
		got, err := ParseSubIDs(strings.NewReader(string(in)), "alice", 1000)
		if err != nil {
			return
		}
		for _, r := range got {
			if r.Count == 0 || uint64(r.Start)+uint64(r.Count) > 1<<32 {
				t.Fatalf("bad range %v", r)
			}
		}
	})
}
