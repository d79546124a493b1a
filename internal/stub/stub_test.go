package stub

import (
	"bytes"
	"debug/elf"
	"errors"
	"fmt"
	"os"
	"strings"
	"syscall"
	"testing"
	"time"
)

func TestImageIsValidELF(t *testing.T) {
	img := Image()
	if len(img) >= pageSize {
		t.Fatalf("image is %d bytes, want less than one page", len(img))
	}
	f, err := elf.NewFile(bytes.NewReader(img))
	if err != nil {
		t.Fatalf("parse image: %v", err)
	}
	if f.Type != elf.ET_EXEC || f.Machine != elf.EM_X86_64 || f.Class != elf.ELFCLASS64 {
		t.Fatalf("image header: type %v machine %v class %v", f.Type, f.Machine, f.Class)
	}
	if f.Entry != EntryAddr {
		t.Fatalf("entry %#x, want %#x", f.Entry, EntryAddr)
	}
	if len(f.Progs) != 1 {
		t.Fatalf("%d program headers, want 1", len(f.Progs))
	}
	p := f.Progs[0]
	if p.Type != elf.PT_LOAD || p.Flags != elf.PF_R|elf.PF_X || p.Vaddr != LoadAddr || p.Off != 0 {
		t.Fatalf("segment %+v", p.ProgHeader)
	}
	at := SyscallAddr - LoadAddr
	if img[at] != 0x0f || img[at+1] != 0x05 {
		t.Fatalf("bytes at SyscallAddr: % x, want 0f 05", img[at:at+2])
	}
}

func TestStartPauses(t *testing.T) {
	p, err := Start(&syscall.SysProcAttr{Pdeathsig: syscall.SIGKILL})
	if err != nil {
		t.Fatal(err)
	}
	defer func() {
		p.Kill()
		st, err := p.Wait()
		if err != nil {
			t.Errorf("reap stub: %v", err)
		} else if ws := st.Sys().(syscall.WaitStatus); !ws.Signaled() || ws.Signal() != syscall.SIGKILL {
			t.Errorf("stub ended with %v, want SIGKILL", st)
		}
	}()

	waitState(t, p.Pid, 'S')

	maps, err := os.ReadFile(fmt.Sprintf("/proc/%d/maps", p.Pid))
	if err != nil {
		t.Fatal(err)
	}
	if !strings.HasPrefix(string(maps), "00010000-00011000 r-xp 00000000 ") {
		t.Fatalf("first mapping is not the stub segment:\n%s", maps)
	}

	mem, err := os.Open(fmt.Sprintf("/proc/%d/mem", p.Pid))
	if err != nil {
		t.Fatal(err)
	}
	defer mem.Close()
	b := make([]byte, 2)
	if _, err := mem.ReadAt(b, int64(SyscallAddr)); err != nil {
		t.Fatalf("read stub memory at %#x: %v", SyscallAddr, err)
	}
	if b[0] != 0x0f || b[1] != 0x05 {
		t.Fatalf("bytes at %#x: % x, want 0f 05", SyscallAddr, b)
	}

	env, err := os.ReadFile(fmt.Sprintf("/proc/%d/environ", p.Pid))
	if err != nil {
		t.Fatal(err)
	}
	if len(env) != 0 {
		t.Fatalf("stub environment is %q, want empty", env)
	}
}

func TestStartTwiceSharesMemfd(t *testing.T) {
	for range 2 {
		p, err := Start(nil)
		if err != nil {
			t.Fatal(err)
		}
		p.Kill()
		p.Wait()
	}
	f1, _ := imageFile()
	f2, _ := imageFile()
	if f1 != f2 {
		t.Fatal("memfd created twice")
	}
}

// waitState polls /proc/PID/stat until the process is in state want.
func waitState(t *testing.T, pid int, want byte) {
	t.Helper()
	deadline := time.Now().Add(5 * time.Second)
	for {
		b, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
		if err != nil {
			t.Fatal(err)
		}
		s := string(b)
		i := strings.LastIndexByte(s, ')')
		if i >= 0 && i+2 < len(s) && s[i+2] == want {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("pid %d: state never became %c: %s", pid, want, s)
		}
		time.Sleep(time.Millisecond)
	}
}

func TestStartInNewNamespaces(t *testing.T) {
	p, err := Start(&syscall.SysProcAttr{
		Cloneflags:  syscall.CLONE_NEWUSER | syscall.CLONE_NEWPID,
		UidMappings: []syscall.SysProcIDMap{{ContainerID: 0, HostID: os.Geteuid(), Size: 1}},
		GidMappings: []syscall.SysProcIDMap{{ContainerID: 0, HostID: os.Getegid(), Size: 1}},
		Pdeathsig:   syscall.SIGKILL,
	})
	if errors.Is(err, syscall.EPERM) || errors.Is(err, syscall.ENOSPC) {
		t.Skipf("no unprivileged user namespaces here: %v", err)
	}
	if err != nil {
		t.Fatalf("start stub in new user and PID namespaces: %v", err)
	}
	defer func() { p.Kill(); p.Wait() }()
	waitState(t, p.Pid, 'S')
	status, err := os.ReadFile(fmt.Sprintf("/proc/%d/status", p.Pid))
	if err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(string(status), fmt.Sprintf("NSpid:\t%d\t1\n", p.Pid)) {
		t.Fatalf("stub is not pid 1 of a new PID namespace:\n%s", status)
	}
}
