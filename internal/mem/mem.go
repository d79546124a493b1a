// Package mem reads and writes another process's memory and its page map.
//
// Reads use process_vm_readv with large iovecs (fast) and fall back to
// /proc/PID/mem, which can also read pages the process itself cannot
// (PROT_NONE). Writes likewise use process_vm_writev and fall back to
// /proc/PID/mem, which a tracer may use to write into read-only private
// mappings, so restore can map every region with its final protection at
// once.
//
// For live migration it also tracks the pages a running process writes
// (Tracker, pre-copy) and serves the missing pages of a restored process as
// it touches them (UFFD, post-copy), both with a userfaultfd made inside
// that process (CreateUFFDIn).
package mem

import (
	"encoding/binary"
	"fmt"
	"io"
	"os"
	"strconv"

	"golang.org/x/sys/unix"
)

// PageSize is the size of a page.
const PageSize = 4096

// Pagemap entry bits (Documentation/admin-guide/mm/pagemap.rst).
const (
	PMPresent   = 1 << 63
	PMSwapped   = 1 << 62
	PMFileShare = 1 << 61 // file page or shared anonymous
	PMUffdWP    = 1 << 57
	PMExclusive = 1 << 56
	PMSoftDirty = 1 << 55
	PMPFNMask   = 1<<55 - 1
)

// Process gives access to the memory of one process. It owns two open
// files; Close releases them.
type Process struct {
	PID     int
	mem     *os.File
	pagemap *os.File
}

// Open opens /proc/PID/mem (read-write when write is set) and /proc/PID/pagemap.
func Open(pid int, write bool) (*Process, error) {
	flag := os.O_RDONLY
	if write {
		flag = os.O_RDWR
	}
	m, err := os.OpenFile("/proc/"+strconv.Itoa(pid)+"/mem", flag, 0)
	if err != nil {
		return nil, fmt.Errorf("open memory of pid %d: %w", pid, err)
	}
	pm, err := os.Open("/proc/" + strconv.Itoa(pid) + "/pagemap")
	if err != nil {
		m.Close()
		return nil, fmt.Errorf("open page map of pid %d: %w", pid, err)
	}
	return &Process{PID: pid, mem: m, pagemap: pm}, nil
}

// Close closes the files.
func (p *Process) Close() error {
	p.pagemap.Close()
	return p.mem.Close()
}

// Pagemap returns the page map entries of the pages in [start, end), in buf
// when it is large enough.
func (p *Process) Pagemap(start, end uint64, buf []uint64) ([]uint64, error) {
	n := int((end - start) / PageSize)
	if cap(buf) < n {
		buf = make([]uint64, n)
	}
	buf = buf[:n]
	// The entries are little-endian, as is every machine godwit runs on:
	// read them in place.
	raw := uint64Bytes(buf)
	for i := 0; i < len(raw); {
		off := int64(start/PageSize*8) + int64(i)
		got, err := p.pagemap.ReadAt(raw[i:min(len(raw), i+1<<22)], off)
		if got <= 0 || got%8 != 0 {
			if err == nil {
				err = io.ErrUnexpectedEOF
			}
			return nil, fmt.Errorf("pid %d: read page map at %#x: %w", p.PID, start+uint64(i/8)*PageSize, err)
		}
		i += got
	}
	return buf, nil
}

// Read fills buf from the process's memory at addr, with process_vm_readv
// and, for what that cannot read, /proc/PID/mem.
func (p *Process) Read(addr uint64, buf []byte) error {
	for len(buf) > 0 {
		chunk := buf[:min(len(buf), 1<<20)]
		local := []unix.Iovec{{Base: &chunk[0]}}
		local[0].SetLen(len(chunk))
		remote := []unix.RemoteIovec{{Base: uintptr(addr), Len: len(chunk)}}
		n, err := unix.ProcessVMReadv(p.PID, local, remote, 0)
		if err != nil || n == 0 {
			// Not readable by the process itself (PROT_NONE) or partly: the
			// tracer can still read it through /proc/PID/mem.
			m, merr := p.mem.ReadAt(chunk, int64(addr))
			if merr != nil && m < len(chunk) {
				return fmt.Errorf("pid %d: read memory at %#x: %w", p.PID, addr, merr)
			}
			n = m
		}
		buf = buf[n:]
		addr += uint64(n)
	}
	return nil
}

// Write writes data into the process's memory at addr. It uses
// process_vm_writev (fast, but only into mappings the process itself may
// write) and, for what that cannot write, /proc/PID/mem, through which the
// process's tracer may also write into read-only mappings.
func (p *Process) Write(addr uint64, data []byte) error {
	for len(data) > 0 {
		local := []unix.Iovec{{Base: &data[0]}}
		local[0].SetLen(len(data))
		remote := []unix.RemoteIovec{{Base: uintptr(addr), Len: len(data)}}
		n, err := unix.ProcessVMWritev(p.PID, local, remote, 0)
		if err != nil || n <= 0 {
			break
		}
		data = data[n:]
		addr += uint64(n)
	}
	for len(data) > 0 {
		n, err := p.mem.WriteAt(data, int64(addr))
		if err != nil {
			return fmt.Errorf("pid %d: write memory at %#x: %w", p.PID, addr, err)
		}
		data = data[n:]
		addr += uint64(n)
	}
	return nil
}

// IsZero reports whether b is all zero bytes.
func IsZero(b []byte) bool {
	for len(b) >= 64 {
		v := binary.LittleEndian.Uint64(b[0:]) | binary.LittleEndian.Uint64(b[8:]) |
			binary.LittleEndian.Uint64(b[16:]) | binary.LittleEndian.Uint64(b[24:]) |
			binary.LittleEndian.Uint64(b[32:]) | binary.LittleEndian.Uint64(b[40:]) |
			binary.LittleEndian.Uint64(b[48:]) | binary.LittleEndian.Uint64(b[56:])
		if v != 0 {
			return false
		}
		b = b[64:]
	}
	for _, c := range b {
		if c != 0 {
			return false
		}
	}
	return true
}
