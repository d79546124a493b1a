package seccomp

import (
	"bytes"
	"encoding/binary"
	"testing"

	specs "github.com/opencontainers/runtime-spec/specs-go"
	"golang.org/x/sys/unix"
)

// run interprets a classic BPF seccomp program on d (the subset Compile
// emits) and returns the action.
func run(t *testing.T, prog []unix.SockFilter, d Data) uint32 {
	t.Helper()
	var buf [64]byte
	binary.LittleEndian.PutUint32(buf[0:], uint32(d.Nr))
	binary.LittleEndian.PutUint32(buf[4:], d.Arch)
	binary.LittleEndian.PutUint64(buf[8:], d.InstructionPointer)
	for i, a := range d.Args {
		binary.LittleEndian.PutUint64(buf[16+8*i:], a)
	}
	var acc uint32
	for pc := 0; pc < len(prog); pc++ {
		in := prog[pc]
		switch in.Code {
		case ldAbs:
			acc = binary.LittleEndian.Uint32(buf[in.K:])
		case andK:
			acc &= in.K
		case retK:
			return in.K
		case jaK:
			pc += int(in.K)
		case jeqK, jgtK, jgeK:
			var ok bool
			switch in.Code {
			case jeqK:
				ok = acc == in.K
			case jgtK:
				ok = acc > in.K
			case jgeK:
				ok = acc >= in.K
			}
			if ok {
				pc += int(in.Jt)
			} else {
				pc += int(in.Jf)
			}
		default:
			t.Fatalf("unexpected instruction %#x at %d", in.Code, pc)
		}
	}
	t.Fatal("program fell off the end")
	return 0
}

func TestCompileArchAndX32(t *testing.T) {
	prog, _, err := Compile(nil, Policy{})
	if err != nil {
		t.Fatal(err)
	}
	if got := run(t, prog, Data{Nr: 1, Arch: unix.AUDIT_ARCH_I386}); got != unix.SECCOMP_RET_KILL_PROCESS {
		t.Errorf("foreign arch: %#x", got)
	}
	if got := run(t, prog, Data{Nr: 1 | x32Bit, Arch: nativeArch}); got != unix.SECCOMP_RET_ERRNO|uint32(unix.ENOSYS) {
		t.Errorf("x32 call: %#x", got)
	}
	if got := run(t, prog, Data{Nr: 1, Arch: nativeArch}); got != unix.SECCOMP_RET_ALLOW {
		t.Errorf("native call: %#x", got)
	}
}

func TestCompileRules(t *testing.T) {
	eperm := uint(unix.EPERM)
	prof := &specs.LinuxSeccomp{
		DefaultAction:   specs.ActErrno,
		DefaultErrnoRet: func() *uint { v := uint(unix.ENOSYS); return &v }(),
		Architectures:   []specs.Arch{specs.ArchX86_64},
		Syscalls: []specs.LinuxSyscall{
			{Names: []string{"read", "write", "no_such_call"}, Action: specs.ActAllow},
			{Names: []string{"personality"}, Action: specs.ActAllow, Args: []specs.LinuxSeccompArg{{Index: 0, Value: 0xffffffff, Op: specs.OpEqualTo}}},
			{Names: []string{"clone"}, Action: specs.ActAllow, Args: []specs.LinuxSeccompArg{{Index: 0, Value: unix.CLONE_NEWUSER, ValueTwo: 0, Op: specs.OpMaskedEqual}}},
			{Names: []string{"kill"}, Action: specs.ActErrno, ErrnoRet: &eperm, Args: []specs.LinuxSeccompArg{{Index: 1, Value: 1 << 33, Op: specs.OpGreaterEqual}}},
			{Names: []string{"tkill"}, Action: specs.ActAllow, Args: []specs.LinuxSeccompArg{{Index: 1, Value: 10, Op: specs.OpLessThan}, {Index: 0, Value: 5, Op: specs.OpNotEqual}}},
		},
	}
	prog, skipped, err := Compile(prof, DefaultPolicy())
	if err != nil {
		t.Fatal(err)
	}
	if len(skipped) != 1 || skipped[0] != "no_such_call" {
		t.Errorf("skipped = %v", skipped)
	}
	nr := func(n string) int32 { return int32(syscallTable[n]) }
	enosys := unix.SECCOMP_RET_ERRNO | uint32(unix.ENOSYS)
	cases := []struct {
		name string
		d    Data
		want uint32
	}{
		{"read", Data{Nr: nr("read")}, unix.SECCOMP_RET_ALLOW},
		{"write", Data{Nr: nr("write")}, unix.SECCOMP_RET_ALLOW},
		{"default", Data{Nr: nr("ptrace")}, enosys},
		{"mknod notifies", Data{Nr: nr("mknod")}, unix.SECCOMP_RET_USER_NOTIF},
		{"mknodat notifies", Data{Nr: nr("mknodat")}, unix.SECCOMP_RET_USER_NOTIF},
		{"personality eq", Data{Nr: nr("personality"), Args: [6]uint64{0xffffffff}}, unix.SECCOMP_RET_ALLOW},
		{"personality hi bits differ", Data{Nr: nr("personality"), Args: [6]uint64{0x1ffffffff}}, enosys},
		{"personality ne", Data{Nr: nr("personality"), Args: [6]uint64{8}}, enosys},
		{"clone without newuser", Data{Nr: nr("clone"), Args: [6]uint64{unix.CLONE_VM}}, unix.SECCOMP_RET_ALLOW},
		{"clone with newuser", Data{Nr: nr("clone"), Args: [6]uint64{unix.CLONE_NEWUSER | unix.CLONE_VM}}, enosys},
		{"kill ge hi", Data{Nr: nr("kill"), Args: [6]uint64{0, 1 << 33}}, unix.SECCOMP_RET_ERRNO | uint32(unix.EPERM)},
		{"kill ge above", Data{Nr: nr("kill"), Args: [6]uint64{0, 1<<33 + 1}}, unix.SECCOMP_RET_ERRNO | uint32(unix.EPERM)},
		{"kill below", Data{Nr: nr("kill"), Args: [6]uint64{0, 1<<33 - 1}}, enosys},
		{"tkill both", Data{Nr: nr("tkill"), Args: [6]uint64{4, 9}}, unix.SECCOMP_RET_ALLOW},
		{"tkill arg0 equal", Data{Nr: nr("tkill"), Args: [6]uint64{5, 9}}, enosys},
		{"tkill arg1 big", Data{Nr: nr("tkill"), Args: [6]uint64{4, 10}}, enosys},
		{"tkill arg1 hi", Data{Nr: nr("tkill"), Args: [6]uint64{4, 1 << 32}}, enosys},
	}
	for _, c := range cases {
		c.d.Arch = nativeArch
		if got := run(t, prog, c.d); got != c.want {
			t.Errorf("%s: got %#x, want %#x", c.name, got, c.want)
		}
	}
}

// A profile as large as Docker's default still links (no jump out of range).
func TestCompileLarge(t *testing.T) {
	var names []string
	for n := range syscallTable {
		names = append(names, n)
	}
	prof := &specs.LinuxSeccomp{DefaultAction: specs.ActErrno, Syscalls: []specs.LinuxSyscall{{Names: names, Action: specs.ActAllow}}}
	prog, _, err := Compile(prof, DefaultPolicy())
	if err != nil {
		t.Fatal(err)
	}
	if got := run(t, prog, Data{Nr: int32(syscallTable["write"]), Arch: nativeArch}); got != unix.SECCOMP_RET_ALLOW {
		t.Errorf("write: %#x", got)
	}
}

func TestCompileRefusesUnknown(t *testing.T) {
	if _, _, err := Compile(&specs.LinuxSeccomp{DefaultAction: "SCMP_ACT_BOGUS"}, Policy{}); err == nil {
		t.Error("unknown action accepted")
	}
	if _, _, err := Compile(&specs.LinuxSeccomp{Architectures: []specs.Arch{specs.ArchARM}}, Policy{}); err == nil {
		t.Error("foreign architecture accepted")
	}
	if _, _, err := Compile(&specs.LinuxSeccomp{Syscalls: []specs.LinuxSyscall{{Names: []string{"read"}, Action: specs.ActAllow, Args: []specs.LinuxSeccompArg{{Index: 6}}}}}, Policy{}); err == nil {
		t.Error("argument index 6 accepted")
	}
}

func FuzzParseStatus(f *testing.F) {
	f.Add([]byte("Name:\tsh\nUmask:\t0022\nUid:\t0\t0\t0\t0\nGid:\t0\t0\t0\t5\nGroups:\t1 2\n"))
	f.Add([]byte("Uid:\t1\t2\n"))
	f.Fuzz(func(t *testing.T, b []byte) {
		c, err := parseStatus(bytes.NewReader(b))
		if err == nil && c.umask > 0o777 {
			t.Fatalf("umask %o", c.umask)
		}
	})
}
