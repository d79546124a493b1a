package bench

import (
	"bufio"
	"bytes"
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"math/rand/v2"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"golang.org/x/sys/unix"

	"github.com/godwit-dev/godwit/checkpoint"
	"github.com/godwit-dev/godwit/internal/mem"
	"github.com/godwit-dev/godwit/internal/procfs"
	"github.com/godwit-dev/godwit/internal/testutil"
	"github.com/godwit-dev/godwit/restore"
)

// The dataset of BenchmarkRedis1GiB: redisBenchKeys values of
// redisBenchValue bytes each, pseudo-random (incompressible, no zero page).
const (
	redisBenchKeys  = 1024
	redisBenchValue = 1 << 20
	redisBenchRSS   = 1 << 30 // the RSS redis must reach before the dump
)

// BenchmarkRedis1GiB checkpoints and restores redis-server holding 1 GiB of
// data. Each iteration starts redis-server (port free, 127.0.0.1, no
// persistence, stdio on /dev/null, its own session), loads 1024 values of
// 1 MiB (pseudo-random, one seed per key) with pipelined SETs and waits
// until its RSS is at least 1 GiB. Then:
//
//  1. reads every present page of its private anonymous memory (its heap)
//     with process_vm_readv, 1 MiB iovecs, into a 64 MiB buffer faulted in
//     beforehand, twice: pvr-first-MB/s and pvr-MB/s, the machine's reading
//     speed to compare frozen-MB/s with;
//  2. dumps it with checkpoint.Dump (LeaveRunning) into a file on a tmpfs
//     (/dev/shm when it is one with room, the temporary directory
//     otherwise): frozen-ms (Stats.FrozenTime), dump-ms (Stats.TotalTime),
//     image-bytes; redis must still answer afterwards;
//  3. kills and reaps redis, restores the image with restore.Restore and
//     times the call (restore-ms, until Restore returns with the process
//     running); the restored redis becomes a child of the test process (a
//     child-subreaper);
//  4. checks through a new connection that DBSIZE is 1024 and that five
//     keys (first, last and three in between) hold their values byte for
//     byte; then kills and reaps it.
//
// Only the dump and the restore count in ns/op.
func BenchmarkRedis1GiB(b *testing.B) {
	testutil.RequireRoot(b)
	server := testutil.RequireCommand(b, "redis-server")
	testutil.Subreaper(b)
	imgDir := redisImageDir(b)

	var sums map[string]float64
	add := func(metric string, v float64) {
		if sums == nil {
			sums = map[string]float64{}
		}
		sums[metric] += v
	}
	metrics := []string{"frozen-ms", "frozen-MB/s", "dump-ms", "image-bytes", "restore-ms",
		"pvr-first-MB/s", "pvr-MB/s", "rss-MiB"}

	b.ResetTimer()
	b.StopTimer()
	for i := 0; i < b.N; i++ {
		rs := startRedisBench(b, server)
		rs.load(b)
		rss := rs.waitRSS(b, redisBenchRSS)
		add("rss-MiB", float64(rss)/(1<<20))

		// 1. process_vm_readv of its heap.
		first, second, n := pvrHeap(b, rs.pid)
		add("pvr-first-MB/s", mbPerSec(n, first))
		add("pvr-MB/s", mbPerSec(n, second))

		// 2. Dump, leaving redis running.
		img := filepath.Join(imgDir, "redis.img")
		f, err := os.Create(img)
		if err != nil {
			b.Fatal(err)
		}
		b.StartTimer()
		st, err := checkpoint.Dump(context.Background(), rs.pid, f, checkpoint.Options{LeaveRunning: true})
		b.StopTimer()
		if cerr := f.Close(); err == nil {
			err = cerr
		}
		if err != nil {
			b.Fatalf("dump of redis-server (pid %d): %v", rs.pid, err)
		}
		add("frozen-ms", durMS(st.FrozenTime))
		add("frozen-MB/s", mbPerSec(int64(st.Pages)*4096, st.FrozenTime))
		add("dump-ms", durMS(st.TotalTime))
		add("image-bytes", float64(st.ImageBytes))
		rs.ping(b, "after the dump with LeaveRunning")

		// 3. Kill it, restore it.
		rs.kill(b)
		f, err = os.Open(img)
		if err != nil {
			b.Fatal(err)
		}
		b.StartTimer()
		start := time.Now()
		res, err := restore.Restore(context.Background(), f, restore.Options{})
		restoreT := time.Since(start)
		b.StopTimer()
		f.Close()
		if err != nil {
			b.Fatalf("restore of redis-server: %v", err)
		}
		rs.adopt(res.PID)
		add("restore-ms", durMS(restoreT))
		if err := os.Remove(img); err != nil {
			b.Error(err)
		}

		// 4. The data must be there.
		rs.check(b)
		rs.kill(b)
	}
	for _, m := range metrics {
		b.ReportMetric(sums[m]/float64(b.N), m)
	}
}

// redisImageDir returns a new directory for the image, removed at the end:
// on /dev/shm when it is a tmpfs with room for two images, so that writing
// the image costs no disk, or else in the temporary directory.
func redisImageDir(b *testing.B) string {
	b.Helper()
	var fs unix.Statfs_t
	if err := unix.Statfs("/dev/shm", &fs); err == nil && fs.Type == unix.TMPFS_MAGIC &&
		fs.Bavail*uint64(fs.Bsize) >= 3*redisBenchRSS {
		dir, err := os.MkdirTemp("/dev/shm", "godwit-bench-")
		if err == nil {
			b.Cleanup(func() { os.RemoveAll(dir) })
			b.Logf("image on tmpfs %s", dir)
			return dir
		}
	}
	dir := b.TempDir()
	kind := "not a tmpfs"
	if unix.Statfs(dir, &fs) == nil && fs.Type == unix.TMPFS_MAGIC {
		kind = "tmpfs"
	}
	b.Logf("image in %s (%s)", dir, kind)
	return dir
}

// redisBench is a redis-server started by the benchmark. Nothing waits for
// it until it is killed (see threadTree).
type redisBench struct {
	cmd   *exec.Cmd // the original process, until reaped
	pid   int       // the process that holds redis's identity now
	alive bool
	addr  string
}

// startRedisBench starts redis-server on a free port with stdio on
// /dev/null and no other inherited descriptor, and waits until it answers.
func startRedisBench(b *testing.B, server string) *redisBench {
	b.Helper()
	if err := unix.CloseRange(3, ^uint(0), unix.CLOSE_RANGE_CLOEXEC); err != nil {
		b.Fatalf("close_range: %v", err)
	}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		b.Fatal(err)
	}
	port := ln.Addr().(*net.TCPAddr).Port
	ln.Close()
	dir := b.TempDir()
	cmd := exec.Command(server, "--port", strconv.Itoa(port), "--bind", "127.0.0.1",
		"--save", "", "--appendonly", "no", "--daemonize", "no", "--dir", dir)
	cmd.Dir = dir
	cmd.SysProcAttr = &syscall.SysProcAttr{Setsid: true}
	// Nil Stdin, Stdout and Stderr are /dev/null.
	if err := cmd.Start(); err != nil {
		b.Fatal(err)
	}
	rs := &redisBench{cmd: cmd, pid: cmd.Process.Pid, alive: true, addr: "127.0.0.1:" + strconv.Itoa(port)}
	b.Cleanup(func() {
		if rs.alive {
			rs.kill(b)
		}
	})
	testutil.WaitFor(b, time.Minute, func() bool {
		if !testutil.Alive(rs.pid) {
			b.Fatalf("redis-server (pid %d) exited at start", rs.pid)
		}
		c, err := dialRedisBench(rs.addr)
		if err != nil {
			return false
		}
		defer c.Close()
		v, err := c.do("PING")
		return err == nil && v == "PONG"
	}, "redis-server to answer PING")
	return rs
}

// redisBenchKey and redisBenchVal are key i of the dataset and its value.
func redisBenchKey(i int) string { return "bench:" + strconv.Itoa(i) }

func redisBenchVal(i int, buf []byte) []byte {
	var seed [32]byte
	binary.LittleEndian.PutUint64(seed[:], uint64(i)+1)
	copy(seed[8:], "godwit-redis-1GiB")
	buf = buf[:redisBenchValue]
	rand.NewChaCha8(seed).Read(buf)
	return buf
}

// load SETs the dataset through one connection, the commands written by
// one goroutine while the replies are read here, then closes the connection
// and waits until redis holds no TCP connection: the dump is of a server
// with only its listening socket.
func (rs *redisBench) load(b *testing.B) {
	b.Helper()
	c, err := dialRedisBench(rs.addr)
	if err != nil {
		b.Fatal(err)
	}
	c.conn.SetDeadline(time.Now().Add(10 * time.Minute))
	werr := make(chan error, 1)
	go func() {
		val := make([]byte, redisBenchValue)
		for i := range redisBenchKeys {
			c.send("SET", redisBenchKey(i), redisBenchVal(i, val))
		}
		werr <- c.w.Flush()
	}()
	for i := range redisBenchKeys {
		v, err := c.read()
		if err != nil || v != "OK" {
			c.Close()
			b.Fatalf("SET %s gives %v (%v)", redisBenchKey(i), v, err)
		}
	}
	if err := <-werr; err != nil {
		b.Fatal(err)
	}
	if v, err := c.do("DBSIZE"); err != nil || v != int64(redisBenchKeys) {
		b.Fatalf("DBSIZE after the load gives %v (%v), want %d", v, err, redisBenchKeys)
	}
	c.Close()
	var conns []string
	if !testutil.Poll(20*time.Second, func() bool {
		conns = tcpConnsOf(rs.pid)
		return len(conns) == 0
	}) {
		b.Fatalf("redis-server still holds TCP connections %v", conns)
	}
}

// waitRSS waits until redis's resident memory is at least min bytes and
// returns it.
func (rs *redisBench) waitRSS(b *testing.B, min uint64) uint64 {
	b.Helper()
	var rss uint64
	ok := testutil.Poll(30*time.Second, func() bool {
		rss = vmRSS(b, rs.pid)
		return rss >= min
	})
	if !ok {
		b.Fatalf("redis-server's RSS is %d MiB after loading %d MiB, want at least %d MiB",
			rss>>20, redisBenchKeys*redisBenchValue>>20, min>>20)
	}
	return rss
}

// vmRSS returns VmRSS of /proc/PID/status in bytes.
func vmRSS(b *testing.B, pid int) uint64 {
	b.Helper()
	data, err := os.ReadFile("/proc/" + strconv.Itoa(pid) + "/status")
	if err != nil {
		b.Fatal(err)
	}
	for _, line := range strings.Split(string(data), "\n") {
		if v, ok := strings.CutPrefix(line, "VmRSS:"); ok {
			kb, err := strconv.ParseUint(strings.TrimSuffix(strings.TrimSpace(v), " kB"), 10, 64)
			if err != nil {
				b.Fatalf("VmRSS line %q: %v", line, err)
			}
			return kb << 10
		}
	}
	b.Fatalf("no VmRSS in /proc/%d/status", pid)
	return 0
}

// ping checks that redis answers.
func (rs *redisBench) ping(b *testing.B, when string) {
	b.Helper()
	c, err := dialRedisBench(rs.addr)
	if err != nil {
		b.Fatalf("%s: redis-server does not accept a connection: %v", when, err)
	}
	defer c.Close()
	if v, err := c.do("PING"); err != nil || v != "PONG" {
		b.Fatalf("%s: PING gives %v (%v)", when, v, err)
	}
}

// check checks that the restored redis is the original process and holds
// the dataset: DBSIZE, and five values byte for byte.
func (rs *redisBench) check(b *testing.B) {
	b.Helper()
	c, err := dialRedisBench(rs.addr)
	if err != nil {
		b.Fatalf("the restored redis-server does not accept a connection: %v", err)
	}
	defer c.Close()
	if v, err := c.do("DBSIZE"); err != nil || v != int64(redisBenchKeys) {
		b.Fatalf("DBSIZE after the restore gives %v (%v), want %d", v, err, redisBenchKeys)
	}
	want := make([]byte, redisBenchValue)
	for _, i := range []int{0, 1, redisBenchKeys / 3, 2 * redisBenchKeys / 3, redisBenchKeys - 1} {
		v, err := c.do("GET", redisBenchKey(i))
		if err != nil {
			b.Fatalf("GET %s after the restore: %v", redisBenchKey(i), err)
		}
		got, _ := v.([]byte)
		if !bytes.Equal(got, redisBenchVal(i, want)) {
			b.Fatalf("GET %s after the restore gives %d bytes that differ from the %d loaded",
				redisBenchKey(i), len(got), redisBenchValue)
		}
	}
	v, err := c.do("INFO", "server")
	if err != nil {
		b.Fatal(err)
	}
	info, _ := v.([]byte)
	if !bytes.Contains(info, []byte("\r\nprocess_id:"+strconv.Itoa(rs.pid)+"\r\n")) {
		b.Fatalf("INFO server of the restored redis does not give process_id %d", rs.pid)
	}
}

// kill kills redis's current process and reaps it, so that its PID is free.
func (rs *redisBench) kill(b *testing.B) {
	b.Helper()
	rs.alive = false
	if rs.cmd != nil {
		rs.cmd.Process.Kill()
		rs.cmd.Wait()
		rs.cmd = nil
		return
	}
	if !testutil.KillAndReap(rs.pid, time.Minute) {
		b.Fatalf("restored redis-server pid %d could not be reaped", rs.pid)
	}
}

// adopt records that a restored process, a child of this subreaper, is redis
// now.
func (rs *redisBench) adopt(pid int) { rs.pid, rs.alive = pid, true }

// tcpConnsOf lists the TCP sockets of pid that are not listening, as
// "local->remote state" (hexadecimal, as in /proc/net/tcp).
func tcpConnsOf(pid int) []string {
	inodes := map[string]bool{}
	ents, _ := os.ReadDir("/proc/" + strconv.Itoa(pid) + "/fd")
	for _, e := range ents {
		l, _ := os.Readlink("/proc/" + strconv.Itoa(pid) + "/fd/" + e.Name())
		if ino, ok := strings.CutPrefix(l, "socket:["); ok {
			inodes[strings.TrimSuffix(ino, "]")] = true
		}
	}
	var out []string
	for _, table := range []string{"/proc/net/tcp", "/proc/net/tcp6"} {
		data, err := os.ReadFile(table)
		if err != nil {
			continue
		}
		for _, line := range strings.Split(string(data), "\n")[1:] {
			f := strings.Fields(line)
			if len(f) < 10 || !inodes[f[9]] || f[3] == "0A" { // 0A: LISTEN
				continue
			}
			out = append(out, f[1]+"->"+f[2]+" state "+f[3])
		}
	}
	return out
}

// pvrHeap reads every present page of pid's private anonymous mappings with
// process_vm_readv, at most 1 MiB per iovec, into a 64 MiB buffer faulted
// in beforehand (reused: what is measured is the kernel's copy, not page
// faults on the reading side), twice. It returns the time of each pass and
// the bytes read per pass.
func pvrHeap(b *testing.B, pid int) (first, second time.Duration, n int64) {
	b.Helper()
	maps, err := procfs.ReadMaps(pid)
	if err != nil {
		b.Fatal(err)
	}
	m, err := mem.Open(pid, false)
	if err != nil {
		b.Fatal(err)
	}
	defer m.Close()
	// The runs of present pages, cut at 1 MiB.
	var runs []unix.RemoteIovec
	var pm []uint64
	for _, mp := range maps {
		if mp.Shared || !mp.Read || (mp.Path != "" && mp.Path != "[heap]") {
			continue
		}
		if pm, err = m.Pagemap(mp.Start, mp.End, pm); err != nil {
			b.Fatal(err)
		}
		for i := 0; i < len(pm); {
			if pm[i]&mem.PMPresent == 0 || pm[i]&mem.PMFileShare != 0 {
				i++
				continue
			}
			j := i
			for j < len(pm) && j-i < (1<<20)/mem.PageSize && pm[j]&mem.PMPresent != 0 && pm[j]&mem.PMFileShare == 0 {
				j++
			}
			runs = append(runs, unix.RemoteIovec{Base: uintptr(mp.Start) + uintptr(i*mem.PageSize), Len: (j - i) * mem.PageSize})
			n += int64((j - i) * mem.PageSize)
			i = j
		}
	}
	buf := make([]byte, 64<<20)
	mem.Prefault(buf)
	pass := func() time.Duration {
		start := time.Now()
		off := 0
		for _, r := range runs {
			if off+r.Len > len(buf) {
				off = 0
			}
			local := []unix.Iovec{{Base: &buf[off]}}
			local[0].SetLen(r.Len)
			got, err := unix.ProcessVMReadv(pid, local, []unix.RemoteIovec{r}, 0)
			if err != nil || got != r.Len {
				b.Fatalf("process_vm_readv of pid %d at %#x, %d bytes: %d, %v", pid, r.Base, r.Len, got, err)
			}
			off += r.Len
		}
		return time.Since(start)
	}
	first = pass()
	second = pass()
	b.Logf("process_vm_readv: %d MiB in %d runs of present anonymous pages", n>>20, len(runs))
	return first, second, n
}

// mbPerSec is bytes per second of d in MB (10^6 bytes).
func mbPerSec(bytes int64, d time.Duration) float64 {
	if d <= 0 {
		return 0
	}
	return float64(bytes) / 1e6 / d.Seconds()
}

// redisBenchClient is a minimal RESP client.
type redisBenchClient struct {
	conn net.Conn
	r    *bufio.Reader
	w    *bufio.Writer
}

func dialRedisBench(addr string) (*redisBenchClient, error) {
	c, err := net.DialTimeout("tcp", addr, 5*time.Second)
	if err != nil {
		return nil, err
	}
	return &redisBenchClient{conn: c, r: bufio.NewReaderSize(c, 1<<20), w: bufio.NewWriterSize(c, 1<<20)}, nil
}

func (c *redisBenchClient) Close() error { return c.conn.Close() }

// send buffers one command whose last argument may be binary.
func (c *redisBenchClient) send(cmd string, args ...any) {
	fmt.Fprintf(c.w, "*%d\r\n$%d\r\n%s\r\n", 1+len(args), len(cmd), cmd)
	for _, a := range args {
		switch a := a.(type) {
		case string:
			fmt.Fprintf(c.w, "$%d\r\n%s\r\n", len(a), a)
		case []byte:
			fmt.Fprintf(c.w, "$%d\r\n", len(a))
			c.w.Write(a)
			c.w.WriteString("\r\n")
		}
	}
}

// do sends one command and reads its reply.
func (c *redisBenchClient) do(cmd string, args ...any) (any, error) {
	c.conn.SetDeadline(time.Now().Add(time.Minute))
	c.send(cmd, args...)
	if err := c.w.Flush(); err != nil {
		return nil, err
	}
	return c.read()
}

// read reads one reply: a string (simple string), an error, an int64, a
// []byte (bulk string; nil when null) or a []any (array).
func (c *redisBenchClient) read() (any, error) {
	line, err := c.r.ReadString('\n')
	if err != nil {
		return nil, err
	}
	line = strings.TrimSuffix(line, "\r\n")
	if line == "" {
		return nil, errors.New("empty reply line")
	}
	switch body := line[1:]; line[0] {
	case '+':
		return body, nil
	case '-':
		return nil, errors.New("redis: " + body)
	case ':':
		return strconv.ParseInt(body, 10, 64)
	case '$':
		n, err := strconv.Atoi(body)
		if err != nil || n < 0 {
			return nil, err
		}
		buf := make([]byte, n+2)
		if _, err := io.ReadFull(c.r, buf); err != nil {
			return nil, err
		}
		return buf[:n], nil
	case '*':
		n, err := strconv.Atoi(body)
		if err != nil || n < 0 {
			return nil, err
		}
		out := make([]any, n)
		for i := range out {
			if out[i], err = c.read(); err != nil {
				return nil, err
			}
		}
		return out, nil
	}
	return nil, fmt.Errorf("unknown reply %q", line)
}
