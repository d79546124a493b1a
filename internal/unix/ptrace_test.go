package unix

import (
	"encoding/binary"
	"errors"
	"fmt"
	"os"
	"runtime"
	"strings"
	"syscall"
	"testing"
	"time"

	"golang.org/x/sys/unix"
)

// tracee is a `sleep` seized and stopped by the test's (locked) thread.
type tracee struct {
	t   *testing.T
	pid int
}

// startTracee starts sleep, waits until it sleeps, seizes and interrupts it.
// It locks the calling goroutine to its thread for the rest of the test.
func startTracee(t *testing.T) *tracee {
	t.Helper()
	runtime.LockOSThread()
	t.Cleanup(runtime.UnlockOSThread)
	p, err := os.StartProcess("/bin/sleep", []string{"sleep", "1000"}, &os.ProcAttr{
		Env: []string{},
		Sys: &syscall.SysProcAttr{Pdeathsig: syscall.SIGKILL},
	})
	if err != nil {
		t.Skipf("no sleep to trace: %v", err)
	}
	tr := &tracee{t: t, pid: p.Pid}
	t.Cleanup(func() { tr.kill(); p.Release() })
	waitSleeping(t, p.Pid)
	if err := PtraceSeize(p.Pid, unix.PTRACE_O_EXITKILL); err != nil {
		if errors.Is(err, unix.EPERM) {
			t.Skipf("ptrace not permitted here: %v", err)
		}
		t.Fatalf("seize pid %d: %v", p.Pid, err)
	}
	if err := PtraceInterrupt(p.Pid); err != nil {
		t.Fatalf("interrupt pid %d: %v", p.Pid, err)
	}
	var ws unix.WaitStatus
	if _, err := unix.Wait4(p.Pid, &ws, unix.WALL, nil); err != nil {
		t.Fatalf("wait pid %d: %v", p.Pid, err)
	}
	if !ws.Stopped() || ws.TrapCause() != unix.PTRACE_EVENT_STOP {
		t.Fatalf("pid %d: wait status %#x, want a PTRACE_EVENT_STOP", p.Pid, uint32(ws))
	}
	return tr
}

func (tr *tracee) kill() {
	unix.Kill(tr.pid, unix.SIGKILL)
	for {
		var ws unix.WaitStatus
		_, err := unix.Wait4(tr.pid, &ws, unix.WALL, nil)
		if err != nil || ws.Exited() || ws.Signaled() {
			return
		}
	}
}

func waitSleeping(t *testing.T, pid int) {
	t.Helper()
	deadline := time.Now().Add(5 * time.Second)
	for time.Now().Before(deadline) {
		b, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
		if err != nil {
			t.Fatal(err)
		}
		s := string(b)
		if i := strings.LastIndexByte(s, ')'); i > 0 && strings.HasPrefix(s[i:], ") S") {
			return
		}
		time.Sleep(time.Millisecond)
	}
	t.Fatalf("pid %d never went to sleep", pid)
}

func TestPtraceRegSets(t *testing.T) {
	tr := startTracee(t)

	regs := make([]byte, UserRegsSize)
	n, err := PtraceGetRegSet(tr.pid, NT_PRSTATUS, regs)
	if err != nil {
		t.Fatalf("NT_PRSTATUS: %v", err)
	}
	if n != UserRegsSize {
		t.Fatalf("NT_PRSTATUS: %d bytes, want %d", n, UserRegsSize)
	}
	le := binary.LittleEndian
	origRax := le.Uint64(regs[15*8:])
	rax := int64(le.Uint64(regs[10*8:]))
	if origRax != unix.SYS_CLOCK_NANOSLEEP && origRax != unix.SYS_NANOSLEEP {
		t.Errorf("sleeping tracee: orig_rax %d, want a nanosleep", origRax)
	}
	t.Logf("sleeping tracee: orig_rax %d rax %d", origRax, rax)
	if err := PtraceSetRegSet(tr.pid, NT_PRSTATUS, regs); err != nil {
		t.Fatalf("set NT_PRSTATUS back: %v", err)
	}

	size, err := XstateSize()
	if err != nil {
		t.Skipf("no XSAVE: %v", err)
	}
	xs := make([]byte, size+4096)
	n, err = PtraceGetRegSet(tr.pid, NT_X86_XSTATE, xs)
	if err != nil {
		t.Fatalf("NT_X86_XSTATE: %v", err)
	}
	if n != size {
		t.Fatalf("NT_X86_XSTATE: %d bytes, CPUID says %d", n, size)
	}
	if err := PtraceSetRegSet(tr.pid, NT_X86_XSTATE, xs[:n]); err != nil {
		t.Fatalf("set NT_X86_XSTATE back: %v", err)
	}
}

func TestPtraceSigmask(t *testing.T) {
	tr := startTracee(t)
	old, err := PtraceGetSigmask(tr.pid)
	if err != nil {
		t.Fatalf("get sigmask: %v", err)
	}
	want := old | 1<<(unix.SIGUSR1-1) | 1<<(unix.SIGUSR2-1)
	if err := PtraceSetSigmask(tr.pid, want); err != nil {
		t.Fatalf("set sigmask: %v", err)
	}
	got, err := PtraceGetSigmask(tr.pid)
	if err != nil {
		t.Fatal(err)
	}
	if got != want {
		t.Fatalf("sigmask %#x after setting %#x", got, want)
	}

	// Blocked signals stay queued: one for the thread, one for the process.
	if err := unix.Tgkill(tr.pid, tr.pid, unix.SIGUSR1); err != nil {
		t.Fatal(err)
	}
	if err := unix.Kill(tr.pid, unix.SIGUSR2); err != nil {
		t.Fatal(err)
	}
	buf := make([]Siginfo, 4)
	n, err := PtracePeekSiginfo(tr.pid, 0, false, buf)
	if err != nil {
		t.Fatalf("peek private siginfo: %v", err)
	}
	if n != 1 || buf[0].Signo() != int32(unix.SIGUSR1) || buf[0].Code() != -6 /* SI_TKILL */ {
		t.Fatalf("private queue: %d entries, first signo %d code %d; want SIGUSR1 from tgkill",
			n, buf[0].Signo(), buf[0].Code())
	}
	n, err = PtracePeekSiginfo(tr.pid, 0, true, buf)
	if err != nil {
		t.Fatalf("peek shared siginfo: %v", err)
	}
	if n != 1 || buf[0].Signo() != int32(unix.SIGUSR2) || buf[0].Code() != 0 /* SI_USER */ {
		t.Fatalf("shared queue: %d entries, first signo %d code %d; want SIGUSR2 from kill",
			n, buf[0].Signo(), buf[0].Code())
	}
	if n, err := PtracePeekSiginfo(tr.pid, 1, true, buf); err != nil || n != 0 {
		t.Fatalf("peek past the end: %d, %v; want 0", n, err)
	}
}

func TestPtraceRseqConfig(t *testing.T) {
	tr := startTracee(t)
	c, err := PtraceGetRseqConfig(tr.pid)
	if err != nil {
		t.Fatalf("PTRACE_GET_RSEQ_CONFIGURATION: %v", err)
	}
	if c.RseqABIPointer == 0 {
		t.Skip("this sleep's libc registers no rseq")
	}
	if c.Signature != 0x53053053 || c.RseqABISize < 32 {
		t.Fatalf("rseq config %+v: want glibc's signature 0x53053053 and size >= 32", c)
	}
	t.Logf("rseq %+v", c)
}

func TestPtraceSyscallInfo(t *testing.T) {
	tr := startTracee(t)
	info, n, err := PtraceGetSyscallInfo(tr.pid)
	if err != nil {
		t.Fatalf("PTRACE_GET_SYSCALL_INFO: %v", err)
	}
	const auditArchX86_64 = 0xc000003e
	if info.Arch != auditArchX86_64 || info.InstructionPointer == 0 || info.StackPointer == 0 {
		t.Fatalf("syscall info (%d bytes): %+v", n, info)
	}
	if info.Op != PTRACE_SYSCALL_INFO_NONE {
		t.Fatalf("at an interrupt stop: op %d, want NONE", info.Op)
	}
}

func TestGetRobustList(t *testing.T) {
	tr := startTracee(t)
	head, n, err := GetRobustList(tr.pid)
	if err != nil {
		t.Fatalf("get_robust_list: %v", err)
	}
	if head == 0 || n != 24 {
		t.Fatalf("robust list of a glibc process: head %#x len %d; want a head of 24 bytes", head, n)
	}
	self, _, err := GetRobustList(0)
	if err != nil {
		t.Fatalf("get_robust_list of this thread: %v", err)
	}
	t.Logf("tracee head %#x, this thread's head %#x", head, self)
}
