package unix

import (
	"errors"
	"os"
	"testing"

	"golang.org/x/sys/unix"
)

func TestClone3SetTIDInUse(t *testing.T) {
	if os.Geteuid() != 0 {
		t.Skip("set_tid in the initial PID namespace needs root (CAP_CHECKPOINT_RESTORE)")
	}
	args := CloneArgs{ExitSignal: uint64(unix.SIGCHLD)}
	pid, err := Clone3Probe(&args, CloneArgsSizeVer1, []int32{1})
	if pid > 0 {
		reap(t, pid)
		t.Fatalf("clone3 with set_tid [1] created process %d", pid)
	}
	if !errors.Is(err, unix.EEXIST) {
		t.Fatalf("clone3 with set_tid [1]: %v, want EEXIST", err)
	}
}

func TestClone3ProbeChildExitsAtOnce(t *testing.T) {
	args := CloneArgs{ExitSignal: uint64(unix.SIGCHLD)}
	pid, err := Clone3Probe(&args, CloneArgsSizeVer0, nil)
	if err != nil {
		t.Fatalf("plain clone3: %v", err)
	}
	if ws := reap(t, pid); !ws.Exited() || ws.ExitStatus() != 0 {
		t.Fatalf("probe child %d: status %#x, want exit 0", pid, uint32(ws))
	}
}

func TestClone3BadSetTIDSize(t *testing.T) {
	args := CloneArgs{ExitSignal: uint64(unix.SIGCHLD)}
	tids := make([]int32, MaxPIDNSLevel+1)
	pid, err := Clone3Probe(&args, CloneArgsSizeVer1, tids)
	if pid > 0 {
		reap(t, pid)
		t.Fatalf("clone3 with %d set_tid entries created process %d", len(tids), pid)
	}
	if !errors.Is(err, unix.EINVAL) {
		t.Fatalf("clone3 with %d set_tid entries: %v, want EINVAL", len(tids), err)
	}
}

func reap(t *testing.T, pid int) unix.WaitStatus {
	t.Helper()
	var ws unix.WaitStatus
	if _, err := unix.Wait4(pid, &ws, 0, nil); err != nil {
		t.Fatalf("wait for pid %d: %v", pid, err)
	}
	return ws
}
