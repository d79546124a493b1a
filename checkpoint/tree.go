package checkpoint

import (
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"strconv"

	"golang.org/x/sys/unix"

	"github.com/godwit-dev/godwit/fault"
	"github.com/godwit-dev/godwit/image"
	"github.com/godwit-dev/godwit/internal/files"
	"github.com/godwit-dev/godwit/internal/procfs"
)

// member is one process of the tree being dumped.
type member struct {
	pid    int
	zombie *image.Zombie // set for an exited, unreaped child
	frozen *frozen
}

// discover lists the tree rooted at d.pid, parents before children, but the
// members already known (so it can be called again after freezing to catch
// children forked meanwhile).
func (d *dumper) discover(known map[int]bool) ([]int, error) {
	return d.discoverFrom(d.pid, known)
}

// discoverFrom is discover for the tree rooted at root.
func (d *dumper) discoverFrom(root int, known map[int]bool) ([]int, error) {
	var out []int
	queue := []int{root}
	seen := map[int]bool{}
	for len(queue) > 0 {
		pid := queue[0]
		queue = queue[1:]
		if seen[pid] {
			continue
		}
		seen[pid] = true
		if !known[pid] {
			out = append(out, pid)
		}
		kids, err := procfs.Children(pid)
		if err != nil {
			if errors.Is(err, os.ErrNotExist) || errors.Is(err, unix.ESRCH) {
				continue
			}
			return nil, &fault.Error{Code: fault.CodeDumpFailed, Op: "dump", PID: pid, Msg: "list children", Err: err}
		}
		queue = append(queue, kids...)
	}
	return out, nil
}

// zombieOf returns the description of pid if it is a zombie.
func zombieOf(pid int) (*image.Zombie, error) {
	st, err := procfs.ReadStatus(pid)
	if err != nil {
		return nil, err
	}
	if st.State != 'Z' {
		return nil, nil
	}
	stat, err := procfs.ReadStat(pid)
	if err != nil {
		return nil, err
	}
	if st.Threads > 1 {
		return nil, &fault.Error{Code: fault.CodeUnsupported, Op: "dump", PID: pid,
			Msg: "an exited main thread with live threads is not supported yet"}
	}
	return &image.Zombie{PID: pid, NSpid: relNS(st.NSpid), Comm: stat.Comm, PPID: stat.PPID, PGID: stat.PGRP, SID: stat.Session,
		Status: stat.ExitCode, ExitSignal: stat.ExitSignal}, nil
}

// shareFDs marks descriptors that share an open file description with a
// descriptor of a process listed earlier (inherited through fork, or passed).
func shareFDs(procs []image.Process) {
	type key struct{ dev, ino uint64 }
	type ref struct{ pid, fd int }
	byFile := map[key][]ref{}
	for i := range procs {
		p := &procs[i]
		for j := range p.FDs {
			f := &p.FDs[j]
			var st unix.Stat_t
			if unix.Stat("/proc/"+strconv.Itoa(p.PID)+"/fd/"+strconv.Itoa(f.FD), &st) != nil {
				continue
			}
			k := key{uint64(st.Dev), st.Ino}
			if f.SameAs < 0 {
				for _, r := range byFile[k] {
					if r.pid == p.PID {
						continue
					}
					if c, err := kcmp(r.pid, p.PID, kcmpFile, r.fd, f.FD); err == nil && c == 0 {
						f.Inherit = &image.FDRef{PID: r.pid, FD: r.fd}
						break
					}
				}
			}
			byFile[k] = append(byFile[k], ref{p.PID, f.FD})
		}
	}
}

// checkPeers refuses a connected unix stream or seqpacket socket whose peer
// is outside the tree: restore could not connect it again. It also refuses
// processes that share kernel state without being threads (checkShared) and
// SysV segments attached outside the tree (checkAttachments).
func checkPeers(procs []image.Process) error {
	pids := make([]int, len(procs))
	for i, p := range procs {
		pids[i] = p.PID
	}
	if err := checkShared(pids); err != nil {
		return err
	}
	if err := checkAttachments(pids); err != nil {
		return err
	}
	inTree := map[uint64]bool{}
	var socks []struct {
		pid, fd int
		d       *files.Desc
	}
	for _, p := range procs {
		for _, f := range p.FDs {
			if f.Kind != image.FDObject {
				continue
			}
			var d files.Desc
			if json.Unmarshal(f.Object, &d) != nil {
				continue
			}
			inTree[d.Ino] = true
			if d.Kind == files.KindUnix && d.Socket != nil && d.Socket.PeerIno != 0 && d.Socket.Type != unix.SOCK_DGRAM {
				socks = append(socks, struct {
					pid, fd int
					d       *files.Desc
				}{p.PID, f.FD, &d})
			}
		}
	}
	for _, s := range socks {
		if !inTree[s.d.Socket.PeerIno] {
			return (&fault.Error{Code: fault.CodeUnsupported, Op: "dump", PID: s.pid,
				Msg: fmt.Sprintf("unix socket connected to a process outside the tree (peer socket inode %d, %q)",
					s.d.Socket.PeerIno, s.d.Socket.PeerName),
				Remedy: "dump the tree that holds both ends, or close the connection first"}).WithFD(s.fd)
		}
	}
	return nil
}
