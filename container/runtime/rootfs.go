package runtime

import (
	"errors"
	"os"
	"path/filepath"
	"strings"

	specs "github.com/opencontainers/runtime-spec/specs-go"
	"golang.org/x/sys/unix"

	"github.com/godwit-dev/godwit/container/mount"
	"github.com/godwit-dev/godwit/container/seccomp"
	"github.com/godwit-dev/godwit/container/securepath"
	"github.com/godwit-dev/godwit/fault"
)

// safeDevices are bind-mounted from the host into the container's /dev:
// mounts made inside a user namespace are nodev, and mknod there needs
// CAP_MKNOD in the initial user namespace, so the host's nodes are the
// only ones that work.
var safeDevices = []struct {
	name string
	dev  seccomp.Device
}{
	{"null", seccomp.Device{Major: 1, Minor: 3}}, {"zero", seccomp.Device{Major: 1, Minor: 5}},
	{"full", seccomp.Device{Major: 1, Minor: 7}}, {"random", seccomp.Device{Major: 1, Minor: 8}},
	{"urandom", seccomp.Device{Major: 1, Minor: 9}}, {"tty", seccomp.Device{Major: 5, Minor: 0}},
}

// setupRootfs builds the container's root filesystem in the init's new
// mount namespace and pivots into it. tree is the (id-mapped) rootfs mount
// from the shim, or nil. It returns detached clones of the host's safe
// device nodes, kept for the supervisor's rootless mknod.
func setupRootfs(cfg *initConfig, tree *os.File) (map[seccomp.Device]*mount.Mount, error) {
	sp := cfg.Spec
	if err := mount.SetPropagation("/", unix.MS_SLAVE, true); err != nil {
		return nil, err
	}
	var rm *mount.Mount
	if tree != nil {
		rm = mount.FromFile(tree, "rootfs")
	} else {
		m, err := mount.Clone(unix.AT_FDCWD, cfg.Rootfs, true)
		if err != nil {
			return nil, err
		}
		rm = m
	}
	defer rm.Close()
	if err := rm.MoveToPath(cfg.Rootfs); err != nil {
		return nil, err
	}
	root, err := securepath.Open(cfg.Rootfs)
	if err != nil {
		return nil, err
	}
	defer root.Close()

	kept := map[seccomp.Device]*mount.Mount{}
	for _, d := range safeDevices {
		if m, err := mount.Clone(unix.AT_FDCWD, "/dev/"+d.name, false); err == nil {
			kept[d.dev] = m
		}
	}
	for _, m := range sp.Mounts {
		if err := mountOne(root, cfg, m); err != nil {
			return nil, err
		}
	}
	if err := setupDev(root, sp); err != nil {
		return nil, err
	}
	for _, p := range sp.Linux.MaskedPaths {
		if err := maskPath(root, p); err != nil {
			return nil, err
		}
	}
	for _, p := range sp.Linux.ReadonlyPaths {
		if err := readonlyPath(root, p); err != nil {
			return nil, err
		}
	}
	if sp.Root.Readonly {
		attr := unix.MountAttr{Attr_set: unix.MOUNT_ATTR_RDONLY}
		if err := unix.MountSetattr(int(root.File().Fd()), "", unix.AT_EMPTY_PATH, &attr); err != nil {
			return nil, fault.Wrap(fault.CodeIO, err, "make rootfs read-only")
		}
	}
	if err := pivot(root.File()); err != nil {
		return nil, err
	}
	return kept, nil
}

// mountOne performs one entry of config.json's mounts. The destination is
// resolved inside the rootfs and the mount is attached to that descriptor.
func mountOne(root *securepath.Root, cfg *initConfig, m specs.Mount) error {
	fl := mount.ParseOptions(m.Options)
	if m.Type == "bind" {
		fl.Bind = true
	}
	fail := func(err error) error {
		return &fault.Error{Code: fault.CodeOf(err), Op: "mount " + m.Destination, Err: err}
	}
	if fl.Bind {
		src := m.Source
		if !filepath.IsAbs(src) {
			src = filepath.Join(cfg.Bundle, src)
		}
		fd, err := unix.Open(src, unix.O_PATH|unix.O_CLOEXEC, 0)
		if err != nil {
			return &fault.Error{Code: fault.CodeInvalidArgument, Op: "mount " + m.Destination, Msg: "bind source", Path: src, Err: err}
		}
		defer unix.Close(fd)
		var st unix.Stat_t
		unix.Fstat(fd, &st)
		bm, err := mount.Clone(fd, "", fl.Rec)
		if err != nil {
			return fail(err)
		}
		defer bm.Close()
		if fl.Set|fl.Clear != 0 {
			if err := bm.SetAttr(fl.Set, fl.Clear, fl.Rec); err != nil {
				return fail(err)
			}
		}
		t, err := root.MountTarget(m.Destination, st.Mode&unix.S_IFMT == unix.S_IFDIR)
		if err != nil {
			return fail(err)
		}
		defer t.Close()
		return bm.MoveTo(t)
	}
	fstype := m.Type
	opts := fl.Data
	switch fstype {
	case "sysfs":
		if cfg.Network == "host" || cfg.Network == "path" {
			// sysfs needs a network namespace owned by our user
			// namespace; otherwise bind the host's, read-only.
			return mountOne(root, cfg, specs.Mount{Destination: m.Destination, Type: "bind", Source: "/sys",
				Options: []string{"rbind", "ro", "nosuid", "nodev", "noexec"}})
		}
	case "cgroup":
		fstype = "cgroup2"
		opts = nil
	case "devpts":
		// gid= must name a group mapped in the container.
		kept := opts[:0:0]
		for _, o := range opts {
			if o.Key == "gid" {
				if _, ok := cfg.GIDs.ToHost(atou(o.Value)); !ok {
					continue
				}
			}
			kept = append(kept, o)
		}
		opts = kept
	}
	src := m.Source
	if src == "" {
		src = fstype
	}
	nm, err := mount.New(fstype, src, opts, fl.Set&^unix.MOUNT_ATTR_IDMAP)
	if err != nil {
		return fail(err)
	}
	defer nm.Close()
	t, err := root.MountTarget(m.Destination, true)
	if err != nil {
		return fail(err)
	}
	defer t.Close()
	return nm.MoveTo(t)
}

func atou(s string) uint32 {
	var n uint32
	for _, c := range s {
		if c < '0' || c > '9' {
			return 1<<32 - 1
		}
		n = n*10 + uint32(c-'0')
	}
	return n
}

// setupDev binds the host's safe devices (and config.json's devices, which
// must exist on the host with the same numbers) into /dev and makes the
// usual symlinks.
func setupDev(root *securepath.Root, sp *specs.Spec) error {
	type devBind struct{ host, dest string }
	var binds []devBind
	for _, d := range safeDevices {
		binds = append(binds, devBind{"/dev/" + d.name, "/dev/" + d.name})
	}
	for _, d := range sp.Linux.Devices {
		var st unix.Stat_t
		host := filepath.Join("/dev", filepath.Clean("/"+strings.TrimPrefix(d.Path, "/dev")))
		if err := unix.Stat(host, &st); err != nil || unix.Major(st.Rdev) != uint32(d.Major) || unix.Minor(st.Rdev) != uint32(d.Minor) {
			return &fault.Error{Code: fault.CodeUnsupported, Op: "device " + d.Path, Msg: "no host node with these numbers to bind-mount (mknod is impossible in a user namespace)"}
		}
		binds = append(binds, devBind{host, d.Path})
	}
	for _, b := range binds {
		bm, err := mount.Clone(unix.AT_FDCWD, b.host, false)
		if err != nil {
			return err
		}
		t, err := root.MountTarget(b.dest, false)
		if err != nil {
			bm.Close()
			return err
		}
		err = bm.MoveTo(t)
		bm.Close()
		t.Close()
		if err != nil {
			return err
		}
	}
	dev, err := root.OpenPath("/dev")
	if err != nil {
		return err
	}
	defer dev.Close()
	links := [][2]string{{"/proc/self/fd", "fd"}, {"/proc/self/fd/0", "stdin"}, {"/proc/self/fd/1", "stdout"}, {"/proc/self/fd/2", "stderr"}}
	if pts, err := root.OpenPath("/dev/pts/ptmx"); err == nil {
		pts.Close()
		links = append(links, [2]string{"pts/ptmx", "ptmx"})
	}
	for _, l := range links {
		if err := unix.Symlinkat(l[0], int(dev.Fd()), l[1]); err != nil && !errors.Is(err, unix.EEXIST) {
			return &fault.Error{Code: fault.CodeIO, Op: "symlink /dev/" + l[1], Err: err}
		}
	}
	return nil
}

// maskPath hides p: /dev/null over a file, an empty read-only tmpfs over a
// directory.
func maskPath(root *securepath.Root, p string) error {
	t, err := root.OpenPath(p)
	if err != nil {
		if errors.Is(err, unix.ENOENT) {
			return nil
		}
		return err
	}
	defer t.Close()
	var st unix.Stat_t
	unix.Fstat(int(t.Fd()), &st)
	var m *mount.Mount
	if st.Mode&unix.S_IFMT == unix.S_IFDIR {
		m, err = mount.New("tmpfs", "tmpfs", []mount.Option{{Key: "size", Value: "0"}}, unix.MOUNT_ATTR_RDONLY)
	} else {
		var null *os.File
		if null, err = root.OpenPath("/dev/null"); err == nil {
			m, err = mount.Clone(int(null.Fd()), "", false)
			null.Close()
		}
	}
	if err != nil {
		return &fault.Error{Code: fault.CodeOf(err), Op: "mask " + p, Err: err}
	}
	defer m.Close()
	return m.MoveTo(t)
}

// readonlyPath bind-mounts p read-only over itself.
func readonlyPath(root *securepath.Root, p string) error {
	t, err := root.OpenPath(p)
	if err != nil {
		if errors.Is(err, unix.ENOENT) {
			return nil
		}
		return err
	}
	defer t.Close()
	m, err := mount.Clone(int(t.Fd()), "", true)
	if err != nil {
		return err
	}
	defer m.Close()
	if err := m.SetAttr(unix.MOUNT_ATTR_RDONLY, 0, true); err != nil {
		return err
	}
	return m.MoveTo(t)
}

// pivot makes root the root of the mount namespace and detaches the old one.
func pivot(root *os.File) error {
	if err := unix.Fchdir(int(root.Fd())); err != nil {
		return fault.Wrap(fault.CodeIO, err, "chdir to rootfs")
	}
	if err := unix.PivotRoot(".", "."); err != nil {
		return fault.Wrap(fault.CodeIO, err, "pivot_root")
	}
	if err := unix.Unmount(".", unix.MNT_DETACH); err != nil {
		return fault.Wrap(fault.CodeIO, err, "detach old root")
	}
	if err := unix.Chdir("/"); err != nil {
		return fault.Wrap(fault.CodeIO, err, "chdir /")
	}
	return nil
}
