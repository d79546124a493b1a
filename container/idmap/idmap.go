// Package idmap handles user and group id mappings: the caller's id mapped
// to a container's root, subordinate ranges from /etc/subuid and
// /etc/subgid (applied with newuidmap/newgidmap), and throwaway user
// namespaces that carry a mapping for an id-mapped mount.
package idmap

import (
	"bufio"
	"errors"
	"fmt"
	"io"
	"os"
	"os/exec"
	"os/user"
	"runtime"
	"strconv"
	"strings"
	"syscall"

	"golang.org/x/sys/unix"

	"github.com/godwit-dev/godwit/fault"
)

// Range maps Size ids starting at ContainerID inside the namespace to ids
// starting at HostID outside it (one line of /proc/PID/uid_map).
type Range struct {
	ContainerID uint32 `json:"containerID"`
	HostID      uint32 `json:"hostID"`
	Size        uint32 `json:"size"`
}

// Map is a whole mapping, in the order the kernel accepts (at most 340 lines).
type Map []Range

// String formats m as uid_map contents.
func (m Map) String() string {
	var b strings.Builder
	for _, r := range m {
		fmt.Fprintf(&b, "%d %d %d\n", r.ContainerID, r.HostID, r.Size)
	}
	return b.String()
}

// ToHost maps a container id to the host; ok is false when it is unmapped.
func (m Map) ToHost(id uint32) (uint32, bool) {
	for _, r := range m {
		if id >= r.ContainerID && id-r.ContainerID < r.Size {
			return r.HostID + (id - r.ContainerID), true
		}
	}
	return 0, false
}

// ToContainer maps a host id into the container; ok is false when unmapped.
func (m Map) ToContainer(id uint32) (uint32, bool) {
	for _, r := range m {
		if id >= r.HostID && id-r.HostID < r.Size {
			return r.ContainerID + (id - r.HostID), true
		}
	}
	return 0, false
}

// Validate refuses empty, overflowing or overlapping mappings.
func (m Map) Validate() error {
	if len(m) == 0 {
		return fault.New(fault.CodeInvalidArgument, "empty id mapping")
	}
	if len(m) > 340 {
		return fault.New(fault.CodeInvalidArgument, "id mapping has %d ranges, the kernel takes at most 340", len(m))
	}
	for i, r := range m {
		if r.Size == 0 || uint64(r.ContainerID)+uint64(r.Size) > 1<<32 || uint64(r.HostID)+uint64(r.Size) > 1<<32 {
			return fault.New(fault.CodeInvalidArgument, "id range %d %d %d overflows", r.ContainerID, r.HostID, r.Size)
		}
		for _, s := range m[:i] {
			if overlap(r.ContainerID, r.Size, s.ContainerID, s.Size) || overlap(r.HostID, r.Size, s.HostID, s.Size) {
				return fault.New(fault.CodeInvalidArgument, "id ranges %v and %v overlap", r, s)
			}
		}
	}
	return nil
}

func overlap(a, an, b, bn uint32) bool {
	return uint64(a) < uint64(b)+uint64(bn) && uint64(b) < uint64(a)+uint64(an)
}

// Shift returns the mapping an id-mapped mount needs so that on-disk id
// owner appears as container id 0 (and owner+n as n): each range's
// namespace side moves up by owner. With owner 0 it is m itself.
func (m Map) Shift(owner uint32) Map {
	out := make(Map, 0, len(m))
	for _, r := range m {
		if uint64(r.ContainerID)+uint64(owner)+uint64(r.Size) > 1<<32 {
			continue
		}
		out = append(out, Range{ContainerID: r.ContainerID + owner, HostID: r.HostID, Size: r.Size})
	}
	return out
}

// SubRange is one line of /etc/subuid or /etc/subgid.
type SubRange struct {
	Start, Count uint32
}

// ParseSubIDs reads /etc/subuid-format text and returns the ranges granted to
// the user called name or with numeric id. Malformed lines are skipped, as
// shadow-utils does.
func ParseSubIDs(r io.Reader, name string, id uint32) ([]SubRange, error) {
	var out []SubRange
	sc := bufio.NewScanner(r)
	sc.Buffer(make([]byte, 4096), 1<<20)
	ids := strconv.FormatUint(uint64(id), 10)
	for sc.Scan() {
		line := strings.TrimSpace(sc.Text())
		if line == "" || line[0] == '#' {
			continue
		}
		f := strings.Split(line, ":")
		if len(f) != 3 || (f[0] != name && f[0] != ids) {
			continue
		}
		start, err1 := strconv.ParseUint(f[1], 10, 32)
		count, err2 := strconv.ParseUint(f[2], 10, 32)
		if err1 != nil || err2 != nil || count == 0 || start+count > 1<<32 {
			continue
		}
		out = append(out, SubRange{Start: uint32(start), Count: uint32(count)})
	}
	return out, sc.Err()
}

// Default returns the mapping a container gets when its config has none:
// the caller's id as root and, when /etc/subuid (subgid) grants ranges to
// the caller, those ranges as ids 1, 2, ... For root without a subordinate
// range, container ids 0-65535 map to host ids 0-65535.
func Default(uid uint32, file, name string) Map {
	var subs []SubRange
	if f, err := os.Open(file); err == nil {
		subs, _ = ParseSubIDs(f, name, uid)
		f.Close()
	}
	if uid == 0 && len(subs) == 0 {
		return Map{{ContainerID: 0, HostID: 0, Size: 65536}}
	}
	m := Map{{ContainerID: 0, HostID: uid, Size: 1}}
	next := uint32(1)
	for _, s := range subs {
		if uint64(next)+uint64(s.Count) > 1<<32 || (uid >= s.Start && uid-s.Start < s.Count) {
			continue
		}
		m = append(m, Range{ContainerID: next, HostID: s.Start, Size: s.Count})
		next += s.Count
	}
	if uid == 0 && len(m) > 1 {
		// Root with a subordinate range: the container's root is the first
		// subordinate id, not host root.
		m = m[1:]
		for i := range m {
			m[i].ContainerID--
		}
	}
	return m
}

// UserName returns the login name of uid, or "" when unknown.
func UserName(uid uint32) string {
	if u, err := user.LookupId(strconv.FormatUint(uint64(uid), 10)); err == nil {
		return u.Username
	}
	return ""
}

// GroupName returns the name of gid, or "" when unknown.
func GroupName(gid uint32) string {
	if g, err := user.LookupGroupId(strconv.FormatUint(uint64(gid), 10)); err == nil {
		return g.Name
	}
	return ""
}

// Write installs uid and gid mappings for the user namespace of pid. Root
// writes /proc/PID/{uid,gid}_map itself. Another caller writes them itself
// when each map is just its own id (after "deny" to setgroups), and uses
// newuidmap/newgidmap otherwise.
func Write(pid int, uids, gids Map) error {
	if err := uids.Validate(); err != nil {
		return err
	}
	if err := gids.Validate(); err != nil {
		return err
	}
	euid, egid := uint32(os.Geteuid()), uint32(os.Getegid())
	if euid == 0 {
		if err := writeFile(pid, "uid_map", uids.String()); err != nil {
			return err
		}
		return writeFile(pid, "gid_map", gids.String())
	}
	self := func(m Map, id uint32) bool { return len(m) == 1 && m[0].HostID == id && m[0].Size == 1 }
	if self(uids, euid) {
		if err := writeFile(pid, "uid_map", uids.String()); err != nil {
			return err
		}
	} else if err := helper("newuidmap", pid, uids); err != nil {
		return err
	}
	if self(gids, egid) {
		if err := writeFile(pid, "setgroups", "deny"); err != nil {
			return err
		}
		return writeFile(pid, "gid_map", gids.String())
	}
	return helper("newgidmap", pid, gids)
}

func writeFile(pid int, name, data string) error {
	p := fmt.Sprintf("/proc/%d/%s", pid, name)
	if err := os.WriteFile(p, []byte(data), 0); err != nil {
		return &fault.Error{Code: fault.CodePermission, Op: "write " + name, PID: pid, Path: p, Err: err,
			Remedy: "an unprivileged caller can map only its own id without newuidmap/newgidmap and /etc/subuid, /etc/subgid"}
	}
	return nil
}

func helper(prog string, pid int, m Map) error {
	path, err := exec.LookPath(prog)
	if err != nil {
		return &fault.Error{Code: fault.CodeUnsupported, Op: prog, PID: pid, Err: err, Remedy: "install the uidmap package"}
	}
	args := []string{strconv.Itoa(pid)}
	for _, r := range m {
		args = append(args, strconv.FormatUint(uint64(r.ContainerID), 10), strconv.FormatUint(uint64(r.HostID), 10), strconv.FormatUint(uint64(r.Size), 10))
	}
	out, err := exec.Command(path, args...).CombinedOutput()
	if err != nil {
		return &fault.Error{Code: fault.CodePermission, Op: prog, PID: pid, Msg: strings.TrimSpace(string(out)), Err: err,
			Remedy: "check the caller's ranges in /etc/subuid and /etc/subgid"}
	}
	return nil
}

// UserNS creates a user namespace with the given mappings and returns an fd
// for it (as for MOUNT_ATTR_IDMAP). The namespace is held by a child that is
// stopped by ptrace before it runs any code (PTRACE_TRACEME + execve) and is
// killed once the fd is open. Only root can install arbitrary mappings.
func UserNS(uids, gids Map) (*os.File, error) {
	type result struct {
		f   *os.File
		err error
	}
	ch := make(chan result, 1)
	go func() {
		// ptrace requests and the wait must come from the tracer thread.
		runtime.LockOSThread()
		defer runtime.UnlockOSThread()
		f, err := userNS(uids, gids)
		ch <- result{f, err}
	}()
	r := <-ch
	return r.f, r.err
}

func userNS(uids, gids Map) (*os.File, error) {
	exe, err := os.Executable()
	if err != nil {
		exe = "/proc/self/exe"
	}
	cmd := exec.Command(exe)
	cmd.SysProcAttr = &syscall.SysProcAttr{
		Cloneflags:  unix.CLONE_NEWUSER,
		UidMappings: toSys(uids),
		GidMappings: toSys(gids),
		Ptrace:      true,
		Pdeathsig:   syscall.SIGKILL,
	}
	if err := cmd.Start(); err != nil {
		return nil, &fault.Error{Code: fault.CodePermission, Op: "create id-mapping user namespace", Err: err}
	}
	defer func() {
		cmd.Process.Kill()
		cmd.Wait()
	}()
	p := fmt.Sprintf("/proc/%d/ns/user", cmd.Process.Pid)
	fd, err := unix.Open(p, unix.O_RDONLY|unix.O_CLOEXEC, 0)
	if err != nil {
		return nil, &fault.Error{Code: fault.CodeIO, Op: "open user namespace", PID: cmd.Process.Pid, Path: p, Err: err}
	}
	return os.NewFile(uintptr(fd), p), nil
}

func toSys(m Map) []syscall.SysProcIDMap {
	out := make([]syscall.SysProcIDMap, len(m))
	for i, r := range m {
		out[i] = syscall.SysProcIDMap{ContainerID: int(r.ContainerID), HostID: int(r.HostID), Size: int(r.Size)}
	}
	return out
}

// ErrUnmapped: an id has no mapping in the container.
var ErrUnmapped = errors.New("id not mapped in the container")
