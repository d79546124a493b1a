// Package seccomp compiles the seccomp section of an OCI config.json to a
// classic BPF program in Go (no libseccomp), and runs the user-notification
// Supervisor that performs, on behalf of a container, the few system calls
// an unprivileged container needs a privileged hand for (see Policy).
//
// # Program layout
//
//	ld arch; jeq NATIVE ? skip : ret kill-process  (other ABIs are refused)
//	ld nr;   jge x32 bit ? ret errno(ENOSYS) : skip (x32 calls are refused)
//	supervisor rules: jeq nr ? notify : next        (mknod, mknodat, setxattr, ...)
//	per rule and syscall: jeq nr ? [arg checks → action] : next block
//	default action
//
// Each block only jumps forward inside itself, so no jump offset exceeds
// the 8-bit range however many rules the profile has.
package seccomp

import (
	"fmt"

	specs "github.com/opencontainers/runtime-spec/specs-go"
	"golang.org/x/sys/unix"

	"github.com/godwit-dev/godwit/fault"
)

// Sentinels.
var (
	// ErrBadProfile: the seccomp section cannot be compiled.
	ErrBadProfile = fault.ErrInvalid
)

const (
	offNr   = 0
	offArch = 4
	offArgs = 16
)

// insn is an instruction whose jump targets may still be labels.
type insn struct {
	unix.SockFilter
	jt, jf string // label names; "" = fall through (offset 0)
	label  string // label defined at this instruction
}

type asm struct{ prog []insn }

func (a *asm) stmt(code uint16, k uint32) {
	a.prog = append(a.prog, insn{SockFilter: unix.SockFilter{Code: code, K: k}})
}

func (a *asm) jump(code uint16, k uint32, jt, jf string) {
	a.prog = append(a.prog, insn{SockFilter: unix.SockFilter{Code: code, K: k}, jt: jt, jf: jf})
}

func (a *asm) mark(label string) {
	a.prog = append(a.prog, insn{label: label, SockFilter: unix.SockFilter{Code: 0xffff}})
}

// link resolves labels (marks are removed) and checks jump ranges.
func (a *asm) link() ([]unix.SockFilter, error) {
	pos := map[string]int{}
	var out []insn
	for _, in := range a.prog {
		if in.Code == 0xffff && in.label != "" {
			pos[in.label] = len(out)
			continue
		}
		out = append(out, in)
	}
	res := make([]unix.SockFilter, len(out))
	for i, in := range out {
		f := in.SockFilter
		for _, j := range []struct {
			l string
			p *uint8
		}{{in.jt, &f.Jt}, {in.jf, &f.Jf}} {
			if j.l == "" {
				continue
			}
			t, ok := pos[j.l]
			if !ok {
				return nil, fmt.Errorf("undefined label %s", j.l)
			}
			off := t - i - 1
			if off < 0 || off > 255 {
				return nil, fmt.Errorf("jump to %s out of range (%d)", j.l, off)
			}
			*j.p = uint8(off)
		}
		res[i] = f
	}
	if len(res) > 4096 {
		return nil, fmt.Errorf("program has %d instructions, the kernel takes at most 4096", len(res))
	}
	return res, nil
}

const (
	ldAbs = unix.BPF_LD | unix.BPF_W | unix.BPF_ABS
	jeqK  = unix.BPF_JMP | unix.BPF_JEQ | unix.BPF_K
	jgtK  = unix.BPF_JMP | unix.BPF_JGT | unix.BPF_K
	jgeK  = unix.BPF_JMP | unix.BPF_JGE | unix.BPF_K
	andK  = unix.BPF_ALU | unix.BPF_AND | unix.BPF_K
	retK  = unix.BPF_RET | unix.BPF_K
	jaK   = unix.BPF_JMP | unix.BPF_JA
)

// Action returns the SECCOMP_RET_* value for an OCI action.
func Action(a specs.LinuxSeccompAction, errnoRet *uint) (uint32, error) {
	errno := uint32(unix.EPERM)
	if errnoRet != nil {
		errno = uint32(*errnoRet)
	}
	switch a {
	case specs.ActKill, specs.ActKillThread:
		return unix.SECCOMP_RET_KILL_THREAD, nil
	case specs.ActKillProcess:
		return unix.SECCOMP_RET_KILL_PROCESS, nil
	case specs.ActTrap:
		return unix.SECCOMP_RET_TRAP, nil
	case specs.ActErrno:
		return unix.SECCOMP_RET_ERRNO | (errno & unix.SECCOMP_RET_DATA), nil
	case specs.ActTrace:
		return unix.SECCOMP_RET_TRACE | (errno & unix.SECCOMP_RET_DATA), nil
	case specs.ActAllow:
		return unix.SECCOMP_RET_ALLOW, nil
	case specs.ActLog:
		return unix.SECCOMP_RET_LOG, nil
	case specs.ActNotify:
		return unix.SECCOMP_RET_USER_NOTIF, nil
	}
	return 0, &fault.Error{Code: fault.CodeInvalidArgument, Op: "seccomp", Msg: fmt.Sprintf("unknown action %q", a)}
}

// Compile builds the filter for profile (which may be nil: allow all) with
// the supervised system calls of policy turned into user notifications.
// Unknown system call names are skipped (as runc does: profiles name calls
// newer kernels have); the names skipped are returned.
func Compile(profile *specs.LinuxSeccomp, policy Policy) ([]unix.SockFilter, []string, error) {
	if nativeArch == 0 {
		return nil, nil, &fault.Error{Code: fault.CodeUnsupported, Op: "seccomp", Msg: "the BPF compiler supports x86_64 only"}
	}
	bad := func(format string, args ...any) error {
		return &fault.Error{Code: fault.CodeInvalidArgument, Op: "compile seccomp profile", Msg: fmt.Sprintf(format, args...)}
	}
	def := uint32(unix.SECCOMP_RET_ALLOW)
	if profile != nil {
		if profile.DefaultAction != "" {
			var err error
			if def, err = Action(profile.DefaultAction, profile.DefaultErrnoRet); err != nil {
				return nil, nil, err
			}
		}
		for _, ar := range profile.Architectures {
			if string(ar) != nativeArchName && ar != specs.ArchX86 && ar != specs.ArchX32 {
				return nil, nil, bad("architecture %s is not supported", ar)
			}
		}
	}
	var a asm
	// Refusals come first so that no jump to them is ever long.
	a.stmt(ldAbs, offArch)
	a.jump(jeqK, nativeArch, "arch-ok", "")
	a.stmt(retK, unix.SECCOMP_RET_KILL_PROCESS)
	a.mark("arch-ok")
	a.stmt(ldAbs, offNr)
	a.jump(jgeK, x32Bit, "", "abi-ok")
	a.stmt(retK, unix.SECCOMP_RET_ERRNO|uint32(unix.ENOSYS))
	a.mark("abi-ok")
	for _, name := range policy.supervised() {
		nr, ok := syscallTable[name]
		if !ok {
			continue
		}
		a.jump(jeqK, nr, "", fmt.Sprintf("sup%d", nr))
		a.stmt(retK, unix.SECCOMP_RET_USER_NOTIF)
		a.mark(fmt.Sprintf("sup%d", nr))
	}
	var skipped []string
	block := 0
	if profile != nil {
		for _, rule := range profile.Syscalls {
			act, err := Action(rule.Action, rule.ErrnoRet)
			if err != nil {
				return nil, nil, err
			}
			for _, name := range rule.Names {
				nr, ok := syscallTable[name]
				if !ok {
					skipped = append(skipped, name)
					continue
				}
				block++
				end := fmt.Sprintf("b%d", block)
				a.jump(jeqK, nr, "", end)
				for i, c := range rule.Args {
					if c.Index > 5 {
						return nil, nil, bad("%s: argument index %d", name, c.Index)
					}
					if err := a.cond(c, fmt.Sprintf("b%dc%d", block, i), end+"f"); err != nil {
						return nil, nil, bad("%s: %v", name, err)
					}
				}
				a.stmt(retK, act)
				if len(rule.Args) > 0 {
					a.mark(end + "f")
					a.stmt(ldAbs, offNr) // arg checks clobbered A
				}
				a.mark(end)
			}
		}
	}
	a.stmt(retK, def)
	prog, err := a.link()
	if err != nil {
		return nil, nil, bad("%v", err)
	}
	return prog, skipped, nil
}

// cond emits a 64-bit comparison of one argument; on success it falls
// through, on failure it jumps to fail. pass is a fresh label prefix.
func (a *asm) cond(c specs.LinuxSeccompArg, pass, fail string) error {
	lo := uint32(offArgs + 8*c.Index)
	hi := lo + 4
	vlo, vhi := uint32(c.Value), uint32(c.Value>>32)
	ok := pass + "ok"
	lolabel := pass + "lo"
	switch c.Op {
	case specs.OpEqualTo:
		a.stmt(ldAbs, hi)
		a.jump(jeqK, vhi, "", fail)
		a.stmt(ldAbs, lo)
		a.jump(jeqK, vlo, "", fail)
	case specs.OpNotEqual:
		a.stmt(ldAbs, hi)
		a.jump(jeqK, vhi, "", ok)
		a.stmt(ldAbs, lo)
		a.jump(jeqK, vlo, fail, "")
	case specs.OpMaskedEqual:
		mlo, mhi := uint32(c.Value), uint32(c.Value>>32)
		wlo, whi := uint32(c.ValueTwo), uint32(c.ValueTwo>>32)
		a.stmt(ldAbs, hi)
		a.stmt(andK, mhi)
		a.jump(jeqK, whi, "", fail)
		a.stmt(ldAbs, lo)
		a.stmt(andK, mlo)
		a.jump(jeqK, wlo, "", fail)
	case specs.OpGreaterThan, specs.OpGreaterEqual:
		a.stmt(ldAbs, hi)
		a.jump(jgtK, vhi, ok, "")
		a.jump(jeqK, vhi, lolabel, fail)
		a.mark(lolabel)
		a.stmt(ldAbs, lo)
		if c.Op == specs.OpGreaterThan {
			a.jump(jgtK, vlo, "", fail)
		} else {
			a.jump(jgeK, vlo, "", fail)
		}
	case specs.OpLessThan, specs.OpLessEqual:
		a.stmt(ldAbs, hi)
		a.jump(jgtK, vhi, fail, "")
		a.jump(jeqK, vhi, lolabel, ok)
		a.mark(lolabel)
		a.stmt(ldAbs, lo)
		if c.Op == specs.OpLessThan {
			a.jump(jgeK, vlo, fail, "")
		} else {
			a.jump(jgtK, vlo, fail, "")
		}
	default:
		return fmt.Errorf("unknown operator %q", c.Op)
	}
	a.mark(ok)
	return nil
}
