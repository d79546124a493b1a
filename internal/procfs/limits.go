package procfs

import (
	"fmt"
	"io"
	"strconv"
	"strings"

	"golang.org/x/sys/unix"
)

// Limit is one row of /proc/PID/limits. Unlimited is ^uint64(0) (RLIM_INFINITY).
type Limit struct {
	// Resource is the unix.RLIMIT_* number, found from Name; for a name
	// this package does not know it is the row number, which is what the
	// kernel prints rows in the order of.
	Resource   int
	Name       string // "Max open files"
	Soft, Hard uint64
	Unit       string // "seconds", "bytes", "files", "us", ...; "" for the nice and realtime priorities
}

// Unlimited is the Soft or Hard value of a limit printed as "unlimited".
const Unlimited = ^uint64(0)

var limitNames = map[string]int{
	"Max cpu time":          unix.RLIMIT_CPU,
	"Max file size":         unix.RLIMIT_FSIZE,
	"Max data size":         unix.RLIMIT_DATA,
	"Max stack size":        unix.RLIMIT_STACK,
	"Max core file size":    unix.RLIMIT_CORE,
	"Max resident set":      unix.RLIMIT_RSS,
	"Max processes":         unix.RLIMIT_NPROC,
	"Max open files":        unix.RLIMIT_NOFILE,
	"Max locked memory":     unix.RLIMIT_MEMLOCK,
	"Max address space":     unix.RLIMIT_AS,
	"Max file locks":        unix.RLIMIT_LOCKS,
	"Max pending signals":   unix.RLIMIT_SIGPENDING,
	"Max msgqueue size":     unix.RLIMIT_MSGQUEUE,
	"Max nice priority":     unix.RLIMIT_NICE,
	"Max realtime priority": unix.RLIMIT_RTPRIO,
	"Max realtime timeout":  unix.RLIMIT_RTTIME,
}

// ParseLimits parses /proc/PID/limits:
//
//	Limit                     Soft Limit           Hard Limit           Units
//	Max cpu time              unlimited            unlimited            seconds
//	Max nice priority         0                    0
//
// The header line is optional.
func ParseLimits(r io.Reader) ([]Limit, error) {
	lr := newLineReader(r, "limits")
	var out []Limit
	for lr.next() {
		line := lr.text()
		if lr.n == 1 && strings.HasPrefix(line, "Limit ") {
			continue
		}
		f := strings.Fields(line)
		var l Limit
		if n := len(f); n > 0 && !isLimitValue(f[n-1]) {
			l.Unit = f[n-1]
			f = f[:n-1]
		}
		if len(f) < 3 {
			return nil, lr.errorf("want name, soft limit, hard limit and unit in %q", line)
		}
		var err error
		if l.Soft, err = parseLimitValue("soft limit", f[len(f)-2]); err != nil {
			return nil, lr.errorf("%w", err)
		}
		if l.Hard, err = parseLimitValue("hard limit", f[len(f)-1]); err != nil {
			return nil, lr.errorf("%w", err)
		}
		l.Name = strings.Join(f[:len(f)-2], " ")
		var ok bool
		if l.Resource, ok = limitNames[l.Name]; !ok {
			l.Resource = len(out)
		}
		out = append(out, l)
	}
	if err := lr.err(); err != nil {
		return nil, err
	}
	return out, nil
}

// ReadLimits reads /proc/PID/limits.
func ReadLimits(pid int) ([]Limit, error) {
	return readProc(pidPath(pid, "limits"), ParseLimits)
}

func isLimitValue(s string) bool {
	if s == "unlimited" {
		return true
	}
	for i := 0; i < len(s); i++ {
		if s[i] < '0' || s[i] > '9' {
			return false
		}
	}
	return s != ""
}

func parseLimitValue(what, s string) (uint64, error) {
	if s == "unlimited" {
		return Unlimited, nil
	}
	if !isLimitValue(s) {
		return 0, fmt.Errorf("bad %s %q", what, s)
	}
	v, err := strconv.ParseUint(s, 10, 64)
	if err != nil {
		return 0, numErr(what, s, err)
	}
	return v, nil
}
