package testutil

import (
	"bufio"
	"fmt"
	"os"
	"path/filepath"
	"sort"
	"strconv"
	"strings"
)

// Stat is the part of /proc/PID[/task/TID]/stat and status that tests look at.
type Stat struct {
	State     byte // R, S, D, T (stopped), t (traced), Z, ...
	PPID      int
	TracerPID int
}

// Stopped reports whether the task is stopped by a signal or by a tracer.
func (s Stat) Stopped() bool { return s.State == 'T' || s.State == 't' }

// ReadStat reads the state of pid, or of thread tid of pid when tid > 0.
func ReadStat(pid, tid int) (Stat, error) {
	dir := fmt.Sprintf("/proc/%d", pid)
	if tid > 0 {
		dir = fmt.Sprintf("/proc/%d/task/%d", pid, tid)
	}
	var s Stat
	b, err := os.ReadFile(dir + "/stat")
	if err != nil {
		return s, err
	}
	st, ppid, err := parseStat(string(b))
	if err != nil {
		return s, fmt.Errorf("%s/stat: %w", dir, err)
	}
	s.State, s.PPID = st, ppid
	f, err := os.Open(dir + "/status")
	if err != nil {
		return s, err
	}
	defer f.Close()
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		if v, ok := strings.CutPrefix(sc.Text(), "TracerPid:"); ok {
			s.TracerPID, _ = strconv.Atoi(strings.TrimSpace(v))
		}
	}
	return s, sc.Err()
}

// parseStat returns the state and ppid fields of a stat line; comm, in
// parentheses, may itself hold spaces and parentheses.
func parseStat(line string) (byte, int, error) {
	i := strings.LastIndexByte(line, ')')
	if i < 0 {
		return 0, 0, fmt.Errorf("malformed stat %q", line)
	}
	f := strings.Fields(line[i+1:])
	if len(f) < 2 || len(f[0]) != 1 {
		return 0, 0, fmt.Errorf("malformed stat %q", line)
	}
	ppid, err := strconv.Atoi(f[1])
	return f[0][0], ppid, err
}

// Alive reports whether pid exists and is not a zombie.
func Alive(pid int) bool {
	s, err := ReadStat(pid, 0)
	return err == nil && s.State != 'Z' && s.State != 'X'
}

// Tasks returns the sorted thread ids of pid.
func Tasks(pid int) ([]int, error) {
	ents, err := os.ReadDir(fmt.Sprintf("/proc/%d/task", pid))
	if err != nil {
		return nil, err
	}
	var tids []int
	for _, e := range ents {
		if n, err := strconv.Atoi(e.Name()); err == nil {
			tids = append(tids, n)
		}
	}
	sort.Ints(tids)
	return tids, nil
}

// Children returns the pids whose parent is the calling process, zombies
// included.
func Children() []int {
	self := os.Getpid()
	paths, _ := filepath.Glob("/proc/[0-9]*/stat")
	var kids []int
	for _, p := range paths {
		b, err := os.ReadFile(p)
		if err != nil {
			continue
		}
		_, ppid, err := parseStat(string(b))
		if err != nil || ppid != self {
			continue
		}
		if pid, err := strconv.Atoi(filepath.Base(filepath.Dir(p))); err == nil {
			kids = append(kids, pid)
		}
	}
	sort.Ints(kids)
	return kids
}
