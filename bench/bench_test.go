package bench

import (
	"context"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	"golang.org/x/sys/unix"

	"github.com/godwit-dev/godwit/checkpoint"
	"github.com/godwit-dev/godwit/internal/mem"
	"github.com/godwit-dev/godwit/internal/testutil"
	"github.com/godwit-dev/godwit/restore"
)

func TestMain(m *testing.M) {
	code := testutil.Main(m)
	printSummary(os.Stdout)
	os.Exit(code)
}

// sizes are the amounts of memory the victims hold, in MiB.
var sizes = []int{64, 1024}

// BenchmarkDumpRestore checkpoints (--leave-running) and restores a process
// holding 64 MiB and 1 GiB of non-zero anonymous memory. Each iteration
// starts a fresh victim and:
//
//  1. measures process_vm_readv (1 MiB iovecs) of the victim's memory into a
//     prefaulted buffer, and memcpy between two prefaulted buffers: what the
//     machine can do, for comparison within the same run;
//  2. dumps it with checkpoint.Dump (library, LeaveRunning) into a file;
//  3. dumps it again with the godwit binary (a fresh process), for its
//     frozen time, peak memory and CPU time;
//  4. kills and reaps it, restores the first image with restore.Restore,
//     checks that the restored process holds the same memory, kills it;
//  5. restores the image again with the godwit binary, for its peak memory
//     and CPU time, and checks that process too.
//
// Only steps 2 and 4 (the library dump and restore) count in ns/op; every
// figure is reported as a metric. Run it with a fixed count, e.g.
// -benchtime 3x: each iteration takes seconds of setup.
func BenchmarkDumpRestore(b *testing.B) {
	for _, mib := range sizes {
		name := fmt.Sprintf("%dMiB", mib)
		if mib >= 1024 && mib%1024 == 0 {
			name = fmt.Sprintf("%dGiB", mib/1024)
		}
		b.Run(name, func(b *testing.B) { benchDumpRestore(b, name, mib) })
	}
}

func benchDumpRestore(b *testing.B, name string, mib int) {
	testutil.RequireRoot(b)
	testutil.RequireCommand(b, "gcc")
	memhog := testutil.BuildC(b, "testdata/memhog.c")
	helper := testutil.BuildC(b, "testdata/rusage.c")
	testutil.BuildGodwit(b)
	testutil.Subreaper(b)
	size := mib << 20
	dir := b.TempDir()

	s := &sample{name: name, mib: mib}
	b.ResetTimer()
	b.StopTimer()
	for i := 0; i < b.N; i++ {
		v := startVictim(b, memhog, mib)
		want := v.waitReport(b)
		if want.len != size {
			b.Fatalf("victim reports %d bytes, want %d", want.len, size)
		}
		pid := v.pid

		// 1. The machine's own speeds, into buffers faulted in beforehand.
		// The first read can be slower than the next (see README.md), so
		// the memory is read twice.
		pvrBuf := prefaulted(size)
		s.add("pvr-first-MB/s", mbps(size, timeIt(func() { pvrRead(b, pid, want.addr, pvrBuf) })))
		s.add("pvr-MB/s", mbps(size, timeIt(func() { pvrRead(b, pid, want.addr, pvrBuf) })))
		cpySrc, cpyDst := pvrBuf[:min(size, 256<<20)], prefaulted(min(size, 256<<20))
		copy(cpyDst, cpySrc)
		s.add("memcpy-MB/s", mbps(size, timeIt(func() {
			for done := 0; done < size; done += len(cpyDst) {
				copy(cpyDst, cpySrc)
			}
		})))
		pvrBuf, cpySrc, cpyDst = nil, nil, nil

		// 2. Library dump, leaving the process running.
		img := filepath.Join(dir, "image")
		f, err := os.Create(img)
		if err != nil {
			b.Fatal(err)
		}
		b.StartTimer()
		st, err := checkpoint.Dump(context.Background(), pid, f, checkpoint.Options{LeaveRunning: true})
		b.StopTimer()
		if cerr := f.Close(); err == nil {
			err = cerr
		}
		if err != nil {
			b.Fatalf("dump pid %d: %v", pid, err)
		}
		if !running(pid) {
			b.Fatalf("the victim is gone after a --leave-running dump; stderr: %s", v.stderr())
		}
		data := int64(st.Pages) * 4096
		s.add("frozen-ms", ms(st.FrozenTime))
		s.add("frozen-MB/s", mbps(int(data), st.FrozenTime))
		s.add("dump-ms", ms(st.TotalTime))
		s.add("dump-MB/s", mbps(int(data), st.TotalTime))
		s.add("image-MiB", float64(st.ImageBytes)/(1<<20))

		// 3. The same dump by the binary, a fresh process.
		img2 := filepath.Join(dir, "image-cli")
		r := runGodwit(b, helper, "dump", "-v", "--leave-running", "--image", img2, strconv.Itoa(pid))
		s.add("cli-frozen-ms", ms(cliFrozen(b, r.stderr)))
		s.add("cli-dump-ms", ms(r.wall))
		s.add("cli-dump-cpu-ms", ms(r.cpu))
		s.add("cli-dump-maxrss-MiB", r.maxrssMiB)
		os.Remove(img2)

		// 4. Library restore of the first image, once the PID is free.
		v.kill(b)
		f, err = os.Open(img)
		if err != nil {
			b.Fatal(err)
		}
		b.StartTimer()
		res, err := restore.Restore(context.Background(), f, restore.Options{})
		b.StopTimer()
		f.Close()
		if err != nil {
			b.Fatalf("restore: %v", err)
		}
		v.adopt(res.PID)
		s.add("restore-ms", ms(res.Duration))
		s.add("restore-MB/s", mbps(int(data), res.Duration))
		if got := v.poke(b); got != want {
			b.Fatalf("the restored process reports %+v, the original %+v", got, want)
		}
		v.kill(b)

		// 5. The same restore by the binary, for its peak memory.
		r = runGodwit(b, helper, "restore", "--image", img)
		rpid, err := strconv.Atoi(strings.TrimSpace(r.stdout))
		if err != nil {
			b.Fatalf("godwit restore printed %q", r.stdout)
		}
		v.adopt(rpid)
		s.add("cli-restore-ms", ms(r.wall))
		s.add("cli-restore-cpu-ms", ms(r.cpu))
		s.add("cli-restore-maxrss-MiB", r.maxrssMiB)
		if got := v.poke(b); got != want {
			b.Fatalf("the process restored by the binary reports %+v, the original %+v", got, want)
		}
		v.kill(b)
		os.Remove(img)
	}
	for _, m := range s.metrics {
		b.ReportMetric(s.mean(m), m)
	}
	s.n = b.N
	results[name] = s
	if !slices.Contains(order, name) {
		order = append(order, name)
	}
}

// prefaulted returns a buffer of n bytes whose pages are all present, backed
// by huge pages where the kernel allows, as godwit's own buffer for pages is,
// so that copying into it costs no page faults.
func prefaulted(n int) []byte {
	buf := make([]byte, n)
	mem.Prefault(buf)
	return buf
}

// pvrRead reads len(buf) bytes at addr of pid with process_vm_readv, 1 MiB
// per iovec.
func pvrRead(b *testing.B, pid int, addr uint64, buf []byte) {
	const chunk = 1 << 20
	for off := 0; off < len(buf); {
		n := min(chunk, len(buf)-off)
		local := []unix.Iovec{{Base: &buf[off]}}
		local[0].SetLen(n)
		remote := []unix.RemoteIovec{{Base: uintptr(addr) + uintptr(off), Len: n}}
		got, err := unix.ProcessVMReadv(pid, local, remote, 0)
		if err != nil || got <= 0 {
			b.Fatalf("process_vm_readv of pid %d at %#x: %d, %v", pid, addr+uint64(off), got, err)
		}
		off += got
	}
}

type report struct {
	addr uint64
	len  int
	sum  uint64
}

// parseReport parses memhog's report: "ADDR LEN SUM" (hex, decimal, hex).
func parseReport(b *testing.B, data []byte) report {
	var r report
	if _, err := fmt.Sscanf(string(data), "%x %d %x", &r.addr, &r.len, &r.sum); err != nil {
		b.Fatalf("bad report %q: %v", data, err)
	}
	return r
}

type run struct {
	stdout    string
	stderr    string
	wall, cpu time.Duration
	maxrssMiB float64
}

// runGodwit runs the godwit binary through the rusage helper (see
// testdata/rusage.c) and returns its peak resident memory and CPU time.
func runGodwit(b *testing.B, helper string, args ...string) run {
	b.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Minute)
	defer cancel()
	dir := b.TempDir()
	usage := filepath.Join(dir, "rusage")
	cmd := exec.CommandContext(ctx, helper, append([]string{usage, testutil.BuildGodwit(b)}, args...)...)
	null, err := os.Open(os.DevNull)
	if err != nil {
		b.Fatal(err)
	}
	defer null.Close()
	cmd.Stdin = null
	out := testutil.CaptureOutput(b, cmd)
	start := time.Now()
	err = cmd.Run()
	wall := time.Since(start)
	o, e := out.Read()
	if err != nil {
		b.Fatalf("godwit %s: %v\n%s", strings.Join(args, " "), err, e)
	}
	u, err := os.ReadFile(usage)
	if err != nil {
		b.Fatal(err)
	}
	var maxrss, utime, stime int64
	if _, err := fmt.Sscanf(string(u), "%d %d %d", &maxrss, &utime, &stime); err != nil {
		b.Fatalf("rusage helper wrote %q: %v", u, err)
	}
	return run{
		stdout:    o,
		stderr:    e,
		wall:      wall,
		cpu:       time.Duration(utime+stime) * time.Microsecond,
		maxrssMiB: float64(maxrss) / 1024,
	}
}

// cliFrozen returns the frozen time that godwit dump -v printed.
func cliFrozen(b *testing.B, stderr string) time.Duration {
	_, rest, ok := strings.Cut(stderr, "frozen ")
	if ok {
		rest, _, ok = strings.Cut(rest, ",")
	}
	d, err := time.ParseDuration(rest)
	if !ok || err != nil {
		b.Fatalf("no frozen time in the output of godwit dump -v: %q", stderr)
	}
	return d
}

func timeIt(f func()) time.Duration {
	start := time.Now()
	f()
	return time.Since(start)
}

func ms(d time.Duration) float64 { return float64(d) / float64(time.Millisecond) }

func mbps(bytes int, d time.Duration) float64 {
	if d <= 0 {
		return 0
	}
	return float64(bytes) / 1e6 / d.Seconds()
}
