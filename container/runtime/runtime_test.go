package runtime

import (
	"errors"
	"os"
	"testing"

	specs "github.com/opencontainers/runtime-spec/specs-go"
	"golang.org/x/sys/unix"

	"github.com/godwit-dev/godwit/fault"
)

func TestWireErrorRoundTrip(t *testing.T) {
	in := &fault.Error{Code: fault.CodePermission, Op: "mount", Msg: "refused", Path: "/x", PID: 7, Remedy: "run as root", Err: unix.EPERM}
	out := toWire(in).err()
	if !errors.Is(out, fault.ErrPermission) || out.Error() != in.Error() {
		t.Errorf("got %v, want %v", out, in)
	}
	if toWire(nil) != nil || (*wireError)(nil).err() != nil {
		t.Error("nil")
	}
}

func TestStatFields(t *testing.T) {
	f := statFields("42 (a) b) c) S 1 2 3")
	if len(f) != 4 || f[0] != "S" {
		t.Errorf("%q", f)
	}
	if statFields("garbage") != nil {
		t.Error("garbage parsed")
	}
	if s, err := startTime(os.Getpid()); err != nil || s == 0 {
		t.Errorf("startTime: %d %v", s, err)
	}
	if !alive(os.Getpid(), 0) {
		t.Error("self not alive")
	}
}

func TestCheckID(t *testing.T) {
	for _, id := range []string{"a", "web-1", "x.y_z+1"} {
		if checkID(id) != nil {
			t.Errorf("%q refused", id)
		}
	}
	for _, id := range []string{"", "../x", "a/b", ".hidden", "-x"} {
		if checkID(id) == nil {
			t.Errorf("%q accepted", id)
		}
	}
}

func TestCloneFlags(t *testing.T) {
	sp := &specs.Spec{Linux: &specs.Linux{Namespaces: []specs.LinuxNamespace{{Type: "uts"}, {Type: "network"}, {Type: "time"}}}}
	f, netPath, network, err := cloneFlags(sp)
	if err != nil {
		t.Fatal(err)
	}
	want := unix.CLONE_NEWUSER | unix.CLONE_NEWUTS | unix.CLONE_NEWNET | unix.CLONE_NEWTIME | unix.CLONE_NEWPID | unix.CLONE_NEWNS
	if f != want || netPath != "" || network != "loopback" {
		t.Errorf("flags %#x net %q %q", f, netPath, network)
	}
	sp.Linux.Namespaces = []specs.LinuxNamespace{{Type: "network", Path: "/run/netns/x"}}
	if _, netPath, network, _ = cloneFlags(sp); netPath != "/run/netns/x" || network != "path" {
		t.Errorf("net path %q %q", netPath, network)
	}
	sp.Linux.Namespaces = []specs.LinuxNamespace{{Type: "ipc", Path: "/proc/1/ns/ipc"}}
	if _, _, _, err := cloneFlags(sp); !errors.Is(err, fault.ErrUnsupported) {
		t.Errorf("joining ipc: %v", err)
	}
}

func TestPolicyAnnotations(t *testing.T) {
	p := policyOf(&specs.Spec{Annotations: map[string]string{AnnotationDevices: "1:3, 1:5,bogus"}})
	if !p.Enabled || len(p.Devices) != 2 {
		t.Errorf("%+v", p)
	}
	if policyOf(&specs.Spec{Annotations: map[string]string{AnnotationSupervisor: "off"}}).Enabled {
		t.Error("supervisor not turned off")
	}
}
