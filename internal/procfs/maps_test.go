package procfs

import (
	"bytes"
	"os"
	"reflect"
	"strings"
	"testing"
)

func TestParseMapsFixtures(t *testing.T) {
	all := fixtures(t, "maps")
	for _, name := range sortedNames(all) {
		t.Run(name, func(t *testing.T) {
			data := all[name]
			maps, err := ParseMaps(bytes.NewReader(data))
			if err != nil {
				t.Fatal(err)
			}
			if want := bytes.Count(data, []byte("\n")); len(maps) != want {
				t.Errorf("%d mappings, want %d", len(maps), want)
			}
			for i, m := range maps {
				if m.VmFlags != nil {
					t.Errorf("mapping %d: VmFlags %q from maps", i, m.VmFlags)
				}
				if m.Len() == 0 || m.Len()%4096 != 0 {
					t.Errorf("mapping %d: Len %d", i, m.Len())
				}
				if i > 0 && m.Start < maps[i-1].End {
					t.Errorf("mapping %d overlaps the one before", i)
				}
			}
		})
	}
}

func TestParseMapsKernelThread(t *testing.T) {
	maps, err := ParseMaps(bytes.NewReader(fixture(t, "maps/kthreadd.txt")))
	if err != nil || len(maps) != 0 {
		t.Fatalf("got %v, %v; want no mappings", maps, err)
	}
}

// byStart finds the mapping at start.
func byStart(t *testing.T, maps []Mapping, start uint64) Mapping {
	t.Helper()
	for _, m := range maps {
		if m.Start == start {
			return m
		}
	}
	t.Fatalf("no mapping at %#x", start)
	return Mapping{}
}

func TestParseMapsCFixture(t *testing.T) {
	maps, err := ParseMaps(bytes.NewReader(fixture(t, "maps/c-fixture.txt")))
	if err != nil {
		t.Fatal(err)
	}
	want := []Mapping{
		{Start: 0x557071008000, End: 0x55707100a000, Read: true, Major: 0xfe, Inode: 9978226, Path: "/tmp/fixture/timers"},
		{Start: 0x55707100a000, End: 0x55707100b000, Read: true, Exec: true, Offset: 0x2000, Major: 0xfe, Inode: 9978226, Path: "/tmp/fixture/timers"},
		{Start: 0x5570a7e24000, End: 0x5570a7e45000, Read: true, Write: true, Path: "[heap]"},
		{Start: 0x7fc06baec000, End: 0x7fc06baed000, Read: true, Write: true},
		{Start: 0x7fc06bbef000, End: 0x7fc06bbf0000},
		{Start: 0x7fc06bbf0000, End: 0x7fc06bbf1000, Read: true, Write: true, Exec: true},
		{Start: 0x7fc06bbf2000, End: 0x7fc06bbf3000, Read: true, Write: true, Shared: true, Minor: 1, Inode: 3, Path: "/SYSV00000000", Deleted: true},
		{Start: 0x7fc06c41d000, End: 0x7fc06c573000, Read: true, Exec: true, Offset: 0x26000, Major: 0xfe, Inode: 326269, Path: "/usr/lib/x86_64-linux-gnu/libc.so.6"},
		{Start: 0x7fc06c5d9000, End: 0x7fc06c5da000, Read: true, Write: true, Shared: true, Minor: 1, Inode: 31, Path: "/memfd:godwit memfd", Deleted: true},
		// A file really named "x (deleted)": the format cannot tell.
		{Start: 0x7fc06c5da000, End: 0x7fc06c5dc000, Read: true, Write: true, Major: 0xfe, Inode: 9978572, Path: "/tmp/fixture/data/x", Deleted: true},
		{Start: 0x7fc06c5dc000, End: 0x7fc06c5de000, Read: true, Write: true, Major: 0xfe, Inode: 9978571, Path: `/tmp/fixture/data/new\012line`},
		{Start: 0x7fc06c5de000, End: 0x7fc06c5e0000, Read: true, Write: true, Shared: true, Major: 0xfe, Inode: 9978570, Path: "/tmp/fixture/data/shared file"},
		{Start: 0x7fc06c5e0000, End: 0x7fc06c5e2000, Read: true, Write: true, Major: 0xfe, Inode: 9978569, Path: "/tmp/fixture/data/deleted file", Deleted: true},
		{Start: 0x7fc06c5e4000, End: 0x7fc06c5e8000, Read: true, Path: "[vvar]"},
		{Start: 0x7fc06c5e8000, End: 0x7fc06c5ea000, Read: true, Path: "[vvar_vclock]"},
		{Start: 0x7fc06c5ea000, End: 0x7fc06c5ec000, Read: true, Exec: true, Path: "[vdso]"},
		{Start: 0x7fffd2109000, End: 0x7fffd212a000, Read: true, Write: true, Path: "[stack]"},
		{Start: 0xffffffffff600000, End: 0xffffffffff601000, Exec: true, Path: "[vsyscall]"},
	}
	for _, w := range want {
		if got := byStart(t, maps, w.Start); !reflect.DeepEqual(got, w) {
			t.Errorf("got  %+v\nwant %+v", got, w)
		}
	}
	if got := maps[len(maps)-1].Len(); got != 4096 {
		t.Errorf("vsyscall Len = %d", got)
	}
}

func TestParseMapsPython(t *testing.T) {
	maps, err := ParseMaps(bytes.NewReader(fixture(t, "maps/python3.txt")))
	if err != nil {
		t.Fatal(err)
	}
	var deleted, python int
	for _, m := range maps {
		if m.Deleted {
			deleted++
			if m.Path != "/tmp/fixture/data/py deleted.bin" || !m.Shared || m.Len() != 16384 {
				t.Errorf("deleted mapping %+v", m)
			}
		}
		if strings.HasPrefix(m.Path, "/usr/bin/python3") {
			python++
		}
	}
	if deleted != 1 || python == 0 {
		t.Errorf("%d deleted mappings, %d of python3", deleted, python)
	}
}

func TestParseMapsEdgeCases(t *testing.T) {
	cases := []struct {
		name, line string
		want       Mapping
	}{
		{"anon name", "7f0000000000-7f0000001000 rw-p 00000000 00:00 0                          [anon:my buffer]",
			Mapping{Start: 0x7f0000000000, End: 0x7f0000001000, Read: true, Write: true, Path: "[anon:my buffer]"}},
		{"anon shmem name", "7f0000000000-7f0000001000 rw-s 00000000 00:01 1027                       [anon_shmem:ring]",
			Mapping{Start: 0x7f0000000000, End: 0x7f0000001000, Read: true, Write: true, Shared: true, Minor: 1, Inode: 1027, Path: "[anon_shmem:ring]"}},
		{"no trailing space", "1000-2000 r--p 00000000 00:00 0",
			Mapping{Start: 0x1000, End: 0x2000, Read: true}},
		{"32-bit style widths", "08048000-08049000 r-xp 00000000 03:01 12 /bin/x",
			Mapping{Start: 0x8048000, End: 0x8049000, Read: true, Exec: true, Major: 3, Minor: 1, Inode: 12, Path: "/bin/x"}},
		{"big device", "1000-2000 r--s 7fffffff000 103:1fffff 18446744073709551615 /dev/x",
			Mapping{Start: 0x1000, End: 0x2000, Read: true, Shared: true, Offset: 0x7fffffff000, Major: 0x103, Minor: 0x1fffff, Inode: 1<<64 - 1, Path: "/dev/x"}},
		{"path with trailing spaces", "1000-2000 r--p 00000000 fe:00 5 /tmp/a b  ",
			Mapping{Start: 0x1000, End: 0x2000, Read: true, Major: 0xfe, Inode: 5, Path: "/tmp/a b  "}},
		{"deleted twice", "1000-2000 r--p 00000000 fe:00 5 /a (deleted) (deleted)",
			Mapping{Start: 0x1000, End: 0x2000, Read: true, Major: 0xfe, Inode: 5, Path: "/a (deleted)", Deleted: true}},
		{"long path past the column", "1000-2000 r--p 00000000 fe:00 5 /" + strings.Repeat("d", 200),
			Mapping{Start: 0x1000, End: 0x2000, Read: true, Major: 0xfe, Inode: 5, Path: "/" + strings.Repeat("d", 200)}},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			for _, in := range []string{c.line, c.line + "\n"} {
				maps, err := ParseMaps(strings.NewReader(in))
				if err != nil {
					t.Fatal(err)
				}
				if len(maps) != 1 || !reflect.DeepEqual(maps[0], c.want) {
					t.Errorf("got  %+v\nwant %+v", maps, c.want)
				}
			}
		})
	}
}

const goodMapsLine = "1000-2000 r--p 00000000 fe:00 5 /x\n"

var badMaps = []badCase{
	{"empty line", goodMapsLine + "\n", "maps line 2: too few fields", 2},
	{"too few fields", goodMapsLine + "1000-2000 r--p 00000000 fe:00\n", "maps line 2: too few fields", 2},
	{"no dash", "10002000 r--p 00000000 fe:00 5\n", "maps line 1: bad address range", 1},
	{"bad start", "x1000-2000 r--p 00000000 fe:00 5\n", `maps line 1: bad start address "x1000"`, 1},
	{"bad end", "1000-2000z r--p 00000000 fe:00 5\n", `bad end address "2000z"`, 1},
	{"end overflows", "1000-10000000000000000 r--p 00000000 fe:00 5\n", "value out of range", 1},
	{"end below start", "2000-1000 r--p 00000000 fe:00 5\n", "end below start", 1},
	{"short perms", "1000-2000 rw 00000000 fe:00 5\n", `bad permissions "rw"`, 1},
	{"bad perms", "1000-2000 rwxx 00000000 fe:00 5\n", `bad permissions "rwxx"`, 1},
	{"perms order", "1000-2000 wr-p 00000000 fe:00 5\n", `bad permissions "wr-p"`, 1},
	{"bad offset", "1000-2000 r--p 0000000g fe:00 5\n", `bad offset "0000000g"`, 1},
	{"bad device", "1000-2000 r--p 00000000 fe00 5\n", `bad device "fe00"`, 1},
	{"bad major", "1000-2000 r--p 00000000 :00 5\n", `bad device major ""`, 1},
	{"bad minor", "1000-2000 r--p 00000000 fe:1ffffffff 5\n", `bad device minor "1ffffffff"`, 1},
	{"bad inode", "1000-2000 r--p 00000000 fe:00 -5\n", `bad inode "-5"`, 1},
	{"smaps field", goodMapsLine + "Rss:                   8 kB\n", "maps line 2:", 2},
}

func TestParseMapsMalformed(t *testing.T) {
	checkBad(t, badMaps, func(r *bytes.Reader) error {
		_, err := ParseMaps(r)
		return err
	})
}

func TestParseSmapsFixtures(t *testing.T) {
	all := fixtures(t, "smaps")
	for _, name := range sortedNames(all) {
		t.Run(name, func(t *testing.T) {
			smaps, err := ParseSmaps(bytes.NewReader(all[name]))
			if err != nil {
				t.Fatal(err)
			}
			// The maps fixture of the same process was read just before.
			maps, err := ParseMaps(bytes.NewReader(fixture(t, "maps/"+name)))
			if err != nil {
				t.Fatal(err)
			}
			if len(smaps) != len(maps) {
				t.Fatalf("%d mappings in smaps, %d in maps", len(smaps), len(maps))
			}
			for i, s := range smaps {
				if s.VmFlags == nil {
					t.Errorf("mapping %d has no VmFlags", i)
				}
				if s.Read != s.HasFlag("rd") || s.Write != s.HasFlag("wr") || s.Exec != s.HasFlag("ex") || s.Shared != s.HasFlag("ms") {
					t.Errorf("mapping %d: perms disagree with VmFlags %q", i, s.VmFlags)
				}
				if s.Rss > s.Len() || s.Anonymous > s.Rss {
					t.Errorf("mapping %d: Rss %d, Anonymous %d, Len %d", i, s.Rss, s.Anonymous, s.Len())
				}
				s.VmFlags, s.Rss, s.Anonymous, s.Swap = nil, 0, 0, 0
				if !reflect.DeepEqual(s, maps[i]) {
					t.Errorf("mapping %d:\nsmaps %+v\nmaps  %+v", i, s, maps[i])
				}
			}
		})
	}
}

func TestParseSmapsCFixture(t *testing.T) {
	maps, err := ParseSmaps(bytes.NewReader(fixture(t, "smaps/c-fixture.txt")))
	if err != nil {
		t.Fatal(err)
	}
	check := func(start uint64, flags []string, rss, anon uint64) {
		t.Helper()
		m := byStart(t, maps, start)
		if !reflect.DeepEqual(m.VmFlags, flags) || m.Rss != rss || m.Anonymous != anon || m.Swap != 0 {
			t.Errorf("mapping %#x: VmFlags %q Rss %d Anonymous %d Swap %d; want %q %d %d 0",
				start, m.VmFlags, m.Rss, m.Anonymous, m.Swap, flags, rss, anon)
		}
	}
	check(0x5570a7e24000, []string{"rd", "wr", "mr", "mw", "me", "ac"}, 8192, 8192)             // [heap]
	check(0x7fc06baec000, []string{"rd", "wr", "mr", "mw", "me", "dc", "ac", "dd"}, 4096, 4096) // MADV_DONTFORK+DONTDUMP
	check(0x7fc06bbee000, []string{"rd", "wr", "mr", "mw", "me", "gd", "lo", "ac"}, 4096, 4096) // MAP_LOCKED|MAP_GROWSDOWN
	check(0x7fc06bbf2000, []string{"rd", "wr", "sh", "mr", "mw", "me", "ms"}, 0, 0)             // SysV shm
	check(0x7fc06c41d000, []string{"rd", "ex", "mr", "mw", "me"}, 1100*1024, 0)                 // libc text
	check(0x7fc06c5e4000, []string{"rd", "mr", "pf", "io", "de", "dd"}, 0, 0)                   // [vvar]
	m := byStart(t, maps, 0x7fc06bbee000)
	if !m.HasFlag("lo") || m.HasFlag("l") || m.HasFlag("") {
		t.Errorf("HasFlag wrong for %q", m.VmFlags)
	}
}

func TestParseSmapsEdgeCases(t *testing.T) {
	in := "1000-3000 rw-p 00000000 00:00 0 \n" +
		"Size:                  8 kB\n" +
		"Rss:                   8 kB\n" +
		"Anonymous:             4 kB\n" +
		"Swap:                 12 kB\n" +
		"THPeligible:           0\n" +
		"ProtectionKey:         0\n" +
		"VmFlags: \n" +
		"3000-4000 r--p 00000000 00:00 0                          [anon:x]\n" +
		"Rss: 0 kB\n"
	maps, err := ParseSmaps(strings.NewReader(in))
	if err != nil {
		t.Fatal(err)
	}
	want := []Mapping{
		{Start: 0x1000, End: 0x3000, Read: true, Write: true, VmFlags: []string{}, Rss: 8192, Anonymous: 4096, Swap: 12288},
		{Start: 0x3000, End: 0x4000, Read: true, Path: "[anon:x]"},
	}
	if !reflect.DeepEqual(maps, want) {
		t.Errorf("got  %+v\nwant %+v", maps, want)
	}
}

func TestParseSmapsMalformed(t *testing.T) {
	cases := append([]badCase{
		{"field first", "Rss: 4 kB\n", `smaps line 1: field "Rss" before the first mapping`, 1},
		{"no unit", goodMapsLine + "Rss: 4\n", `smaps line 2: bad Rss value "4": want "N kB"`, 2},
		{"wrong unit", goodMapsLine + "Swap: 4 MB\n", `smaps line 2: bad Swap value`, 2},
		{"bad number", goodMapsLine + "Anonymous: x kB\n", `smaps line 2: bad Anonymous "x"`, 2},
		{"overflow", goodMapsLine + "Rss: 18014398509481984 kB\n", "too large", 2},
		{"bad header later", goodMapsLine + "VmFlags: rd\nxyz\n", "smaps line 3: too few fields", 3},
	}, renameCases(badMaps, "maps", "smaps")...)
	checkBad(t, cases, func(r *bytes.Reader) error {
		_, err := ParseSmaps(r)
		return err
	})
}

// renameCases rewrites the expected errors of cases for another file kind.
func renameCases(cases []badCase, from, to string) []badCase {
	var out []badCase
	for _, c := range cases {
		if c.name == "smaps field" {
			continue // valid in smaps
		}
		c.name = to + " " + c.name
		c.want = strings.Replace(c.want, from+" line", to+" line", 1)
		out = append(out, c)
	}
	return out
}

func TestReadMapsSelf(t *testing.T) {
	maps, err := ReadMaps(os.Getpid())
	if err != nil {
		t.Fatal(err)
	}
	var stack, flags bool
	for _, m := range maps {
		stack = stack || m.Path == "[stack]"
		flags = flags || m.HasFlag("rd")
	}
	if !stack || !flags {
		t.Errorf("no [stack] (%v) or no rd flag (%v) in %d mappings", stack, flags, len(maps))
	}
}
