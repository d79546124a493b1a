package e2e

import (
	"strings"
	"testing"
	"time"

	specs "github.com/opencontainers/runtime-spec/specs-go"
)

// config.json's seccomp profile is compiled and enforced, alongside the
// supervisor's rules.
func TestSeccompProfile(t *testing.T) {
	for _, c := range callers(t) {
		t.Run(c.name, func(t *testing.T) {
			eperm := uint(1)
			script := "mkdir /tmp/d 2>&1; echo mkdir=$?; touch /tmp/f && echo touch-ok; mknod /dev/n c 1 3 && echo mknod-ok"
			e := newEnv(t, c, []string{"sh", "-c", script}, func(s *specs.Spec) {
				s.Linux.Seccomp = &specs.LinuxSeccomp{
					DefaultAction: specs.ActAllow,
					Architectures: []specs.Arch{specs.ArchX86_64},
					Syscalls: []specs.LinuxSyscall{
						{Names: []string{"mkdir", "mkdirat"}, Action: specs.ActErrno, ErrnoRet: &eperm},
						{Names: []string{"some_future_call"}, Action: specs.ActErrno},
					},
				}
			})
			out, errs, code := e.godwit("run", "sc1")
			if code != 0 {
				t.Fatalf("exit %d: %s %s", code, out, errs)
			}
			for _, want := range []string{"Operation not permitted", "mkdir=1", "touch-ok", "mknod-ok"} {
				if !strings.Contains(out, want) {
					t.Errorf("output lacks %q:\n%s", want, out)
				}
			}
		})
	}
}

// TestMeasure logs how long the verbs take (no assertion beyond success).
func TestMeasure(t *testing.T) {
	for _, c := range callers(t) {
		t.Run(c.name, func(t *testing.T) {
			e := newEnv(t, c, []string{"true"}, nil)
			const n = 5
			start := time.Now()
			for i := 0; i < n; i++ {
				e.must("run", "bench")
			}
			perRun := time.Since(start) / n
			e2 := newEnv(t, c, []string{"sh", "-c", "i=0; while [ $i -lt 200 ]; do mknod /tmp/n$i c 1 3; i=$((i+1)); done"}, nil)
			start = time.Now()
			e2.must("run", "bench2")
			mk := time.Since(start) - perRun
			t.Logf("%s: run of /bin/true (create+start+wait+delete) %v; 200 supervised mknods ~%v each", c.name, perRun, mk/200)
		})
	}
}
