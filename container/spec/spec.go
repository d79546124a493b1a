// Package spec loads, defaults and validates the config.json of an OCI
// bundle.
package spec

import (
	"encoding/json"
	"errors"
	"io"
	"os"
	"path/filepath"

	specs "github.com/opencontainers/runtime-spec/specs-go"

	"github.com/godwit-dev/godwit/fault"
)

// Version is the OCI runtime-spec version godwit writes and accepts.
var Version = specs.Version

// Load reads bundle/config.json.
func Load(bundle string) (*specs.Spec, error) {
	p := filepath.Join(bundle, "config.json")
	f, err := os.Open(p)
	if err != nil {
		code := fault.CodeIO
		if errors.Is(err, os.ErrNotExist) {
			code = fault.CodeInvalidArgument
		}
		return nil, &fault.Error{Code: code, Op: "load bundle", Path: p, Err: err, Remedy: "create one with `godwit spec`"}
	}
	defer f.Close()
	s, err := Decode(f)
	if err != nil {
		if fe, ok := err.(*fault.Error); ok {
			fe.Path = p
		}
		return nil, err
	}
	return s, nil
}

// Decode parses and validates a config.json. It refuses unknown-shaped input
// rather than guessing: the decoder of untrusted bundles is fuzzed.
func Decode(r io.Reader) (*specs.Spec, error) {
	var s specs.Spec
	dec := json.NewDecoder(io.LimitReader(r, 16<<20))
	if err := dec.Decode(&s); err != nil {
		return nil, &fault.Error{Code: fault.CodeInvalidArgument, Op: "parse config.json", Err: err}
	}
	if err := Validate(&s); err != nil {
		return nil, err
	}
	return &s, nil
}

// Validate checks what godwit relies on.
func Validate(s *specs.Spec) error {
	bad := func(msg string) error {
		return &fault.Error{Code: fault.CodeInvalidArgument, Op: "validate config.json", Msg: msg}
	}
	if s.Root == nil || s.Root.Path == "" {
		return bad("root.path is required")
	}
	if s.Process == nil {
		return bad("process is required")
	}
	if len(s.Process.Args) == 0 {
		return bad("process.args must not be empty")
	}
	if s.Process.Cwd == "" || s.Process.Cwd[0] != '/' {
		return bad("process.cwd must be an absolute path")
	}
	if s.Linux == nil {
		return bad("linux section is required")
	}
	for _, m := range s.Mounts {
		if m.Destination == "" {
			return bad("mount with empty destination")
		}
	}
	return nil
}

// Options of Default.
type Options struct {
	Rootless bool
	UID, GID uint32 // the caller's ids (for --rootless mappings)
	Args     []string
}

// Default returns the config.json `godwit spec` writes: a busybox-friendly
// shell, every namespace godwit supports, a loopback-only network, and the
// usual masked and read-only paths.
func Default(o Options) *specs.Spec {
	args := o.Args
	if len(args) == 0 {
		args = []string{"sh"}
	}
	s := &specs.Spec{
		Version: Version,
		Root:    &specs.Root{Path: "rootfs"},
		Process: &specs.Process{
			Args: args,
			Env:  []string{"PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin", "TERM=xterm"},
			Cwd:  "/",
			Capabilities: &specs.LinuxCapabilities{
				Bounding:  defaultCaps,
				Effective: defaultCaps,
				Permitted: defaultCaps,
			},
			Rlimits:         []specs.POSIXRlimit{{Type: "RLIMIT_NOFILE", Hard: 1024, Soft: 1024}},
			NoNewPrivileges: true,
		},
		Hostname: "godwit",
		Mounts: []specs.Mount{
			{Destination: "/proc", Type: "proc", Source: "proc", Options: []string{"nosuid", "noexec", "nodev"}},
			{Destination: "/dev", Type: "tmpfs", Source: "tmpfs", Options: []string{"nosuid", "strictatime", "mode=755", "size=65536k"}},
			{Destination: "/dev/pts", Type: "devpts", Source: "devpts", Options: []string{"nosuid", "noexec", "newinstance", "ptmxmode=0666", "mode=0620"}},
			{Destination: "/dev/shm", Type: "tmpfs", Source: "shm", Options: []string{"nosuid", "noexec", "nodev", "mode=1777", "size=65536k"}},
			{Destination: "/dev/mqueue", Type: "mqueue", Source: "mqueue", Options: []string{"nosuid", "noexec", "nodev"}},
			{Destination: "/sys", Type: "sysfs", Source: "sysfs", Options: []string{"nosuid", "noexec", "nodev", "ro"}},
		},
		Linux: &specs.Linux{
			Namespaces: []specs.LinuxNamespace{
				{Type: specs.UserNamespace}, {Type: specs.PIDNamespace}, {Type: specs.MountNamespace},
				{Type: specs.UTSNamespace}, {Type: specs.IPCNamespace}, {Type: specs.CgroupNamespace},
				{Type: specs.NetworkNamespace},
			},
			MaskedPaths: []string{
				"/proc/acpi", "/proc/asound", "/proc/kcore", "/proc/keys", "/proc/latency_stats",
				"/proc/timer_list", "/proc/timer_stats", "/proc/sched_debug", "/sys/firmware", "/proc/scsi",
			},
			ReadonlyPaths: []string{
				"/proc/bus", "/proc/fs", "/proc/irq", "/proc/sys", "/proc/sysrq-trigger",
			},
		},
	}
	if o.Rootless {
		s.Linux.UIDMappings = []specs.LinuxIDMapping{{ContainerID: 0, HostID: o.UID, Size: 1}}
		s.Linux.GIDMappings = []specs.LinuxIDMapping{{ContainerID: 0, HostID: o.GID, Size: 1}}
		s.Process.Rlimits = nil
	}
	return s
}

var defaultCaps = []string{
	"CAP_CHOWN", "CAP_DAC_OVERRIDE", "CAP_FSETID", "CAP_FOWNER", "CAP_MKNOD", "CAP_NET_RAW",
	"CAP_SETGID", "CAP_SETUID", "CAP_SETFCAP", "CAP_SETPCAP", "CAP_NET_BIND_SERVICE",
	"CAP_SYS_CHROOT", "CAP_KILL", "CAP_AUDIT_WRITE",
}
