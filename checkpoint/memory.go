package checkpoint

import (
	"fmt"
	"strconv"
	"strings"

	"golang.org/x/sys/unix"

	"github.com/godwit-dev/godwit/fault"
	"github.com/godwit-dev/godwit/image"
	"github.com/godwit-dev/godwit/internal/mem"
	"github.com/godwit-dev/godwit/internal/procfs"
)

// collectVMAs turns /proc/PID/smaps into image mappings. It changes nothing,
// so it doubles as the up-front check that all memory can be dumped.
func (d *dumper) collectVMAs(pid int) ([]image.VMA, error) {
	maps, err := procfs.ReadMaps(pid)
	if err != nil {
		return nil, &fault.Error{Code: fault.CodeNoProcess, Op: "dump", PID: pid, Msg: "read mappings", Err: err}
	}
	var out []image.VMA
	for _, m := range maps {
		v := image.VMA{Start: m.Start, End: m.End, Offset: m.Offset, Inode: m.Inode,
			Dev: unix.Mkdev(m.Major, m.Minor), VmFlags: m.VmFlags}
		if m.Read {
			v.Prot |= unix.PROT_READ
		}
		if m.Write {
			v.Prot |= unix.PROT_WRITE
		}
		if m.Exec {
			v.Prot |= unix.PROT_EXEC
		}
		if m.Shared {
			v.Flags |= unix.MAP_SHARED
		} else {
			v.Flags |= unix.MAP_PRIVATE
		}
		if m.HasFlag("gd") {
			v.Flags |= unix.MAP_GROWSDOWN
		}
		where := fmt.Sprintf("mapping %#x-%#x %s", m.Start, m.End, m.Path)
		switch {
		case m.Path == "[vsyscall]":
			continue // the kernel provides it everywhere
		case m.Path == "[vdso]" || m.Path == "[vvar]" || m.Path == "[vvar_vclock]":
			v.Kind, v.Name = image.VMAVdso, m.Path
		case m.Path == "/secretmem" || strings.HasPrefix(m.Path, "/secretmem"):
			return nil, &fault.Error{Code: fault.CodeUnreadable, Op: "dump", PID: pid, Addr: m.Start,
				Msg:    where + ": memfd_secret memory cannot be read from outside the process by design",
				Remedy: "the program must release or re-create this memory itself; it cannot be checkpointed"}
		case m.Shared:
			if m.Path == "" || m.Deleted || !strings.HasPrefix(m.Path, "/") || m.Inode == 0 {
				return nil, &fault.Error{Code: fault.CodeUnsupported, Op: "dump", PID: pid, Addr: m.Start,
					Msg: where + ": shared anonymous or deleted shared memory is not supported yet"}
			}
			v.Kind, v.Path = image.VMASharedFile, m.Path
		case m.Path == "" || strings.HasPrefix(m.Path, "["):
			v.Kind, v.Name = image.VMAAnon, m.Path
			v.Flags |= unix.MAP_ANONYMOUS
		case strings.HasPrefix(m.Path, "/"):
			if strings.HasPrefix(m.Path, "/memfd:") || strings.HasPrefix(m.Path, "/SYSV") || strings.HasPrefix(m.Path, "/dev/zero") {
				return nil, &fault.Error{Code: fault.CodeUnsupported, Op: "dump", PID: pid, Addr: m.Start,
					Msg: where + ": memfd, SysV and /dev/zero mappings are not supported yet"}
			}
			v.Kind, v.Path, v.Deleted = image.VMAFile, m.Path, m.Deleted
			if m.Deleted {
				mf := "/proc/" + strconv.Itoa(pid) + "/map_files/" + strconv.FormatUint(m.Start, 16) + "-" + strconv.FormatUint(m.End, 16)
				id, err := d.blob(mf, m.Path, v.Dev, m.Inode, 0o600)
				if err != nil {
					return nil, &fault.Error{Code: fault.CodeDumpFailed, Op: "dump", PID: pid, Addr: m.Start,
						Msg: where + ": copy the deleted file", Err: err,
						Remedy: "reading /proc/PID/map_files needs CAP_CHECKPOINT_RESTORE or root"}
				}
				v.FileID = id
			}
		default:
			return nil, &fault.Error{Code: fault.CodeUnsupported, Op: "dump", PID: pid, Addr: m.Start,
				Msg: where + ": unknown kind of mapping"}
		}
		out = append(out, v)
	}
	return out, nil
}

// pageRun is a run of pages read from the process.
type pageRun struct {
	addr  uint64
	count int
	data  []byte // nil: zero pages of a file mapping
}

// readPages reads the pages of every private mapping that must travel:
// present or swapped pages of anonymous memory that are not zero, and the
// pages of private file mappings that differ from the file (anonymous copies).
func (d *dumper) readPages(m *mem.Process, vmas []image.VMA) ([]pageRun, error) {
	var runs []pageRun
	var pm []uint64
	for i := range vmas {
		v := &vmas[i]
		if v.Kind != image.VMAAnon && v.Kind != image.VMAFile {
			continue
		}
		var err error
		pm, err = m.Pagemap(v.Start, v.End, pm)
		if err != nil {
			return nil, err
		}
		want := func(e uint64) bool {
			if e&mem.PMSwapped != 0 {
				return true
			}
			if e&mem.PMPresent == 0 {
				return false
			}
			return v.Kind == image.VMAAnon || e&mem.PMFileShare == 0
		}
		for j := 0; j < len(pm); {
			if !want(pm[j]) {
				j++
				continue
			}
			k := j
			for k < len(pm) && want(pm[k]) && k-j < 256 {
				k++
			}
			addr := v.Start + uint64(j)*mem.PageSize
			buf := make([]byte, (k-j)*mem.PageSize)
			if err := m.Read(addr, buf); err != nil {
				return nil, &fault.Error{Code: fault.CodeDumpFailed, Op: "dump", PID: m.PID, Addr: addr,
					Msg: "read memory", Err: err}
			}
			runs = appendRuns(runs, addr, buf, v.Kind == image.VMAFile, &v.Pages, &d.stats.ZeroPages)
			j = k
		}
	}
	return runs, nil
}

// appendRuns splits buf into runs of data pages and zero pages. Zero pages
// of anonymous memory are dropped (restore gets them for free); those of file
// mappings are kept as zero runs, since the file may hold something else.
func appendRuns(runs []pageRun, addr uint64, buf []byte, keepZero bool, pages, zero *uint64) []pageRun {
	n := len(buf) / mem.PageSize
	for i := 0; i < n; {
		z := mem.IsZero(buf[i*mem.PageSize : (i+1)*mem.PageSize])
		j := i + 1
		for j < n && mem.IsZero(buf[j*mem.PageSize:(j+1)*mem.PageSize]) == z {
			j++
		}
		a := addr + uint64(i)*mem.PageSize
		switch {
		case !z:
			runs = append(runs, pageRun{addr: a, count: j - i, data: buf[i*mem.PageSize : j*mem.PageSize]})
			*pages += uint64(j - i)
		case keepZero:
			runs = append(runs, pageRun{addr: a, count: j - i})
			*pages += uint64(j - i)
			*zero += uint64(j - i)
		default:
			*zero += uint64(j - i)
		}
		i = j
	}
	return runs
}
