package procfs

import (
	"fmt"
	"io"
	"strings"
)

// Stat is /proc/PID/stat (see proc(5) for field numbers). Comm may contain
// spaces and ')': the comm is between the first '(' and the LAST ')'.
type Stat struct {
	PID        int    // field 1
	Comm       string // field 2, unescaped: may even contain '\n'
	State      byte   // field 3
	PPID       int    // field 4
	PGRP       int    // field 5
	Session    int    // field 6
	TTYNr      int    // field 7
	TPGID      int    // field 8
	Flags      uint64 // field 9, PF_* flags
	MinFlt     uint64 // field 10
	MajFlt     uint64 // field 12
	UTime      uint64 // field 14, clock ticks
	STime      uint64 // field 15, clock ticks
	Priority   int64  // field 18
	Nice       int64  // field 19
	NumThreads int64  // field 20
	StartTime  uint64 // field 22, clock ticks after boot
	VSize      uint64 // field 23, bytes
	RSS        int64  // field 24, pages

	StartCode, EndCode, StartStack uint64 // fields 26, 27, 28

	ExitSignal int    // field 38
	Processor  int    // field 39
	RTPriority uint32 // field 40
	Policy     uint32 // field 41, SCHED_*

	StartData, EndData, StartBrk       uint64 // fields 45, 46, 47
	ArgStart, ArgEnd, EnvStart, EnvEnd uint64 // 48..51
	ExitCode                           int    // 52
}

// statFields is the number of fields ParseStat requires (kernels since 3.5
// print 52; later fields are ignored).
const statFields = 52

// ParseStat parses /proc/PID/stat.
func ParseStat(r io.Reader) (*Stat, error) {
	data, err := io.ReadAll(io.LimitReader(r, maxLine+1))
	if err != nil {
		return nil, &ParseError{File: "stat", Line: 1, Err: err}
	}
	if len(data) > maxLine {
		return nil, &ParseError{File: "stat", Line: 1, Err: fmt.Errorf("longer than %d bytes", maxLine)}
	}
	s := strings.TrimSuffix(string(data), "\n")
	open := strings.IndexByte(s, '(')
	closing := strings.LastIndexByte(s, ')')
	if open < 0 || closing < open {
		return nil, &ParseError{File: "stat", Line: 1, Err: fmt.Errorf("no (comm) in %q", truncate(s))}
	}
	st := &Stat{Comm: s[open+1 : closing]}
	// Errors after the comm are reported on the line the kernel's record
	// is on, counting newlines inside the comm.
	line := 1 + strings.Count(s[:closing], "\n")
	fail := func(field int, err error) (*Stat, error) {
		return nil, &ParseError{File: "stat", Line: line, Err: fmt.Errorf("field %d: %w", field, err)}
	}
	pid := strings.TrimSuffix(s[:open], " ")
	if st.PID, err = atoi("pid", pid); err != nil {
		return nil, &ParseError{File: "stat", Line: 1, Err: fmt.Errorf("field 1: %w", err)}
	}
	rest := s[closing+1:]
	if !strings.HasPrefix(rest, " ") {
		return fail(3, fmt.Errorf("no space after comm"))
	}
	f := strings.Fields(rest)
	if n := len(f) + 2; n < statFields {
		return fail(n+1, fmt.Errorf("missing: have %d fields, want %d", n, statFields))
	}
	// field returns field number n (1-based, as in proc(5)).
	field := func(n int) string { return f[n-3] }

	if s := field(3); len(s) != 1 {
		return fail(3, fmt.Errorf("bad state %q", s))
	}
	st.State = field(3)[0]

	ints := []struct {
		n   int
		dst *int
	}{
		{4, &st.PPID}, {5, &st.PGRP}, {6, &st.Session}, {7, &st.TTYNr}, {8, &st.TPGID},
		{38, &st.ExitSignal}, {39, &st.Processor}, {52, &st.ExitCode},
	}
	for _, x := range ints {
		if *x.dst, err = atoi("value", field(x.n)); err != nil {
			return fail(x.n, err)
		}
	}
	int64s := []struct {
		n   int
		dst *int64
	}{
		{18, &st.Priority}, {19, &st.Nice}, {20, &st.NumThreads}, {24, &st.RSS},
	}
	for _, x := range int64s {
		if *x.dst, err = parseInt("value", field(x.n), 64); err != nil {
			return fail(x.n, err)
		}
	}
	uints := []struct {
		n   int
		dst *uint64
	}{
		{9, &st.Flags}, {10, &st.MinFlt}, {12, &st.MajFlt}, {14, &st.UTime}, {15, &st.STime},
		{22, &st.StartTime}, {23, &st.VSize},
		{26, &st.StartCode}, {27, &st.EndCode}, {28, &st.StartStack},
		{45, &st.StartData}, {46, &st.EndData}, {47, &st.StartBrk},
		{48, &st.ArgStart}, {49, &st.ArgEnd}, {50, &st.EnvStart}, {51, &st.EnvEnd},
	}
	for _, x := range uints {
		if *x.dst, err = parseUint("value", field(x.n), 10, 64); err != nil {
			return fail(x.n, err)
		}
	}
	uint32s := []struct {
		n   int
		dst *uint32
	}{{40, &st.RTPriority}, {41, &st.Policy}}
	for _, x := range uint32s {
		v, err := parseUint("value", field(x.n), 10, 32)
		if err != nil {
			return fail(x.n, err)
		}
		*x.dst = uint32(v)
	}
	return st, nil
}

// ReadStat reads /proc/PID/stat.
func ReadStat(pid int) (*Stat, error) {
	return readProc(pidPath(pid, "stat"), ParseStat)
}

// ReadTaskStat reads /proc/PID/task/TID/stat.
func ReadTaskStat(pid, tid int) (*Stat, error) {
	return readProc(taskPath(pid, tid, "stat"), ParseStat)
}

// truncate shortens s for an error message.
func truncate(s string) string {
	const n = 64
	if len(s) <= n {
		return s
	}
	return s[:n] + "..."
}
