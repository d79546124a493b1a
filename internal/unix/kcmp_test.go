package unix

import (
	"os"
	"testing"

	"golang.org/x/sys/unix"
)

func TestKcmpFile(t *testing.T) {
	f, err := os.Open(os.DevNull)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	g, err := os.Open(os.DevNull)
	if err != nil {
		t.Fatal(err)
	}
	defer g.Close()
	dup, err := unix.Dup(int(f.Fd()))
	if err != nil {
		t.Fatal(err)
	}
	defer unix.Close(dup)

	self := os.Getpid()
	same, err := Kcmp(self, self, KCMP_FILE, f.Fd(), uintptr(dup))
	if err != nil {
		t.Fatalf("kcmp of a dup'd fd: %v", err)
	}
	if same != 0 {
		t.Errorf("kcmp of fd %d and its dup %d = %d, want 0", f.Fd(), dup, same)
	}
	other, err := Kcmp(self, self, KCMP_FILE, f.Fd(), g.Fd())
	if err != nil {
		t.Fatalf("kcmp of two opens: %v", err)
	}
	if other == 0 {
		t.Errorf("kcmp of two separate opens of %s = 0, want non-zero", os.DevNull)
	}
	vm, err := Kcmp(self, self, KCMP_VM, 0, 0)
	if err != nil || vm != 0 {
		t.Errorf("kcmp KCMP_VM of self = %d, %v; want 0", vm, err)
	}
}
