package procfs

import (
	"fmt"
	"io"
	"strings"
)

// Status is /proc/PID/status (or /proc/PID/task/TID/status). Only the lines
// below are parsed; others are ignored.
type Status struct {
	// Name is the comm. The kernel escapes '\n' and '\\' in it; Name is
	// unescaped, so it equals Stat.Comm.
	Name                                   string
	Umask                                  uint32 // from octal; only meaningful when HasUmask
	HasUmask                               bool   // a zombie has no Umask line
	State                                  byte   // 'R','S','D','T','t','Z',...
	Tgid, Pid, PPid, TracerPid             int
	Uid, Gid                               [4]uint32 // real, effective, saved, fs
	Groups                                 []uint32
	NStgid, NSpid, NSpgid, NSsid           []int // outermost first, as the kernel prints
	Threads                                int
	ShdPnd, SigPnd, SigBlk, SigIgn, SigCgt uint64
	CapInh, CapPrm, CapEff, CapBnd, CapAmb uint64
	NoNewPrivs                             bool
	Seccomp                                int
}

// ParseStatus parses /proc/PID/status. The Name, State and Pid lines are
// required.
func ParseStatus(r io.Reader) (*Status, error) {
	lr := newLineReader(r, "status")
	st := &Status{}
	var seen struct{ name, state, pid bool }
	for lr.next() {
		line := lr.text()
		key, val, ok := strings.Cut(line, ":")
		if !ok {
			return nil, lr.errorf("no ':' in %q", line)
		}
		if key == "Name" {
			// The comm may start or end with blanks: drop only the tab.
			st.Name = unescapeComm(strings.TrimPrefix(val, "\t"))
			seen.name = true
			continue
		}
		val = strings.TrimSpace(val)
		var err error
		switch key {
		case "Umask":
			var v uint64
			v, err = parseUint(key, val, 8, 32)
			st.Umask, st.HasUmask = uint32(v), true
		case "State":
			if val == "" {
				err = fmt.Errorf("empty State")
			} else {
				st.State = val[0]
				seen.state = true
			}
		case "Tgid":
			st.Tgid, err = atoi(key, val)
		case "Pid":
			st.Pid, err = atoi(key, val)
			seen.pid = true
		case "PPid":
			st.PPid, err = atoi(key, val)
		case "TracerPid":
			st.TracerPid, err = atoi(key, val)
		case "Uid":
			err = parseIDs(key, val, &st.Uid)
		case "Gid":
			err = parseIDs(key, val, &st.Gid)
		case "Groups":
			st.Groups, err = parseUint32s(key, val)
		case "NStgid":
			st.NStgid, err = parseInts(key, val)
		case "NSpid":
			st.NSpid, err = parseInts(key, val)
		case "NSpgid":
			st.NSpgid, err = parseInts(key, val)
		case "NSsid":
			st.NSsid, err = parseInts(key, val)
		case "Threads":
			st.Threads, err = atoi(key, val)
		case "ShdPnd":
			st.ShdPnd, err = parseUint(key, val, 16, 64)
		case "SigPnd":
			st.SigPnd, err = parseUint(key, val, 16, 64)
		case "SigBlk":
			st.SigBlk, err = parseUint(key, val, 16, 64)
		case "SigIgn":
			st.SigIgn, err = parseUint(key, val, 16, 64)
		case "SigCgt":
			st.SigCgt, err = parseUint(key, val, 16, 64)
		case "CapInh":
			st.CapInh, err = parseUint(key, val, 16, 64)
		case "CapPrm":
			st.CapPrm, err = parseUint(key, val, 16, 64)
		case "CapEff":
			st.CapEff, err = parseUint(key, val, 16, 64)
		case "CapBnd":
			st.CapBnd, err = parseUint(key, val, 16, 64)
		case "CapAmb":
			st.CapAmb, err = parseUint(key, val, 16, 64)
		case "NoNewPrivs":
			switch val {
			case "0":
				st.NoNewPrivs = false
			case "1":
				st.NoNewPrivs = true
			default:
				err = fmt.Errorf("bad NoNewPrivs %q", val)
			}
		case "Seccomp":
			st.Seccomp, err = atoi(key, val)
		}
		if err != nil {
			return nil, lr.errorf("%w", err)
		}
	}
	if err := lr.err(); err != nil {
		return nil, err
	}
	for _, f := range []struct {
		ok   bool
		name string
	}{{seen.name, "Name"}, {seen.state, "State"}, {seen.pid, "Pid"}} {
		if !f.ok {
			return nil, &ParseError{File: "status", Err: fmt.Errorf("no %s line", f.name)}
		}
	}
	return st, nil
}

// ReadStatus reads /proc/PID/status.
func ReadStatus(pid int) (*Status, error) {
	return readProc(pidPath(pid, "status"), ParseStatus)
}

// ReadTaskStatus reads /proc/PID/task/TID/status.
func ReadTaskStatus(pid, tid int) (*Status, error) {
	return readProc(taskPath(pid, tid, "status"), ParseStatus)
}

// unescapeComm undoes the escaping of the Name line: the kernel writes '\n'
// as `\n` and '\\' as `\\`. Other backslash sequences are kept as they are.
func unescapeComm(s string) string {
	if !strings.Contains(s, `\`) {
		return s
	}
	var b strings.Builder
	for i := 0; i < len(s); i++ {
		if s[i] == '\\' && i+1 < len(s) {
			switch s[i+1] {
			case 'n':
				b.WriteByte('\n')
				i++
				continue
			case '\\':
				b.WriteByte('\\')
				i++
				continue
			}
		}
		b.WriteByte(s[i])
	}
	return b.String()
}

func parseIDs(key, val string, dst *[4]uint32) error {
	f := strings.Fields(val)
	if len(f) != 4 {
		return fmt.Errorf("bad %s %q: want 4 ids", key, val)
	}
	for i, s := range f {
		v, err := parseUint(key, s, 10, 32)
		if err != nil {
			return err
		}
		dst[i] = uint32(v)
	}
	return nil
}

func parseUint32s(key, val string) ([]uint32, error) {
	var out []uint32
	for _, s := range strings.Fields(val) {
		v, err := parseUint(key, s, 10, 32)
		if err != nil {
			return nil, err
		}
		out = append(out, uint32(v))
	}
	return out, nil
}

func parseInts(key, val string) ([]int, error) {
	var out []int
	for _, s := range strings.Fields(val) {
		v, err := atoi(key, s)
		if err != nil {
			return nil, err
		}
		out = append(out, v)
	}
	return out, nil
}
