package e2e

import (
	"encoding/json"
	"testing"
)

// report is what a victim writes on SIGUSR1 (see test/victims/victim.c and
// counter.py). Optional parts are pointers: nil means the victim did not
// report them, which a check that needs them treats as a failure.
type report struct {
	Seq      int     `json:"seq"`
	PID      int     `json:"pid"`
	PPID     int     `json:"ppid"`
	Comm     string  `json:"comm"`
	Umask    int     `json:"umask"`
	Cwd      string  `json:"cwd"`
	TIDs     []int   `json:"tids"`
	Counters []int64 `json:"counters"`
	SigUSR1  int64   `json:"sigusr1"`
	Rseq     string  `json:"rseq"`

	// --simd
	SIMD   *string `json:"simd"`
	SIMDOK *bool   `json:"simd_ok"`
	// --mem, and counter.py
	MemChecksum *string `json:"mem_checksum"`
	MemOK       *bool   `json:"mem_ok"`
	ZeroOK      *bool   `json:"zero_ok"`
	// --file
	Offsets          map[string]int64 `json:"offsets"`
	Flags            map[string]int   `json:"flags"`
	AppendSize       *int64           `json:"append_size"`
	DeletedContentOK *bool            `json:"deleted_content_ok"`
	OPathOK          *bool            `json:"opath_ok"`
	// --sleeper
	SleeperTIDs    []int  `json:"sleeper_tids"`
	SleeperWakeups *int64 `json:"sleeper_wakeups"`
	SleeperEarly   *int64 `json:"sleeper_early"`
	CondOK         *bool  `json:"cond_ok"`
	// --timers
	SigALRM          *int64 `json:"sigalrm"`
	SigRT            *int64 `json:"sigrt"`
	ItimerIntervalUS *int64 `json:"itimer_interval_us"`
	PosixTimerOK     *bool  `json:"posix_timer_ok"`
	// --signals
	SigaltstackOK *bool `json:"sigaltstack_ok"`
	SigactionOK   *bool `json:"sigaction_ok"`
	BlockedOK     *bool `json:"blocked_ok"`
	PendingUSR2   *bool `json:"pending_usr2"`
	USR2Value     *int  `json:"usr2_value"`
	// counter.py
	Counter *int64 `json:"counter"`
}

func parseReport(t testing.TB, b []byte) report {
	t.Helper()
	var r report
	if err := json.Unmarshal(b, &r); err != nil {
		t.Fatalf("victim report is not valid JSON: %v\n%s", err, b)
	}
	return r
}

// isTrue fails the test unless the optional flag is present and true.
func isTrue(t testing.TB, what string, b *bool) {
	t.Helper()
	switch {
	case b == nil:
		t.Errorf("%s: missing from the report", what)
	case !*b:
		t.Errorf("%s: false", what)
	}
}

// num returns an optional number, failing the test when it is missing.
func num(t testing.TB, what string, n *int64) int64 {
	t.Helper()
	if n == nil {
		t.Errorf("%s: missing from the report", what)
		return 0
	}
	return *n
}
