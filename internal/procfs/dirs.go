package procfs

import (
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"slices"
	"strconv"
	"strings"

	"golang.org/x/sys/unix"
)

// Tasks lists the thread ids of /proc/PID/task in ascending order.
func Tasks(pid int) ([]int, error) {
	return listNumbers(pidPath(pid, "task"))
}

// FDs lists the open descriptor numbers of /proc/PID/fd in ascending order.
// For the calling process it includes the descriptor used to read the
// directory.
func FDs(pid int) ([]int, error) {
	return listNumbers(pidPath(pid, "fd"))
}

// listNumbers returns the numeric names in dir, sorted; others are skipped.
func listNumbers(dir string) ([]int, error) {
	f, err := os.Open(dir)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	names, err := f.Readdirnames(-1)
	if err != nil {
		return nil, err
	}
	out := make([]int, 0, len(names))
	for _, name := range names {
		n, err := strconv.Atoi(name)
		if err != nil || n < 0 {
			continue
		}
		out = append(out, n)
	}
	slices.Sort(out)
	return out, nil
}

// ParseChildren parses /proc/PID/task/TID/children: pids separated by
// spaces (the kernel ends the list with a space, and prints nothing when
// there are no children). The order is kept.
func ParseChildren(r io.Reader) ([]int, error) {
	data, err := io.ReadAll(io.LimitReader(r, maxLine+1))
	if err != nil {
		return nil, &ParseError{File: "children", Line: 1, Err: err}
	}
	if len(data) > maxLine {
		return nil, &ParseError{File: "children", Line: 1, Err: fmt.Errorf("longer than %d bytes", maxLine)}
	}
	var out []int
	line := 1
	for s := string(data); s != ""; {
		s = strings.TrimLeft(s, " \t")
		if strings.HasPrefix(s, "\n") {
			line++
			s = s[1:]
			continue
		}
		var word string
		i := strings.IndexAny(s, " \t\n")
		if i < 0 {
			word, s = s, ""
		} else {
			word, s = s[:i], s[i:]
		}
		if word == "" {
			continue
		}
		n, err := atoi("pid", word)
		if err == nil && n <= 0 {
			err = fmt.Errorf("bad pid %q", word)
		}
		if err != nil {
			return nil, &ParseError{File: "children", Line: line, Err: err}
		}
		out = append(out, n)
	}
	return out, nil
}

// Children reads /proc/PID/task/TID/children for every task of pid, sorted,
// deduplicated. Tasks that exit meanwhile are skipped. It fails with
// fs.ErrNotExist when the kernel lacks CONFIG_PROC_CHILDREN.
func Children(pid int) ([]int, error) {
	tids, err := Tasks(pid)
	if err != nil {
		return nil, err
	}
	var all []int
	for _, tid := range tids {
		path := taskPath(pid, tid, "children")
		kids, err := readProc(path, ParseChildren)
		if err != nil {
			if errors.Is(err, unix.ESRCH) {
				continue // the task exited
			}
			if errors.Is(err, fs.ErrNotExist) {
				if _, serr := os.Stat(taskPath(pid, tid, "")); errors.Is(serr, fs.ErrNotExist) {
					continue // the task exited
				}
			}
			return nil, err
		}
		all = append(all, kids...)
	}
	slices.Sort(all)
	return slices.Compact(all), nil
}
