package procfs

import (
	"fmt"
	"io"
	"math"
	"strings"
)

// Mapping is one line of /proc/PID/maps, plus VmFlags from smaps when available.
type Mapping struct {
	Start, End                uint64
	Read, Write, Exec, Shared bool // from the perms column "rwxp"/"rw-s"
	Offset                    uint64
	Major, Minor              uint32 // device
	Inode                     uint64
	// Path is the pathname column: " (deleted)" suffix removed; "" for
	// anonymous; "[heap]", "[stack]", "[vdso]", "[vvar]", "[vvar_vclock]",
	// "[vsyscall]", "[anon:name]" kept as is. The kernel escapes a newline
	// in a file name as `\012` and nothing else; Path keeps that escape, so
	// it is ambiguous and only the map_files link names the file reliably.
	Path    string
	Deleted bool     // the pathname had the " (deleted)" suffix (a file really named "x (deleted)" looks the same)
	VmFlags []string // two-letter flags from smaps ("rd","wr","ex","mr","mw","me","ms","gd","pf","io","dc","dd","wf","hg","nh","mg","lo","sd","ss","um","uw", ...); nil when parsed from maps

	Rss, Anonymous, Swap uint64 // bytes, from smaps; 0 from maps
}

// Len is the size of the mapping in bytes.
func (m Mapping) Len() uint64 {
	if m.End < m.Start {
		return 0
	}
	return m.End - m.Start
}

// HasFlag tells whether f is one of m.VmFlags.
func (m Mapping) HasFlag(f string) bool {
	for _, v := range m.VmFlags {
		if v == f {
			return true
		}
	}
	return false
}

const deletedSuffix = " (deleted)"

// ParseMaps parses /proc/PID/maps. Empty input (a kernel thread) gives no
// mappings and no error.
func ParseMaps(r io.Reader) ([]Mapping, error) {
	lr := newLineReader(r, "maps")
	var maps []Mapping
	for lr.next() {
		m, err := parseMapsLine(lr.text())
		if err != nil {
			return nil, lr.errorf("%w", err)
		}
		maps = append(maps, m)
	}
	if err := lr.err(); err != nil {
		return nil, err
	}
	return maps, nil
}

// ParseSmaps parses /proc/PID/smaps: every maps line is followed by
// "Key: value" lines, of which Rss, Anonymous, Swap and VmFlags are kept.
func ParseSmaps(r io.Reader) ([]Mapping, error) {
	lr := newLineReader(r, "smaps")
	var maps []Mapping
	for lr.next() {
		line := lr.text()
		key, val, ok := smapsField(line)
		if !ok {
			m, err := parseMapsLine(line)
			if err != nil {
				return nil, lr.errorf("%w", err)
			}
			maps = append(maps, m)
			continue
		}
		if len(maps) == 0 {
			return nil, lr.errorf("field %q before the first mapping", key)
		}
		m := &maps[len(maps)-1]
		var dst *uint64
		switch key {
		case "VmFlags":
			m.VmFlags = strings.Fields(val)
			if m.VmFlags == nil {
				m.VmFlags = []string{}
			}
			continue
		case "Rss":
			dst = &m.Rss
		case "Anonymous":
			dst = &m.Anonymous
		case "Swap":
			dst = &m.Swap
		default:
			continue
		}
		v, err := parseKB(key, val)
		if err != nil {
			return nil, lr.errorf("%w", err)
		}
		*dst = v
	}
	if err := lr.err(); err != nil {
		return nil, err
	}
	return maps, nil
}

// ReadMaps reads /proc/PID/smaps, so that VmFlags, Rss, Anonymous and Swap are filled.
func ReadMaps(pid int) ([]Mapping, error) {
	return readProc(pidPath(pid, "smaps"), ParseSmaps)
}

// smapsField splits a "Key: value" line of smaps. A maps line never
// qualifies: its first word is "start-end".
func smapsField(line string) (key, val string, ok bool) {
	word, rest, _ := strings.Cut(line, " ")
	key, ok = strings.CutSuffix(word, ":")
	if !ok || key == "" {
		return "", "", false
	}
	return key, rest, true
}

// parseKB parses "  1234 kB" into bytes.
func parseKB(key, val string) (uint64, error) {
	f := strings.Fields(val)
	if len(f) != 2 || f[1] != "kB" {
		return 0, fmt.Errorf("bad %s value %q: want \"N kB\"", key, val)
	}
	v, err := parseUint(key, f[0], 10, 64)
	if err != nil {
		return 0, err
	}
	if v > math.MaxUint64/1024 {
		return 0, fmt.Errorf("bad %s value %q: too large", key, val)
	}
	return v * 1024, nil
}

// cutWord returns the text up to the next space, skipping leading spaces,
// and the rest after that space.
func cutWord(s string) (word, rest string) {
	s = strings.TrimLeft(s, " ")
	word, rest, _ = strings.Cut(s, " ")
	return word, rest
}

// parseMapsLine parses
//
//	55c763d76000-55c763d78000 r--p 00000000 fe:00 247026                     /usr/bin/cat
func parseMapsLine(line string) (Mapping, error) {
	var m Mapping
	addr, rest := cutWord(line)
	perms, rest := cutWord(rest)
	off, rest := cutWord(rest)
	dev, rest := cutWord(rest)
	ino, rest := cutWord(rest)
	if ino == "" {
		return m, fmt.Errorf("too few fields in %q", line)
	}

	start, end, ok := strings.Cut(addr, "-")
	if !ok {
		return m, fmt.Errorf("bad address range %q", addr)
	}
	var err error
	if m.Start, err = parseUint("start address", start, 16, 64); err != nil {
		return m, err
	}
	if m.End, err = parseUint("end address", end, 16, 64); err != nil {
		return m, err
	}
	if m.End < m.Start {
		return m, fmt.Errorf("bad address range %q: end below start", addr)
	}

	if len(perms) != 4 ||
		!oneOf(perms[0], 'r', '-') || !oneOf(perms[1], 'w', '-') ||
		!oneOf(perms[2], 'x', '-') || !oneOf(perms[3], 's', 'p') {
		return m, fmt.Errorf("bad permissions %q", perms)
	}
	m.Read, m.Write, m.Exec, m.Shared = perms[0] == 'r', perms[1] == 'w', perms[2] == 'x', perms[3] == 's'

	if m.Offset, err = parseUint("offset", off, 16, 64); err != nil {
		return m, err
	}

	major, minor, ok := strings.Cut(dev, ":")
	if !ok {
		return m, fmt.Errorf("bad device %q", dev)
	}
	v, err := parseUint("device major", major, 16, 32)
	if err != nil {
		return m, err
	}
	m.Major = uint32(v)
	if v, err = parseUint("device minor", minor, 16, 32); err != nil {
		return m, err
	}
	m.Minor = uint32(v)

	if m.Inode, err = parseUint("inode", ino, 10, 64); err != nil {
		return m, err
	}

	// The kernel pads the pathname to a column with spaces; a pathname
	// itself never starts with a space.
	m.Path = strings.TrimLeft(rest, " ")
	m.Path, m.Deleted = strings.CutSuffix(m.Path, deletedSuffix)
	return m, nil
}

func oneOf(c, a, b byte) bool { return c == a || c == b }
