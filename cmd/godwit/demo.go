package main

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"time"

	"github.com/spf13/cobra"
	"golang.org/x/sys/unix"

	"github.com/godwit-dev/godwit/checkpoint"
	"github.com/godwit-dev/godwit/restore"
)

func init() { register(newDemoCommand) }

// demoProgram counts once every 200 ms into the file named by its argument.
const demoProgram = `import sys, time
n = 0
with open(sys.argv[1], "a", buffering=1) as log:
    while True:
        n += 1
        log.write("%d\n" % n)
        time.sleep(0.2)
`

func newDemoCommand() *cobra.Command {
	return &cobra.Command{
		Use:   "demo",
		Short: "show a checkpoint and restore of a small counting program (needs root and python3)",
		Args:  cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			return runDemo(cmd.Context(), cmd.OutOrStdout())
		},
	}
}

// demo holds the state of one run of godwit demo.
type demo struct {
	out  io.Writer
	dir  string
	log  string // the counting program's output
	pid  int
	proc *exec.Cmd // the original process, until it is reaped
}

func runDemo(ctx context.Context, out io.Writer) error {
	if ctx == nil {
		ctx = context.Background()
	}
	python, err := findPython()
	if err != nil {
		return err
	}
	// A restored process becomes a child of the nearest child-subreaper
	// ancestor of godwit: make that us, so the demo can reap it at the end.
	if err := unix.Prctl(unix.PR_SET_CHILD_SUBREAPER, 1, 0, 0, 0); err != nil {
		return fmt.Errorf("demo: prctl(PR_SET_CHILD_SUBREAPER): %w", err)
	}
	dir, err := os.MkdirTemp("", "godwit-demo-")
	if err != nil {
		return err
	}
	defer os.RemoveAll(dir)
	d := &demo{out: out, dir: dir, log: filepath.Join(dir, "count.log")}
	defer d.stop()

	d.say("godwit demo: checkpoint a running program, kill it, and bring it back where it was.\n\n")
	if err := d.start(python); err != nil {
		return err
	}
	d.say("1. Started a Python program (pid %d) that appends a count to %s every 200 ms.\n", d.pid, d.log)
	if _, err := d.waitCount(5, 10*time.Second); err != nil {
		return err
	}
	d.say("   Its log so far: %s\n\n", d.tail(5))

	img := filepath.Join(dir, "demo.img")
	d.say("2. Checkpointing pid %d into %s ...\n", d.pid, img)
	st, err := d.dump(ctx, img)
	if err != nil {
		return err
	}
	d.say("   Done in %v (the process was frozen for %v): %d pages (%d of them zero), %s image.\n",
		round(st.TotalTime), round(st.FrozenTime), st.Pages, st.ZeroPages, size(st.ImageBytes))
	d.say("   The dump killed the process: ")
	if _, err := os.Stat(fmt.Sprintf("/proc/%d", d.pid)); err == nil {
		return fmt.Errorf("demo: pid %d still exists after the dump", d.pid)
	}
	last, err := d.lastCount()
	if err != nil {
		return err
	}
	before, _ := d.counts()
	d.say("/proc/%d is gone, and the count stopped at %d.\n", d.pid, last)
	time.Sleep(time.Second) // let the reader see that nothing moves
	if now, _ := d.lastCount(); now != last {
		return fmt.Errorf("demo: the count moved from %d to %d while the process was gone", last, now)
	}
	d.say("   One second later it is still %d.\n\n", last)

	d.say("3. Restoring from %s ...\n", img)
	res, err := d.restore(ctx, img)
	if err != nil {
		return err
	}
	same := "the same PID"
	if res.PID != d.pid {
		same = fmt.Sprintf("NOT the old PID %d", d.pid)
	}
	d.say("   Restored in %v as pid %d (%s).\n", round(res.Duration), res.PID, same)
	d.pid = res.PID
	after, err := d.waitCount(last+3, 10*time.Second)
	if err != nil {
		return err
	}
	d.say("   Its log now: %s\n", d.tail(6))
	if len(after) <= len(before) || after[len(before)] != last+1 {
		return fmt.Errorf("demo: after the restore the log does not go on from %d: %v", last, after[len(before):])
	}
	d.say("   It went on from %d, not from 1: its memory, registers and open file came back.\n\n", last)

	d.say("4. Stopping the program and cleaning up.\n")
	if err := d.stop(); err != nil {
		return err
	}
	d.say("\nThat was godwit: dump with `godwit dump --image FILE PID`, restore with `godwit restore --image FILE`.\n")
	return nil
}

func findPython() (string, error) {
	if _, err := os.Stat("/usr/bin/python3"); err == nil {
		return "/usr/bin/python3", nil
	}
	p, err := exec.LookPath("python3")
	if err != nil {
		return "", errors.New("demo: python3 is needed to run the sample program (apt-get install python3)")
	}
	return p, nil
}

func (d *demo) say(format string, args ...any) { fmt.Fprintf(d.out, format, args...) }

// start runs the counting program with stdin from /dev/null and its output
// in files (godwit does not checkpoint pipes or terminals yet).
func (d *demo) start(python string) error {
	// Descriptors godwit inherited without close-on-exec (a pipe from a
	// shell, say) must not reach the program: it could not be dumped.
	if err := unix.CloseRange(3, ^uint(0), unix.CLOSE_RANGE_CLOEXEC); err != nil {
		return fmt.Errorf("demo: close_range: %w", err)
	}
	null, err := os.Open(os.DevNull)
	if err != nil {
		return err
	}
	defer null.Close()
	out, err := os.Create(filepath.Join(d.dir, "program.out"))
	if err != nil {
		return err
	}
	defer out.Close()
	d.proc = exec.Command(python, "-u", "-c", demoProgram, d.log)
	d.proc.Stdin, d.proc.Stdout, d.proc.Stderr = null, out, out
	if err := d.proc.Start(); err != nil {
		return fmt.Errorf("demo: start %s: %w", python, err)
	}
	d.pid = d.proc.Process.Pid
	return nil
}

func (d *demo) dump(ctx context.Context, img string) (*checkpoint.Stats, error) {
	f, err := os.Create(img)
	if err != nil {
		return nil, err
	}
	st, err := checkpoint.Dump(ctx, d.pid, f, checkpoint.Options{})
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	if err != nil {
		return nil, fmt.Errorf("demo: dump pid %d: %w", d.pid, err)
	}
	// The dumped process was our child: reap it.
	d.proc.Wait()
	d.proc = nil
	return st, nil
}

func (d *demo) restore(ctx context.Context, img string) (*restore.Result, error) {
	f, err := os.Open(img)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	res, err := restore.Restore(ctx, f, restore.Options{})
	if err != nil {
		return nil, fmt.Errorf("demo: restore: %w", err)
	}
	return res, nil
}

// stop kills the program, original or restored, and reaps it. It may be
// called more than once.
func (d *demo) stop() error {
	if d.pid == 0 {
		return nil
	}
	pid := d.pid
	d.pid = 0
	if d.proc != nil {
		d.proc.Process.Kill()
		d.proc.Wait()
		d.proc = nil
		return nil
	}
	// A restored program is a child of ours (we are its subreaper).
	if err := unix.Kill(pid, unix.SIGKILL); err != nil {
		return fmt.Errorf("demo: kill pid %d: %w", pid, err)
	}
	var ws unix.WaitStatus
	if _, err := unix.Wait4(pid, &ws, 0, nil); err != nil && err != unix.ECHILD {
		return fmt.Errorf("demo: reap pid %d: %w", pid, err)
	}
	return nil
}

// counts returns the numbers in the log.
func (d *demo) counts() ([]int, error) {
	f, err := os.Open(d.log)
	if err != nil {
		if errors.Is(err, os.ErrNotExist) {
			return nil, nil
		}
		return nil, err
	}
	defer f.Close()
	var n []int
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		if v, err := strconv.Atoi(strings.TrimSpace(sc.Text())); err == nil {
			n = append(n, v)
		}
	}
	return n, sc.Err()
}

func (d *demo) lastCount() (int, error) {
	n, err := d.counts()
	if err != nil || len(n) == 0 {
		return 0, fmt.Errorf("demo: the program wrote no count (%v)", err)
	}
	return n[len(n)-1], nil
}

// waitCount waits until the log's last number is at least want and returns
// all its numbers.
func (d *demo) waitCount(want int, timeout time.Duration) ([]int, error) {
	deadline := time.Now().Add(timeout)
	for {
		n, err := d.counts()
		if err != nil {
			return nil, err
		}
		if len(n) > 0 && n[len(n)-1] >= want {
			return n, nil
		}
		if time.Now().After(deadline) {
			return nil, fmt.Errorf("demo: the program did not count to %d within %v (log: %v)", want, timeout, n)
		}
		time.Sleep(50 * time.Millisecond)
	}
}

// tail formats the last k numbers of the log.
func (d *demo) tail(k int) string {
	n, _ := d.counts()
	if len(n) > k {
		n = n[len(n)-k:]
	}
	s := make([]string, len(n))
	for i, v := range n {
		s[i] = strconv.Itoa(v)
	}
	return strings.Join(s, " ")
}

func round(t time.Duration) time.Duration { return t.Round(100 * time.Microsecond) }

func size(b int64) string {
	if b >= 1<<20 {
		return fmt.Sprintf("%.1f MiB", float64(b)/(1<<20))
	}
	return fmt.Sprintf("%.1f KiB", float64(b)/(1<<10))
}
