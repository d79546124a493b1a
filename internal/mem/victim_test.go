package mem

import (
	"bufio"
	"bytes"
	"fmt"
	"io"
	"os"
	"os/exec"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/godwit-dev/godwit/internal/testutil"
)

func TestMain(m *testing.M) { os.Exit(testutil.Main(m)) }

// victim is testdata/memvictim.c running as a child: one command per line
// on its stdin, one answer line on its stdout. Between commands it is
// blocked in read(2) on stdin.
//
// Nothing may wait for the child while it is traced (a wait would take the
// ptrace stops): it is only reaped by the cleanup.
type victim struct {
	t     testing.TB
	pid   int
	cmd   *exec.Cmd
	in    io.WriteCloser
	lines chan string
}

// startVictim builds and starts memvictim. It skips the test when not
// root (ptrace of a child works for any user, but these tests also check
// what only root may do) or gcc is missing.
func startVictim(t testing.TB) *victim {
	t.Helper()
	testutil.RequireRoot(t)
	bin := testutil.BuildC(t, "testdata/memvictim.c")
	cmd := exec.Command(bin)
	in, err := cmd.StdinPipe()
	if err != nil {
		t.Fatal(err)
	}
	out, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	var stderr bytes.Buffer
	cmd.Stderr = &stderr
	// No Pdeathsig: it fires when the forking OS thread exits, and
	// ptrace.Run throws its threads away.
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	v := &victim{t: t, pid: cmd.Process.Pid, cmd: cmd, in: in, lines: make(chan string, 16)}
	go func() {
		sc := bufio.NewScanner(out)
		for sc.Scan() {
			v.lines <- sc.Text()
		}
		close(v.lines)
	}()
	t.Cleanup(func() {
		in.Close()
		cmd.Process.Kill()
		cmd.Wait()
		if stderr.Len() > 0 {
			t.Logf("victim stderr: %s", stderr.Bytes())
		}
	})
	if got := v.line(); got != "ready "+strconv.Itoa(v.pid) {
		t.Fatalf("victim said %q, want ready", got)
	}
	return v
}

// line returns the next line the victim writes.
func (v *victim) line() string {
	v.t.Helper()
	select {
	case l, ok := <-v.lines:
		if !ok {
			v.t.Fatalf("victim %d closed its output (exited?)", v.pid)
		}
		return l
	case <-time.After(2 * time.Minute): // a watchdog, not a synchronisation
		v.t.Fatalf("victim %d: no answer in 2 minutes", v.pid)
		return ""
	}
}

// send writes one command line.
func (v *victim) send(format string, args ...any) {
	v.t.Helper()
	if _, err := fmt.Fprintf(v.in, format+"\n", args...); err != nil {
		v.t.Fatalf("victim %d: send: %v", v.pid, err)
	}
}

// do sends a command and returns the answer, failing the test unless it
// starts with want.
func (v *victim) do(want, format string, args ...any) string {
	v.t.Helper()
	v.send(format, args...)
	l := v.line()
	if !strings.HasPrefix(l, want) {
		v.t.Fatalf("victim %d: %q answered %q, want %q...", v.pid, fmt.Sprintf(format, args...), l, want)
	}
	return l
}

// mapPages maps n private anonymous pages in the victim (no huge pages).
func (v *victim) mapPages(n int) uint64 {
	v.t.Helper()
	return v.addr(v.do("addr ", "map 0 %d", n))
}

func (v *victim) addr(answer string) uint64 {
	v.t.Helper()
	a, err := strconv.ParseUint(strings.TrimPrefix(answer, "addr "), 16, 64)
	if err != nil {
		v.t.Fatalf("victim %d: bad address in %q", v.pid, answer)
	}
	return a
}

// sum asks the victim for the checksum of n pages at addr.
func (v *victim) sum(addr uint64, n int) uint64 {
	v.t.Helper()
	s, err := strconv.ParseUint(strings.TrimPrefix(v.do("sum ", "sum %x %d", addr, n), "sum "), 10, 64)
	if err != nil {
		v.t.Fatal(err)
	}
	return s
}

// waitSyscall waits until the victim is inside system call nr (as
// /proc/PID/syscall shows), so that a test really catches it there.
func (v *victim) waitSyscall(nr int) {
	v.t.Helper()
	want := strconv.Itoa(nr) + " "
	deadline := time.Now().Add(time.Minute)
	for {
		b, err := os.ReadFile("/proc/" + strconv.Itoa(v.pid) + "/syscall")
		if err != nil {
			v.t.Fatal(err)
		}
		if strings.HasPrefix(string(b), want) {
			return
		}
		if time.Now().After(deadline) {
			v.t.Fatalf("victim %d is not in syscall %d: %q", v.pid, nr, b)
		}
		time.Sleep(time.Millisecond) // polling a condition
	}
}

// Patterns of memvictim, computed the same way here.

func word(seed, page, j uint64) uint64 { return seed*1000003 + page*4099 + j }

// fillPattern returns the n pages "fill A n seed" writes.
func fillPattern(n int, seed uint64) []uint64 {
	w := make([]uint64, n*PageSize/8)
	for i := range n {
		for j := range PageSize / 8 {
			w[i*PageSize/8+j] = word(seed, uint64(i), uint64(j))
		}
	}
	return w
}

func fnv(w []uint64) uint64 {
	h := uint64(14695981039346656037)
	for _, x := range w {
		h ^= x
		h *= 1099511628211
	}
	return h
}

// pagesIn returns the page indexes of [addr, addr+n pages) that ranges cover.
func pagesIn(ranges []Range, addr uint64, n int) []int {
	var out []int
	end := addr + uint64(n)*PageSize
	for _, r := range ranges {
		for a := max(r.Addr, addr); a < min(r.Addr+uint64(r.Size), end); a += PageSize {
			out = append(out, int((a-addr)/PageSize))
		}
	}
	return out
}
