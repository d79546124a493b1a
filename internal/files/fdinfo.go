package files

import (
	"fmt"
	"strconv"
	"strings"

	"golang.org/x/sys/unix"
)

// ParseError is an fdinfo line this package cannot understand.
type ParseError struct {
	Line string
	Err  error
}

func (e *ParseError) Error() string { return fmt.Sprintf("fdinfo line %q: %v", e.Line, e.Err) }
func (e *ParseError) Unwrap() error { return e.Err }

// fields splits a line such as
//
//	"tfd:        4 events: 80000019 data:                4  pos:0 ino:3a1ad sdev:f"
//	"inotify wd:2 ino:13 sdev:fe00000 mask:80000002 ..."
//
// into key/value pairs: a token "key:" takes the next token as its value, a
// token "key:value" is split, other tokens are ignored.
func fields(line string) map[string]string {
	m := map[string]string{}
	tok := strings.Fields(line)
	for i := 0; i < len(tok); i++ {
		k, v, ok := strings.Cut(tok[i], ":")
		if !ok {
			continue
		}
		if v == "" && i+1 < len(tok) && !strings.Contains(tok[i+1], ":") {
			v = tok[i+1]
			i++
		}
		if _, dup := m[k]; !dup {
			m[k] = v
		}
	}
	return m
}

// lineValue returns the value of the first "key:" line.
func lineValue(lines []string, key string) (string, bool) {
	for _, l := range lines {
		if k, v, ok := strings.Cut(l, ":"); ok && k == key {
			return strings.TrimSpace(v), true
		}
	}
	return "", false
}

func parseNum(line, key, v string, base, bits int) (uint64, error) {
	n, err := strconv.ParseUint(v, base, bits)
	if err != nil {
		return 0, &ParseError{Line: line, Err: fmt.Errorf("%s: %w", key, err)}
	}
	return n, nil
}

func needNum(lines []string, key string, base, bits int) (uint64, error) {
	v, ok := lineValue(lines, key)
	if !ok {
		return 0, &ParseError{Line: strings.Join(lines, "\\n"), Err: fmt.Errorf("no %s line", key)}
	}
	return parseNum(key+": "+v, key, v, base, bits)
}

// kdev converts a kernel-internal dev_t (major<<20 | minor), as fdinfo
// prints it, to the user-space encoding of stat(2).
func kdev(k uint64) uint64 { return unix.Mkdev(uint32(k>>20), uint32(k&0xfffff)) }

// parseEventfd parses the fdinfo lines of an eventfd.
func parseEventfd(lines []string) (*Eventfd, error) {
	cnt, err := needNum(lines, "eventfd-count", 16, 64)
	if err != nil {
		return nil, err
	}
	e := &Eventfd{Count: cnt}
	if v, ok := lineValue(lines, "eventfd-id"); ok {
		id, err := parseNum(v, "eventfd-id", v, 10, 31)
		if err != nil {
			return nil, err
		}
		e.ID = int(id)
	}
	if v, ok := lineValue(lines, "eventfd-semaphore"); ok {
		s, err := parseNum(v, "eventfd-semaphore", v, 10, 1)
		if err != nil {
			return nil, err
		}
		e.Semaphore = s == 1
	}
	return e, nil
}

// parseTimespecPair parses "(sec, nsec)".
func parseTimespecPair(line, key, v string) (int64, error) {
	v = strings.TrimSpace(v)
	if !strings.HasPrefix(v, "(") || !strings.HasSuffix(v, ")") {
		return 0, &ParseError{Line: line, Err: fmt.Errorf("%s: not (sec, nsec)", key)}
	}
	s, ns, ok := strings.Cut(v[1:len(v)-1], ",")
	if !ok {
		return 0, &ParseError{Line: line, Err: fmt.Errorf("%s: not (sec, nsec)", key)}
	}
	sec, err := parseNum(line, key, strings.TrimSpace(s), 10, 33)
	if err != nil {
		return 0, err
	}
	nsec, err := parseNum(line, key, strings.TrimSpace(ns), 10, 30)
	if err != nil {
		return 0, err
	}
	return int64(sec)*1e9 + int64(nsec), nil
}

// parseTimerfd parses the fdinfo lines of a timerfd. The times are the
// kernel's; Inspect takes the remaining time from timerfd_gettime instead.
func parseTimerfd(lines []string) (*Timerfd, error) {
	clock, err := needNum(lines, "clockid", 10, 31)
	if err != nil {
		return nil, err
	}
	ticks, err := needNum(lines, "ticks", 10, 64)
	if err != nil {
		return nil, err
	}
	fl, err := needNum(lines, "settime flags", 8, 31)
	if err != nil {
		return nil, err
	}
	t := &Timerfd{Clock: int(clock), Ticks: ticks, SettimeFlags: int(fl)}
	if v, ok := lineValue(lines, "it_value"); ok {
		if t.ValueNsec, err = parseTimespecPair(v, "it_value", v); err != nil {
			return nil, err
		}
	}
	if v, ok := lineValue(lines, "it_interval"); ok {
		if t.IntervalNsec, err = parseTimespecPair(v, "it_interval", v); err != nil {
			return nil, err
		}
	}
	return t, nil
}

// parseSignalfd parses the fdinfo lines of a signalfd.
func parseSignalfd(lines []string) (*Signalfd, error) {
	m, err := needNum(lines, "sigmask", 16, 64)
	if err != nil {
		return nil, err
	}
	return &Signalfd{Mask: m}, nil
}

// parsePidfd parses the fdinfo lines of a pidfd: -1 when the process is gone.
func parsePidfd(lines []string) (*Pidfd, error) {
	v, ok := lineValue(lines, "Pid")
	if !ok {
		return nil, &ParseError{Line: strings.Join(lines, "\\n"), Err: fmt.Errorf("no Pid line")}
	}
	n, err := strconv.ParseInt(v, 10, 32)
	if err != nil || n < -1 {
		return nil, &ParseError{Line: v, Err: fmt.Errorf("bad Pid %q", v)}
	}
	return &Pidfd{Pid: int(n)}, nil
}

type numField struct {
	key  string
	base int
	bits int
	dst  *uint64
}

func parseFields(line string, m map[string]string, fs []numField) error {
	for _, f := range fs {
		v, ok := m[f.key]
		if !ok {
			return &ParseError{Line: line, Err: fmt.Errorf("no %s", f.key)}
		}
		n, err := parseNum(line, f.key, v, f.base, f.bits)
		if err != nil {
			return err
		}
		*f.dst = n
	}
	return nil
}

// parseEpoll parses the tfd lines of an epoll instance.
func parseEpoll(lines []string) (*Epoll, error) {
	e := &Epoll{Targets: []EpollTarget{}}
	for _, l := range lines {
		if !strings.HasPrefix(l, "tfd:") {
			continue
		}
		var fd, ev, data, pos, ino, dev uint64
		m := fields(l)
		err := parseFields(l, m, []numField{{"tfd", 10, 31, &fd}, {"events", 16, 32, &ev}, {"data", 16, 64, &data},
			{"pos", 10, 63, &pos}, {"ino", 16, 64, &ino}, {"sdev", 16, 32, &dev}})
		if err != nil {
			return nil, err
		}
		e.Targets = append(e.Targets, EpollTarget{FD: int(fd), Events: uint32(ev), Data: data, Pos: int64(pos), Ino: ino, Dev: kdev(dev)})
	}
	return e, nil
}

// parseInotify parses the watch lines of an inotify instance.
func parseInotify(lines []string) (*Inotify, error) {
	in := &Inotify{Watches: []InotifyWatch{}}
	for _, l := range lines {
		if !strings.HasPrefix(l, "inotify ") {
			continue
		}
		var wd, ino, dev, mask, ign, hbytes, htype uint64
		m := fields(l)
		err := parseFields(l, m, []numField{{"wd", 16, 31, &wd}, {"ino", 16, 64, &ino}, {"sdev", 16, 32, &dev},
			{"mask", 16, 32, &mask}, {"ignored_mask", 16, 32, &ign}})
		if err != nil {
			return nil, err
		}
		w := InotifyWatch{WD: int(wd), Ino: ino, Dev: kdev(dev), Mask: uint32(mask), IgnoredMask: uint32(ign)}
		// Without CONFIG_EXPORTFS the handle fields are missing.
		if _, ok := m["fhandle-bytes"]; ok {
			if err := parseFields(l, m, []numField{{"fhandle-bytes", 16, 8, &hbytes}, {"fhandle-type", 16, 31, &htype}}); err != nil {
				return nil, err
			}
			h := m["f_handle"]
			if uint64(len(h)) != 2*hbytes {
				return nil, &ParseError{Line: l, Err: fmt.Errorf("f_handle has %d hex digits, want %d", len(h), 2*hbytes)}
			}
			w.Handle = make([]byte, hbytes)
			for i := range w.Handle {
				b, err := strconv.ParseUint(h[2*i:2*i+2], 16, 8)
				if err != nil {
					return nil, &ParseError{Line: l, Err: fmt.Errorf("f_handle: %w", err)}
				}
				w.Handle[i] = byte(b)
			}
			w.HandleType = int32(htype)
		}
		in.Watches = append(in.Watches, w)
	}
	return in, nil
}

// parseScmFds returns the number of descriptors in flight in a unix
// socket's receive queue (0 when the kernel does not say).
func parseScmFds(lines []string) (int, error) {
	v, ok := lineValue(lines, "scm_fds")
	if !ok {
		return 0, nil
	}
	n, err := parseNum(v, "scm_fds", v, 10, 31)
	return int(n), err
}
