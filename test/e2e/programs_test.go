package e2e

import (
	"bytes"
	"encoding/json"
	"fmt"
	"io"
	"math/rand/v2"
	"net/http"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"golang.org/x/sys/unix"

	"github.com/godwit-dev/godwit/internal/testutil"
)

// The tests of this file checkpoint and restore real programs: a static Go
// HTTP server, nginx, redis-server, shell pipelines with data in flight and
// two processes sharing anonymous memory. Each starts the program, checks
// that it works, dumps it and, when the dump succeeds, restores it and checks
// from the program's own view (its answers, its reports) that it carries on
// where it stopped, under the same PIDs. While the engine refuses something
// the program holds (a socket, a pipe, shared memory, ...), the dump fails
// with code "unsupported" and leaves the program running: the test then
// checks that the program still works and skips with godwit's error, which
// names what is missing (see program.dump in programs_harness_test.go).

// Sources of the victims of this file, relative to this package, and the Go
// server's package, relative to the module root.
const (
	seqpipeC      = "../victims/seqpipe.c"
	shmemC        = "../victims/shmem.c"
	httpserverPkg = "./test/victims/httpserver"
)

// startTimeout bounds how long a program may take to start serving.
const startTimeout = time.Minute

// httpState is what the Go server answers to GET /count and POST /inc.
type httpState struct {
	PID   int    `json:"pid"`
	PPID  int    `json:"ppid"`
	Boot  uint64 `json:"boot"`
	Count int64  `json:"count"`
}

// httpTIDs is what the Go server answers to GET /tids.
type httpTIDs struct {
	Start []int `json:"start"`
	Now   []int `json:"now"`
}

// httpClient makes one connection per request and closes it, so that the
// server holds no connection once the answers are in.
func httpClient() *http.Client {
	return &http.Client{Timeout: 30 * time.Second, Transport: &http.Transport{DisableKeepAlives: true}}
}

// httpCall makes one request and returns the body of a 200 answer.
func httpCall(c *http.Client, method, url string) ([]byte, error) {
	req, err := http.NewRequest(method, url, nil)
	if err != nil {
		return nil, err
	}
	resp, err := c.Do(req)
	if err != nil {
		return nil, err
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	if err != nil {
		return nil, err
	}
	if resp.StatusCode != http.StatusOK {
		return b, fmt.Errorf("%s %s: %s: %q", method, url, resp.Status, b)
	}
	return b, nil
}

// httpJSON makes one request and decodes its JSON answer into v; it fails
// the test on any error.
func httpJSON(t *testing.T, c *http.Client, method, url string, v any) {
	t.Helper()
	b, err := httpCall(c, method, url)
	if err != nil {
		t.Fatal(err)
	}
	if err := json.Unmarshal(b, v); err != nil {
		t.Fatalf("%s %s: %v in %q", method, url, err, b)
	}
}

// incConcurrently makes n POST /inc requests at once.
func incConcurrently(t *testing.T, c *http.Client, base string, n int) {
	t.Helper()
	var wg sync.WaitGroup
	errs := make(chan error, n)
	for range n {
		wg.Add(1)
		go func() {
			defer wg.Done()
			if _, err := httpCall(c, "POST", base+"/inc"); err != nil {
				errs <- err
			}
		}()
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Fatal(err)
	}
}

// TestProgramGoHTTPServer checkpoints a statically linked Go net/http server
// (many threads, the runtime's epoll and eventfd, a listening TCP socket on
// 127.0.0.1) that counts POST /inc in memory. After the restore: the same
// PID, every thread id back (the test sees them in /proc; goroutines locked
// to their threads see them with gettid), the same process (its random boot
// number), GET /count gives the count from before the dump, POST /inc goes
// on from it, concurrent requests are served, all on the same port.
func TestProgramGoHTTPServer(t *testing.T) {
	setup(t)
	bin := buildStaticGo(t, httpserverPkg)
	dir := t.TempDir()
	addr := "127.0.0.1:" + strconv.Itoa(freePort(t))
	base := "http://" + addr
	c := httpClient()
	p := startProgram(t, "httpserver", dir, bin, "-addr", addr, "-locked", "4")

	var st httpState
	testutil.WaitFor(t, startTimeout, func() bool {
		p.alive(t)
		b, err := httpCall(c, "GET", base+"/count")
		return err == nil && json.Unmarshal(b, &st) == nil
	}, "the Go server to answer GET /count")
	if st.PID != p.root || st.Count != 0 {
		t.Fatalf("fresh server answers %+v, want pid %d and count 0", st, p.root)
	}

	// Natively: concurrent increments all count, and the locked goroutines
	// run on threads of the process.
	const n = 64
	incConcurrently(t, c, base, n)
	httpJSON(t, c, "GET", base+"/count", &st)
	if st.Count != n {
		t.Fatalf("count %d after %d concurrent POST /inc", st.Count, n)
	}
	var tids httpTIDs
	httpJSON(t, c, "GET", base+"/tids", &tids)
	tasks, _ := testutil.Tasks(p.root)
	if !slices.Equal(tids.Start, tids.Now) || len(tids.Now) != 4 {
		t.Fatalf("locked goroutines moved threads natively: %+v", tids)
	}
	for _, tid := range tids.Now {
		if !slices.Contains(tasks, tid) {
			t.Fatalf("locked goroutine's thread %d is not in /proc/%d/task %v", tid, p.root, tasks)
		}
	}
	t.Logf("server pid %d with %d threads", p.root, len(tasks))

	works := func(t *testing.T) {
		var now httpState
		httpJSON(t, c, "GET", base+"/count", &now)
		if now != st {
			t.Fatalf("after the refused dump the server answers %+v, want %+v", now, st)
		}
		httpJSON(t, c, "POST", base+"/inc", &now)
		if now.Count != st.Count+1 {
			t.Fatalf("POST /inc after the refused dump gives %d, want %d", now.Count, st.Count+1)
		}
	}

	p.waitIdle(t)
	before := p.snapshot(t)
	img := p.dump(t, works)
	p.restore(t, img)
	checkSameTree(t, before, p.snapshot(t), false)

	var after httpState
	httpJSON(t, c, "GET", base+"/count", &after)
	if after.PID != st.PID || after.Boot != st.Boot {
		t.Errorf("restored server is pid %d boot %x, want pid %d boot %x (the same process)", after.PID, after.Boot, st.PID, st.Boot)
	}
	if after.PPID != os.Getpid() {
		t.Errorf("restored server's parent is %d, want the test %d", after.PPID, os.Getpid())
	}
	if after.Count != st.Count {
		t.Errorf("GET /count after the restore gives %d, want %d from before the dump", after.Count, st.Count)
	}
	httpJSON(t, c, "POST", base+"/inc", &after)
	if after.Count != st.Count+1 {
		t.Errorf("POST /inc after the restore gives %d, want %d", after.Count, st.Count+1)
	}
	var tidsAfter httpTIDs
	httpJSON(t, c, "GET", base+"/tids", &tidsAfter)
	if !slices.Equal(tidsAfter.Now, tids.Now) || !slices.Equal(tidsAfter.Start, tids.Start) {
		t.Errorf("locked goroutines see threads %v after the restore (start %v), want %v", tidsAfter.Now, tidsAfter.Start, tids.Now)
	}
	incConcurrently(t, c, base, n)
	httpJSON(t, c, "GET", base+"/count", &after)
	if after.Count != st.Count+1+n {
		t.Errorf("count %d after %d more concurrent POST /inc, want %d", after.Count, n, st.Count+1+n)
	}
}

// nginxConf is a minimal nginx configuration: %[1]s is the prefix
// directory, %[2]d the port. The master stays in the foreground (the test
// owns the tree's root) with two workers; keepalive_timeout 0 makes nginx
// close every connection after its answer.
const nginxConf = `daemon off;
master_process on;
worker_processes 2;
user root;
pid %[1]s/nginx.pid;
error_log %[1]s/error.log info;
events {
	worker_connections 64;
}
http {
	access_log %[1]s/access.log;
	client_body_temp_path %[1]s/tmp/body;
	proxy_temp_path %[1]s/tmp/proxy;
	fastcgi_temp_path %[1]s/tmp/fastcgi;
	uwsgi_temp_path %[1]s/tmp/uwsgi;
	scgi_temp_path %[1]s/tmp/scgi;
	keepalive_timeout 0;
	default_type text/plain;
	server {
		listen 127.0.0.1:%[2]d;
		root %[1]s/www;
		location = /pid {
			return 200 "$pid\n";
		}
	}
}
`

// nginxWorkers lists the children of the master that are workers.
func nginxWorkers(p *program) []int {
	var out []int
	for _, pid := range p.tree() {
		b, _ := os.ReadFile(fmt.Sprintf("/proc/%d/cmdline", pid))
		if pid != p.root && strings.Contains(string(b), "worker process") {
			out = append(out, pid)
		}
	}
	slices.Sort(out)
	return out
}

// TestProgramNginx checkpoints nginx: a master in the foreground with two
// workers, a listening socket, the channels between master and workers and
// the shared memory nginx always maps. Before and after the restore it
// serves a page; the workers keep their PIDs, and every GET /pid (answered
// with $pid by the worker that takes it) names one of them. Then the restored
// master still manages its workers: on SIGHUP it starts two new ones, the old
// ones exit, and the page is still served.
func TestProgramNginx(t *testing.T) {
	setup(t)
	nginx := testutil.RequireCommand(t, "nginx")
	dir := t.TempDir()
	port := freePort(t)
	for _, d := range []string{"www", "tmp"} {
		if err := os.Mkdir(filepath.Join(dir, d), 0o755); err != nil {
			t.Fatal(err)
		}
	}
	page := fmt.Sprintf("godwit nginx page %x\n", rand.Uint64())
	if err := os.WriteFile(filepath.Join(dir, "www", "index.html"), []byte(page), 0o644); err != nil {
		t.Fatal(err)
	}
	conf := filepath.Join(dir, "nginx.conf")
	if err := os.WriteFile(conf, []byte(fmt.Sprintf(nginxConf, dir, port)), 0o644); err != nil {
		t.Fatal(err)
	}
	base := fmt.Sprintf("http://127.0.0.1:%d", port)
	c := httpClient()
	p := startProgram(t, "nginx", dir, nginx, "-p", dir+"/", "-c", conf, "-e", filepath.Join(dir, "error.log"))

	var workers []int
	testutil.WaitFor(t, startTimeout, func() bool {
		p.alive(t)
		b, err := httpCall(c, "GET", base+"/")
		workers = nginxWorkers(p)
		return err == nil && string(b) == page && len(workers) == 2
	}, "nginx to serve its page with two workers")

	// serves checks the page and that /pid is answered by one of want.
	serves := func(t *testing.T, want []int) {
		t.Helper()
		b, err := httpCall(c, "GET", base+"/")
		if err != nil || string(b) != page {
			t.Fatalf("GET / gives %q (%v), want %q", b, err, page)
		}
		for range 8 {
			b, err := httpCall(c, "GET", base+"/pid")
			if err != nil {
				t.Fatal(err)
			}
			pid, err := strconv.Atoi(strings.TrimSpace(string(b)))
			if err != nil || !slices.Contains(want, pid) {
				t.Fatalf("GET /pid answered %q: want one of the workers %v", b, want)
			}
		}
	}
	serves(t, workers)

	works := func(t *testing.T) {
		serves(t, workers)
		if now := nginxWorkers(p); !slices.Equal(now, workers) {
			t.Fatalf("workers %v after the refused dump, want %v", now, workers)
		}
	}

	p.waitIdle(t)
	before := p.snapshot(t)
	img := p.dump(t, works)
	p.restore(t, img)
	checkSameTree(t, before, p.snapshot(t), true)
	if now := nginxWorkers(p); !slices.Equal(now, workers) {
		t.Fatalf("workers %v after the restore, want %v", now, workers)
	}
	serves(t, workers)

	// The restored master reloads: new workers, the old ones exit and are
	// reaped by the master.
	if err := unix.Kill(p.root, unix.SIGHUP); err != nil {
		t.Fatal(err)
	}
	var fresh []int
	testutil.WaitFor(t, startTimeout, func() bool {
		p.alive(t)
		fresh = nginxWorkers(p)
		for _, pid := range workers {
			if _, err := os.Stat("/proc/" + strconv.Itoa(pid)); err == nil || slices.Contains(fresh, pid) {
				return false
			}
		}
		return len(fresh) == 2
	}, "the restored master to replace its workers on SIGHUP")
	serves(t, fresh)
}

// redisKeys is how many small keys TestProgramRedis loads.
const redisKeys = 10000

func redisValue(i int) string { return fmt.Sprintf("v_%d_%08x", i, uint32(i)*2654435761) }

// redisBig is the big value: 8 MiB of a pseudo-random pattern.
func redisBig() []byte {
	b := make([]byte, 8<<20)
	x := uint64(0x9e3779b97f4a7c15)
	for i := range b {
		x ^= x << 13
		x ^= x >> 7
		x ^= x << 17
		b[i] = byte(x >> 32)
	}
	return b
}

// asBytes returns a bulk string reply's bytes (nil for any other reply).
func asBytes(v any) []byte {
	b, _ := v.([]byte)
	return b
}

// redisInfo returns the fields of INFO section.
func redisInfo(t *testing.T, c *resp, section string) map[string]string {
	t.Helper()
	v, err := c.do("INFO", section)
	if err != nil {
		t.Fatal(err)
	}
	b, _ := v.([]byte)
	out := map[string]string{}
	for _, line := range strings.Split(string(b), "\r\n") {
		if k, v, ok := strings.Cut(line, ":"); ok {
			out[k] = v
		}
	}
	return out
}

// checkRedisData checks, through a new client, that redis holds exactly the
// loaded dataset, and returns the client.
func checkRedisData(t *testing.T, addr string, big []byte) *resp {
	t.Helper()
	c, err := dialRedis(addr)
	if err != nil {
		t.Fatalf("a new client cannot connect: %v", err)
	}
	t.Cleanup(func() { c.Close() })
	if v, err := c.do("PING"); err != nil || v != "PONG" {
		t.Fatalf("PING gives %v (%v)", v, err)
	}
	if v, err := c.do("DBSIZE"); err != nil || v != int64(redisKeys+2) {
		t.Fatalf("DBSIZE gives %v (%v), want %d", v, err, redisKeys+2)
	}
	// Every small key, 1000 at a time.
	for lo := 0; lo < redisKeys; lo += 1000 {
		args := []string{"MGET"}
		for i := lo; i < lo+1000; i++ {
			args = append(args, "k_"+strconv.Itoa(i))
		}
		v, err := c.do(args...)
		if err != nil {
			t.Fatal(err)
		}
		vals, _ := v.([]any)
		if len(vals) != 1000 {
			t.Fatalf("MGET of 1000 keys gives %d values", len(vals))
		}
		for j, val := range vals {
			if b, _ := val.([]byte); string(b) != redisValue(lo+j) {
				t.Fatalf("k_%d is %q, want %q", lo+j, b, redisValue(lo+j))
			}
		}
	}
	v, err := c.do("GET", "big")
	if err != nil {
		t.Fatal(err)
	}
	if b, _ := v.([]byte); !bytes.Equal(b, big) {
		t.Fatalf("the big value is %d bytes and differs from the %d loaded", len(b), len(big))
	}
	return c
}

// TestProgramRedis checkpoints redis-server (its threads, epoll, listening
// socket) holding a dataset loaded through its own protocol: 10000 small
// keys, an 8 MiB value and a counter. After the restore: the same PID and
// threads, INFO gives the same process_id and run_id (drawn at start: the
// same process, not a new one), a new client finds every key intact and
// DBSIZE unchanged, the counter goes on, and two clients are served at once.
func TestProgramRedis(t *testing.T) {
	setup(t)
	redis := testutil.RequireCommand(t, "redis-server")
	dir := t.TempDir()
	port := freePort(t)
	addr := "127.0.0.1:" + strconv.Itoa(port)
	p := startProgram(t, "redis", dir, redis, "--port", strconv.Itoa(port), "--bind", "127.0.0.1",
		"--save", "", "--appendonly", "no", "--daemonize", "no", "--dir", dir)

	var c *resp
	testutil.WaitFor(t, startTimeout, func() bool {
		p.alive(t)
		var err error
		if c, err = dialRedis(addr); err != nil {
			return false
		}
		if v, err := c.do("PING"); err == nil && v == "PONG" {
			return true
		}
		c.Close()
		return false
	}, "redis-server to answer PING")

	// Load the dataset, pipelined 1000 commands at a time.
	for lo := 0; lo < redisKeys; lo += 1000 {
		for i := lo; i < lo+1000; i++ {
			c.send("SET", "k_"+strconv.Itoa(i), redisValue(i))
		}
		if err := c.flush(); err != nil {
			t.Fatal(err)
		}
		for i := lo; i < lo+1000; i++ {
			if v, err := c.read(); err != nil || v != "OK" {
				t.Fatalf("SET k_%d gives %v (%v)", i, v, err)
			}
		}
	}
	big := redisBig()
	if v, err := c.do("SET", "big", string(big)); err != nil || v != "OK" {
		t.Fatalf("SET big gives %v (%v)", v, err)
	}
	for range 5 {
		if _, err := c.do("INCR", "ctr"); err != nil {
			t.Fatal(err)
		}
	}
	info := redisInfo(t, c, "server")
	c.Close()
	if info["process_id"] != strconv.Itoa(p.root) || info["run_id"] == "" {
		t.Fatalf("INFO server gives process_id %q run_id %q, want pid %d", info["process_id"], info["run_id"], p.root)
	}
	checkRedisData(t, addr, big).Close()

	works := func(t *testing.T) {
		c := checkRedisData(t, addr, big)
		if v, err := c.do("INCR", "ctr"); err != nil || v != int64(6) {
			t.Fatalf("INCR ctr after the refused dump gives %v (%v), want 6", v, err)
		}
		if now := redisInfo(t, c, "server"); now["run_id"] != info["run_id"] {
			t.Fatalf("run_id %q after the refused dump, want %q", now["run_id"], info["run_id"])
		}
	}

	p.waitIdle(t)
	before := p.snapshot(t)
	img := p.dump(t, works)
	p.restore(t, img)
	checkSameTree(t, before, p.snapshot(t), false)

	c = checkRedisData(t, addr, big)
	now := redisInfo(t, c, "server")
	if now["process_id"] != info["process_id"] || now["run_id"] != info["run_id"] || now["tcp_port"] != strconv.Itoa(port) {
		t.Errorf("INFO server after the restore: process_id %q run_id %q tcp_port %q; want %q %q %d",
			now["process_id"], now["run_id"], now["tcp_port"], info["process_id"], info["run_id"], port)
	}
	if v, err := c.do("INCR", "ctr"); err != nil || v != int64(6) {
		t.Errorf("INCR ctr after the restore gives %v (%v), want 6", v, err)
	}
	// A second client at the same time as the first.
	c2, err := dialRedis(addr)
	if err != nil {
		t.Fatal(err)
	}
	defer c2.Close()
	if v, err := c2.do("SET", "after", "restore"); err != nil || v != "OK" {
		t.Fatalf("SET from a second client gives %v (%v)", v, err)
	}
	if v, err := c.do("GET", "after"); err != nil || !bytes.Equal(asBytes(v), []byte("restore")) {
		t.Errorf("GET after (set by the other client) gives %v (%v)", v, err)
	}
	if v, err := c.do("DBSIZE"); err != nil || v != int64(redisKeys+3) {
		t.Errorf("DBSIZE gives %v (%v), want %d", v, err, redisKeys+3)
	}
}

// seqReport is what seqpipe's producer and consumer report.
type seqReport struct {
	Name     string `json:"name"`
	PID      int    `json:"pid"`
	PPID     int    `json:"ppid"`
	PGID     int    `json:"pgid"`
	SID      int    `json:"sid"`
	Seq      int64  `json:"seq"`
	Written  uint64 `json:"written"`
	Expect   uint64 `json:"expect"`
	Errors   uint64 `json:"errors"`
	BadGot   uint64 `json:"bad_got"`
	BadWant  uint64 `json:"bad_want"`
	Pending  int    `json:"pending"`
	PipeSize int    `json:"pipe_size"`
	Paused   bool   `json:"paused"`
}

// seqPipeline is a running `sh -c 'seqpipe produce | seqpipe consume'`.
type seqPipeline struct {
	p        *program
	dir      string
	prod     seqReport // the last reports
	cons     seqReport
	prodPath string
	consPath string
}

// poke gets a new report from both ends: the consumer first, then the
// producer, so that with a paused consumer everything the producer wrote is
// either read or pending.
func (sp *seqPipeline) poke(t *testing.T) {
	t.Helper()
	pokeReport(t, sp.p, sp.cons.PID, sp.consPath, sp.cons.Seq, &sp.cons)
	pokeReport(t, sp.p, sp.prod.PID, sp.prodPath, sp.prod.Seq, &sp.prod)
	if sp.cons.Errors != 0 {
		t.Fatalf("the consumer saw %d numbers out of sequence, the first %d where %d was due",
			sp.cons.Errors, sp.cons.BadGot, sp.cons.BadWant)
	}
}

// togglePause makes the consumer stop or start reading and waits until it
// reports that it did.
func (sp *seqPipeline) togglePause(t *testing.T, paused bool) {
	t.Helper()
	if err := unix.Kill(sp.cons.PID, unix.SIGUSR2); err != nil {
		t.Fatal(err)
	}
	testutil.WaitFor(t, reportTimeout, func() bool {
		pokeReport(t, sp.p, sp.cons.PID, sp.consPath, sp.cons.Seq, &sp.cons)
		return sp.cons.Paused == paused
	}, fmt.Sprintf("the consumer to report paused=%v", paused))
}

// flows waits until the consumer has read past want, without a gap or a
// repeat.
func (sp *seqPipeline) flows(t *testing.T, want uint64) {
	t.Helper()
	testutil.WaitFor(t, startTimeout, func() bool {
		sp.poke(t)
		return sp.cons.Expect > want
	}, fmt.Sprintf("the consumer to read past %d", want))
}

// full waits until the paused consumer's pipe holds data and the producer
// is blocked on it: two rounds of reports agree, and every number written
// is either read or still in the pipe.
func (sp *seqPipeline) full(t *testing.T) {
	t.Helper()
	var last [3]uint64
	testutil.WaitFor(t, startTimeout, func() bool {
		sp.poke(t)
		now := [3]uint64{sp.prod.Written, sp.cons.Expect, uint64(sp.cons.Pending)}
		held := sp.cons.Pending > 0 && sp.prod.Written == sp.cons.Expect+uint64(sp.cons.Pending)/8
		same := now == last
		last = now
		return held && same
	}, "the pipe to fill up behind the paused consumer")
}

// TestProgramShellPipeline checkpoints `sh -c 'producer | consumer'` (dash
// and busybox sh): the producer writes the sequence 0, 1, 2, ... into the
// pipe and the consumer checks every number. "paused": the consumer stops
// reading, the pipe fills up and the producer blocks; after the restore the
// pipe holds the same unread bytes, nothing was written or read meanwhile,
// and once the consumer reads again it sees the sequence go on with no gap
// and no repeat. "flowing": the dump catches both at full speed, with
// whatever is in flight; after the restore the consumer again reads on
// without a gap or a repeat. The shell, producer and consumer keep their
// PIDs, parents, group and session.
func TestProgramShellPipeline(t *testing.T) {
	bin := testutil.BuildC(t, seqpipeC)
	shells := []struct {
		name string
		argv []string // the shell, before -c SCRIPT
	}{
		{"dash", []string{"dash"}},
		{"busybox-sh", []string{"busybox", "sh"}},
	}
	for _, sh := range shells {
		for _, mode := range []string{"paused", "flowing"} {
			t.Run(sh.name+"/"+mode, func(t *testing.T) {
				setup(t)
				testutil.RequireCommand(t, sh.argv[0])
				shellPipeline(t, bin, sh.argv, mode == "paused")
			})
		}
	}
}

func shellPipeline(t *testing.T, bin string, shell []string, paused bool) {
	dir := t.TempDir()
	script := fmt.Sprintf("%[1]s produce %[2]s | %[1]s consume %[2]s", shellQuote(bin), shellQuote(dir))
	p := startProgram(t, "sh", dir, append(slices.Clone(shell), "-c", script)...)
	sp := &seqPipeline{p: p, dir: dir,
		prodPath: filepath.Join(dir, "producer.json"), consPath: filepath.Join(dir, "consumer.json")}
	testutil.WaitFor(t, startTimeout, func() bool {
		p.alive(t)
		return readReport(sp.prodPath, &sp.prod) == nil && readReport(sp.consPath, &sp.cons) == nil
	}, "the first reports of the producer and the consumer")
	for _, r := range []seqReport{sp.prod, sp.cons} {
		if r.PPID != p.root || r.SID != p.root {
			t.Fatalf("%s pid %d has parent %d and session %d, want the shell %d for both", r.Name, r.PID, r.PPID, r.SID, p.root)
		}
	}
	if sp.cons.PipeSize <= 0 {
		t.Fatalf("the consumer's stdin is not a pipe: %+v", sp.cons)
	}
	sp.flows(t, 100000)
	if paused {
		sp.togglePause(t, true)
		sp.full(t)
		t.Logf("pipe of %d bytes holds %d unread bytes; producer wrote %d numbers, consumer read %d",
			sp.cons.PipeSize, sp.cons.Pending, sp.prod.Written, sp.cons.Expect)
	}

	works := func(t *testing.T) {
		if paused {
			prod, cons := sp.prod, sp.cons
			sp.poke(t)
			if sp.prod.Written != prod.Written || sp.cons.Expect != cons.Expect || sp.cons.Pending != cons.Pending {
				t.Fatalf("the pipeline moved while paused: written %d→%d, read %d→%d, pending %d→%d",
					prod.Written, sp.prod.Written, cons.Expect, sp.cons.Expect, cons.Pending, sp.cons.Pending)
			}
			sp.togglePause(t, false)
		}
		sp.flows(t, sp.prod.Written+100000)
	}

	before := p.snapshot(t)
	prod, cons := sp.prod, sp.cons
	img := p.dump(t, works)
	p.restore(t, img)
	checkSameTree(t, before, p.snapshot(t), true)

	sp.poke(t)
	for _, pair := range [][2]seqReport{{prod, sp.prod}, {cons, sp.cons}} {
		b, a := pair[0], pair[1]
		if a.PID != b.PID || a.PPID != b.PPID || a.PGID != b.PGID || a.SID != b.SID {
			t.Errorf("%s: pid/ppid/pgid/sid %d/%d/%d/%d after the restore, %d/%d/%d/%d before",
				b.Name, a.PID, a.PPID, a.PGID, a.SID, b.PID, b.PPID, b.PGID, b.SID)
		}
	}
	if sp.cons.PipeSize != cons.PipeSize {
		t.Errorf("the pipe holds %d bytes after the restore, %d before", sp.cons.PipeSize, cons.PipeSize)
	}
	if paused {
		if !sp.cons.Paused || sp.prod.Written != prod.Written || sp.cons.Expect != cons.Expect || sp.cons.Pending != cons.Pending {
			t.Fatalf("after the restore: paused %v, written %d, read %d, pending %d bytes; before the dump: written %d, read %d, pending %d bytes",
				sp.cons.Paused, sp.prod.Written, sp.cons.Expect, sp.cons.Pending, prod.Written, cons.Expect, cons.Pending)
		}
		sp.togglePause(t, false)
	} else {
		t.Logf("after the restore: written %d, read %d, pending %d bytes", sp.prod.Written, sp.cons.Expect, sp.cons.Pending)
	}
	// Everything written before the dump, and much more, is read in order.
	sp.flows(t, prod.Written+1000000)
}

// shmReport is what each process of shmem.c reports.
type shmReport struct {
	Name      string `json:"name"`
	PID       int    `json:"pid"`
	PPID      int    `json:"ppid"`
	Seq       int64  `json:"seq"`
	Addr      string `json:"addr"`
	Size      int64  `json:"size"`
	Token     uint64 `json:"token"`
	Ticks     uint64 `json:"ticks"`
	PeerToken uint64 `json:"peer_token"`
	PeerTicks uint64 `json:"peer_ticks"`
	Sum       string `json:"sum"`
	PatternOK bool   `json:"pattern_ok"`
}

// shmPair is a running shmem.c: a parent and its child.
type shmPair struct {
	p   *program
	dir string
	r   map[string]*shmReport // by name: "parent", "child"
}

func (sp *shmPair) path(name string) string { return filepath.Join(sp.dir, name+".json") }

func (sp *shmPair) poke(t *testing.T, name string) *shmReport {
	t.Helper()
	r := sp.r[name]
	pokeReport(t, sp.p, r.PID, sp.path(name), r.Seq, r)
	if !r.PatternOK {
		t.Fatalf("%s pid %d finds the shared memory's patterns damaged", name, r.PID)
	}
	return r
}

// exchange makes from store a new token in the shared page and waits until
// the other process reads it there.
func (sp *shmPair) exchange(t *testing.T, from string) {
	t.Helper()
	to := map[string]string{"parent": "child", "child": "parent"}[from]
	token := rand.Uint64() >> 1
	if err := os.WriteFile(filepath.Join(sp.dir, from+".token"), []byte(strconv.FormatUint(token, 10)), 0o644); err != nil {
		t.Fatal(err)
	}
	if err := unix.Kill(sp.r[from].PID, unix.SIGUSR2); err != nil {
		t.Fatal(err)
	}
	testutil.WaitFor(t, reportTimeout, func() bool { return sp.poke(t, from).Token == token },
		fmt.Sprintf("the %s to store token %d", from, token))
	testutil.WaitFor(t, reportTimeout, func() bool { return sp.poke(t, to).PeerToken == token },
		fmt.Sprintf("the %s to read the %s's token %d in the shared memory", to, from, token))
}

// checkSharedMapping checks that pid maps addr as a shared mapping.
func checkSharedMapping(t *testing.T, pid int, addr string) {
	t.Helper()
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/maps", pid))
	if err != nil {
		t.Fatal(err)
	}
	start := strings.TrimPrefix(addr, "0x")
	for _, line := range strings.Split(string(b), "\n") {
		f := strings.Fields(line)
		if len(f) >= 2 && strings.HasPrefix(f[0], start+"-") {
			if !strings.HasSuffix(f[1], "s") {
				t.Errorf("pid %d maps %s as %q, not shared: %s", pid, addr, f[1], line)
			}
			return
		}
	}
	t.Errorf("pid %d has no mapping at %s", pid, addr)
}

// TestProgramSharedAnonMemory checkpoints a parent and its child sharing 4
// MiB of MAP_SHARED|MAP_ANONYMOUS memory (both halves filled with patterns,
// a header page where each writes a token and a tick counter). After the
// restore: the same PIDs and parent, the mapping at the same address and
// still shared in /proc/PID/maps, the same content (hash, patterns), the
// tokens from before the dump, the child's ticks seen moving by the parent,
// and a new token written by either side read by the other: the memory was
// restored shared, not as two copies.
func TestProgramSharedAnonMemory(t *testing.T) {
	setup(t)
	bin := testutil.BuildC(t, shmemC)
	dir := t.TempDir()
	p := startProgram(t, "shmem", dir, bin, dir, "4")
	sp := &shmPair{p: p, dir: dir, r: map[string]*shmReport{"parent": {}, "child": {}}}
	testutil.WaitFor(t, startTimeout, func() bool {
		p.alive(t)
		return readReport(sp.path("parent"), sp.r["parent"]) == nil && readReport(sp.path("child"), sp.r["child"]) == nil
	}, "the first reports of the parent and the child")
	par, chi := sp.poke(t, "parent"), sp.poke(t, "child")
	if par.PID != p.root || chi.PPID != par.PID {
		t.Fatalf("parent %d (root %d), child %d of %d", par.PID, p.root, chi.PID, chi.PPID)
	}
	if par.Addr != chi.Addr || par.Sum != chi.Sum {
		t.Fatalf("parent and child see different memory: %+v, %+v", par, chi)
	}
	sp.exchange(t, "child")
	sp.exchange(t, "parent")
	checkSharedMapping(t, par.PID, par.Addr)
	checkSharedMapping(t, chi.PID, chi.Addr)

	works := func(t *testing.T) {
		sp.exchange(t, "child")
		sp.exchange(t, "parent")
	}

	before := p.snapshot(t)
	parBefore, chiBefore := *sp.poke(t, "parent"), *sp.poke(t, "child")
	img := p.dump(t, works)
	p.restore(t, img)
	checkSameTree(t, before, p.snapshot(t), true)

	par, chi = sp.poke(t, "parent"), sp.poke(t, "child")
	for _, pair := range [][2]shmReport{{parBefore, *par}, {chiBefore, *chi}} {
		b, a := pair[0], pair[1]
		if a.PID != b.PID || a.PPID != b.PPID || a.Addr != b.Addr || a.Size != b.Size {
			t.Errorf("%s: pid %d ppid %d mapping %s+%d after the restore; before pid %d ppid %d mapping %s+%d",
				b.Name, a.PID, a.PPID, a.Addr, a.Size, b.PID, b.PPID, b.Addr, b.Size)
		}
		if a.Sum != b.Sum || a.Token != b.Token || a.PeerToken != b.PeerToken {
			t.Errorf("%s: hash %s token %d peer token %d after the restore; before %s %d %d",
				b.Name, a.Sum, a.Token, a.PeerToken, b.Sum, b.Token, b.PeerToken)
		}
		if a.Ticks < b.Ticks {
			t.Errorf("%s: ticks went back from %d to %d", b.Name, b.Ticks, a.Ticks)
		}
	}
	checkSharedMapping(t, par.PID, par.Addr)
	checkSharedMapping(t, chi.PID, chi.Addr)
	seen := par.PeerTicks
	testutil.WaitFor(t, reportTimeout, func() bool { return sp.poke(t, "parent").PeerTicks > seen },
		"the parent to see the restored child's ticks move")
	sp.exchange(t, "child")
	sp.exchange(t, "parent")
}
