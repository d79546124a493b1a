package restore

import (
	"testing"

	"golang.org/x/sys/unix"

	"github.com/godwit-dev/godwit/internal/ptrace"
)

func TestFixRestart(t *testing.T) {
	neg := func(n int64) uint64 { return uint64(-n) }
	tests := []struct {
		name             string
		in               ptrace.Regs
		wantRip, wantRax uint64
		wantOrig         uint64
	}{
		{"user space", ptrace.Regs{Rip: 0x1000, Rax: 5, Orig_rax: ^uint64(0)}, 0x1000, 5, ^uint64(0)},
		{"nanosleep restart block", ptrace.Regs{Rip: 0x1002, Rax: neg(516), Orig_rax: unix.SYS_CLOCK_NANOSLEEP}, 0x1000, unix.SYS_CLOCK_NANOSLEEP, ^uint64(0)},
		{"read ERESTARTSYS", ptrace.Regs{Rip: 0x2002, Rax: neg(512), Orig_rax: unix.SYS_READ}, 0x2000, unix.SYS_READ, ^uint64(0)},
		{"pause ERESTARTNOHAND", ptrace.Regs{Rip: 0x3002, Rax: neg(514), Orig_rax: unix.SYS_PAUSE}, 0x3000, unix.SYS_PAUSE, ^uint64(0)},
		{"finished syscall", ptrace.Regs{Rip: 0x4002, Rax: 3, Orig_rax: unix.SYS_WRITE}, 0x4002, 3, ^uint64(0)},
		{"EINTR is a result", ptrace.Regs{Rip: 0x5002, Rax: neg(4), Orig_rax: unix.SYS_READ}, 0x5002, neg(4), ^uint64(0)},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			r := tt.in
			fixRestart(&r)
			if r.Rip != tt.wantRip || r.Rax != tt.wantRax || r.Orig_rax != tt.wantOrig {
				t.Errorf("got rip %#x rax %#x orig %#x, want %#x %#x %#x", r.Rip, r.Rax, r.Orig_rax, tt.wantRip, tt.wantRax, tt.wantOrig)
			}
		})
	}
}

func TestFreeGap(t *testing.T) {
	spans := []span{{0x10000, 0x20000}, {0x100000000, 0x100002000}, {0x100003000, 0x100004000}}
	got, ok := freeGap(append([]span(nil), spans...), 0x1000, 1<<32)
	if !ok || got != 0x100002000 {
		t.Errorf("one page: got %#x %v, want 0x100002000", got, ok)
	}
	got, ok = freeGap(append([]span(nil), spans...), 0x2000, 1<<32)
	if !ok || got != 0x100004000 {
		t.Errorf("two pages: got %#x %v, want 0x100004000", got, ok)
	}
	if _, ok := freeGap([]span{{0, 0x7fff00000000}}, 0x1000, 0); ok {
		t.Error("a full address space has a gap")
	}
}

func TestCloneArgs(t *testing.T) {
	b := cloneArgs(unix.CLONE_VM, uint64(unix.SIGCHLD), 0x1234, 1)
	if len(b) != 88 {
		t.Fatalf("clone_args is %d bytes, want 88", len(b))
	}
	if b[0] != byte(unix.CLONE_VM&0xff) || b[32] != byte(unix.SIGCHLD) || b[64] != 0x34 || b[72] != 1 {
		t.Errorf("clone_args fields misplaced: % x", b)
	}
}

func TestSetTIDs(t *testing.T) {
	b := setTIDs([]int{5000, 1})
	if len(b) != 8 || b[0] != 1 || b[4] != 0x88 || b[5] != 0x13 {
		t.Errorf("set_tid for [5000 1] = % x, want the innermost id (1) first", b)
	}
}
