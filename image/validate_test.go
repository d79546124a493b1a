package image_test

import (
	"errors"
	"reflect"
	"strings"
	"testing"

	"github.com/godwit-dev/godwit/image"
)

// TestValidate breaks the sample metadata one rule at a time.
func TestValidate(t *testing.T) {
	proc := func(m *image.Meta) *image.Process { return &m.Processes[0] }
	vma := func(m *image.Meta, i int) *image.VMA { return &m.Processes[0].VMAs[i] }
	fd := func(m *image.Meta, i int) *image.FD { return &m.Processes[0].FDs[i] }
	thread := func(m *image.Meta, i int) *image.Thread { return &m.Processes[0].Threads[i] }
	tests := []struct {
		name   string
		mutate func(m *image.Meta)
		want   string // in the message
	}{
		{"arch", func(m *image.Meta) { m.Arch = "aarch64" }, `architecture "aarch64"`},
		{"no arch", func(m *image.Meta) { m.Arch = "" }, `architecture ""`},
		{"xstate too small", func(m *image.Meta) { m.XstateSize = 511 }, "xstate size 511"},
		{"xstate too large", func(m *image.Meta) { m.XstateSize = 1<<16 + 1 }, "xstate size 65537"},
		{"no processes", func(m *image.Meta) { m.Processes = nil }, "0 processes"},
		{"too many processes", func(m *image.Meta) { m.Processes = make([]image.Process, image.MaxProcesses+1) }, "16385 processes"},
		{"blob id 0", func(m *image.Meta) { m.Files[0].ID = 0 }, "file blob id 0"},
		{"blob id negative", func(m *image.Meta) { m.Files[0].ID = -1 }, "file blob id -1"},
		{"blob id repeated", func(m *image.Meta) { m.Files = append(m.Files, m.Files[0]) }, "file blob id 1"},
		{"blob size negative", func(m *image.Meta) { m.Files[0].Size = -1 }, "file blob 1 size -1"},
		{"blob size huge", func(m *image.Meta) { m.Files[0].Size = 1<<40 + 1 }, "file blob 1 size"},
		{"blob path relative", func(m *image.Meta) { m.Files[0].Path = "scratch" }, `file blob 1: path "scratch" is not absolute`},
		{"blob path empty", func(m *image.Meta) { m.Files[0].Path = "" }, `file blob 1: path "" is not absolute`},
		{"too many threads", func(m *image.Meta) {
			proc(m).Threads = make([]image.Thread, image.MaxThreads+1)
		}, "more than 16384 threads"},
		{"too many threads in all", func(m *image.Meta) {
			m.Processes = append(m.Processes, m.Processes[0])
			m.Processes[1].Threads = make([]image.Thread, image.MaxThreads-1)
		}, "more than 16384 threads"},
		{"root missing", func(m *image.Meta) { m.Root = 1 }, "root pid 1 is not among the processes"},
		{"pid 0", func(m *image.Meta) { m.Root, proc(m).PID = 0, 0 }, "pid 0 out of range"},
		{"pid too large", func(m *image.Meta) { m.Root, proc(m).PID = image.MaxPID, image.MaxPID }, "pid 4194304 out of range"},
		{"no threads", func(m *image.Meta) { proc(m).Threads = nil }, "the first thread must be the leader"},
		{"leader not first", func(m *image.Meta) {
			p := proc(m)
			p.Threads[0], p.Threads[1] = p.Threads[1], p.Threads[0]
		}, "the first thread must be the leader"},
		{"tid 0", func(m *image.Meta) { thread(m, 1).TID = 0 }, "tid 0 invalid or repeated"},
		{"tid too large", func(m *image.Meta) { thread(m, 1).TID = image.MaxPID }, "tid 4194304 invalid or repeated"},
		{"tid repeated", func(m *image.Meta) { thread(m, 1).TID = 4242 }, "tid 4242 invalid or repeated"},
		{"tid in two processes", func(m *image.Meta) {
			p := m.Processes[0]
			p.PID, p.Threads = 5000, []image.Thread{p.Threads[0], p.Threads[1]}
			p.Threads[0].TID = 5000
			m.Processes = append(m.Processes, p)
		}, "process 5000: " + image.ErrInconsistent.Error() + ": tid 4243 invalid or repeated"},
		{"pid twice", func(m *image.Meta) { m.Processes = append(m.Processes, m.Processes[0]) }, "tid 4242 invalid or repeated"},
		{"short registers", func(m *image.Meta) { thread(m, 1).Regs = thread(m, 1).Regs[1:] }, "tid 4243: 215 bytes of registers, want 216"},
		{"no registers", func(m *image.Meta) { thread(m, 0).Regs = nil }, "tid 4242: 0 bytes of registers"},
		{"xstate size", func(m *image.Meta) { thread(m, 1).Xstate = make([]byte, 512) }, "tid 4243: 512 bytes of xstate, want 576"},
		{"thread siginfo", func(m *image.Meta) { thread(m, 1).Pending[0] = make([]byte, 127) }, "tid 4243: siginfo of 127 bytes"},
		{"rseq too small", func(m *image.Meta) { thread(m, 0).Rseq.Size = 31 }, "tid 4242: rseq size 31"},
		{"rseq too large", func(m *image.Meta) { thread(m, 0).Rseq.Size = 4097 }, "tid 4242: rseq size 4097"},
		{"process siginfo", func(m *image.Meta) { proc(m).Pending[0] = nil }, "siginfo of 0 bytes"},
		{"sigaction 0", func(m *image.Meta) { proc(m).SigActions[0].Signal = 0 }, "sigaction for signal 0"},
		{"sigaction 65", func(m *image.Meta) { proc(m).SigActions[0].Signal = 65 }, "sigaction for signal 65"},
		{"rlimit -1", func(m *image.Meta) { proc(m).Rlimits[0].Resource = -1 }, "rlimit resource -1"},
		{"rlimit 16", func(m *image.Meta) { proc(m).Rlimits[0].Resource = 16 }, "rlimit resource 16"},
		{"auxv odd", func(m *image.Meta) { proc(m).MM.Auxv = []uint64{1, 2, 3} }, "auxv of 3 words"},
		{"auxv too long", func(m *image.Meta) { proc(m).MM.Auxv = make([]uint64, 1026) }, "auxv of 1026 words"},
		{"deleted exe", func(m *image.Meta) { proc(m).ExeDeleted, proc(m).ExeFile = true, 2 }, "deleted executable without content"},
		{"too many mappings", func(m *image.Meta) { proc(m).VMAs = make([]image.VMA, image.MaxVMAs+1) }, "65537 mappings"},
		{"mappings unsorted", func(m *image.Meta) {
			v := proc(m).VMAs
			v[0], v[1] = v[1], v[0]
		}, "mappings not sorted"},
		{"mapping start misaligned", func(m *image.Meta) { vma(m, 1).Start += 8 }, "mapping 0x405008-0x426000"},
		{"mapping end misaligned", func(m *image.Meta) { vma(m, 1).End -= 8 }, "mapping 0x405000-0x425ff8"},
		{"mapping empty", func(m *image.Meta) { vma(m, 1).End = vma(m, 1).Start }, "mapping 0x405000-0x405000"},
		{"mapping reversed", func(m *image.Meta) { vma(m, 5).End = vma(m, 5).Start - image.PageSize }, "mapping 0x7ffc00100000-0x7ffc000ff000"},
		{"mapping beyond user space", func(m *image.Meta) {
			vma(m, 5).Start, vma(m, 5).End = image.MaxAddr, image.MaxAddr+image.PageSize
		}, "mapping 0xfffffffffff000-0x100000000000000"},
		{"mappings overlap", func(m *image.Meta) { vma(m, 1).Start = 0x401000 }, "mapping 0x401000-0x426000 overlaps the one before"},
		{"mapping claims too many pages", func(m *image.Meta) { vma(m, 0).Pages = 3 }, "mapping 0x400000-0x402000 claims 3 pages"},
		{"mapping file path relative", func(m *image.Meta) { vma(m, 0).Path = "bin/victim" }, `file path "bin/victim" is not absolute`},
		{"mapping shared file path empty", func(m *image.Meta) { vma(m, 2).Path = "" }, `file path "" is not absolute`},
		{"mapping deleted file", func(m *image.Meta) { vma(m, 3).FileID = 2 }, "mapping 0x7f0000010000-0x7f0000011000: deleted file without content"},
		{"mapping kind", func(m *image.Meta) { vma(m, 1).Kind = "shared-anon" }, `unknown kind "shared-anon"`},
		{"mapping no kind", func(m *image.Meta) { vma(m, 1).Kind = "" }, `unknown kind ""`},
		{"fd negative", func(m *image.Meta) { fd(m, 0).FD = -1 }, "fd -1 invalid or repeated"},
		{"fd too large", func(m *image.Meta) { fd(m, 5).FD = image.MaxFDs }, "fd 1048576 invalid or repeated"},
		{"fd repeated", func(m *image.Meta) { fd(m, 3).FD = 1 }, "fd 1 invalid or repeated"},
		{"fd kind", func(m *image.Meta) { fd(m, 0).Kind = "pipe" }, `fd 0: unknown kind "pipe"`},
		{"fd path relative", func(m *image.Meta) { fd(m, 1).Path = "out.log" }, `fd 1: path "out.log" is not absolute`},
		{"fd path empty", func(m *image.Meta) { fd(m, 0).Path = "" }, `fd 0: path "" is not absolute`},
		{"fd deleted", func(m *image.Meta) { fd(m, 4).FileID = 0 }, "fd 4: deleted file without content"},
		{"fd offset", func(m *image.Meta) { fd(m, 1).Pos = -1 }, "fd 1: offset -1"},
		{"fd shares with a missing fd", func(m *image.Meta) { fd(m, 2).SameAs = 9 }, "fd 2: shares with fd 9"},
		{"fd shares with a later fd", func(m *image.Meta) { fd(m, 1).SameAs = 2 }, "fd 1: shares with fd 2"},
		{"fd shares with itself", func(m *image.Meta) { fd(m, 1).SameAs = 1 }, "fd 1: shares with fd 1"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			m := sampleMeta()
			tt.mutate(m)
			err := m.Validate()
			if !errors.Is(err, image.ErrInconsistent) {
				t.Fatalf("got %v, want ErrInconsistent", err)
			}
			if !strings.Contains(err.Error(), tt.want) {
				t.Errorf("message %q does not say %q", err, tt.want)
			}
		})
	}
}

// TestValidateOK checks variations that are valid.
func TestValidateOK(t *testing.T) {
	tests := []struct {
		name string
		edit func(m *image.Meta)
	}{
		{"sample", func(m *image.Meta) {}},
		{"single thread", func(m *image.Meta) { m.Processes[0].Threads = m.Processes[0].Threads[:1] }},
		{"no mappings, descriptors or files", func(m *image.Meta) {
			p := &m.Processes[0]
			p.VMAs, p.FDs, m.Files = nil, nil, nil
		}},
		{"xstate bounds", func(m *image.Meta) {
			m.XstateSize = 512
			for i := range m.Processes[0].Threads {
				m.Processes[0].Threads[i].Xstate = make([]byte, 512)
			}
		}},
		{"mappings touch", func(m *image.Meta) {
			v := m.Processes[0].VMAs
			v[1].Start = v[0].End
		}},
		{"every page stored", func(m *image.Meta) { m.Processes[0].VMAs[0].Pages = 2 }},
		{"highest mapping", func(m *image.Meta) {
			v := &m.Processes[0].VMAs[5]
			v.Start, v.End = image.MaxAddr-image.PageSize, image.MaxAddr
		}},
		{"rseq bounds", func(m *image.Meta) { m.Processes[0].Threads[0].Rseq.Size = 4096 }},
		{"deleted executable", func(m *image.Meta) {
			p := &m.Processes[0]
			p.ExeDeleted, p.ExeFile = true, 1
		}},
		{"two processes", func(m *image.Meta) {
			p := m.Processes[0]
			p.PID, p.PPID = 5000, 4242
			p.Threads = []image.Thread{p.Threads[0]}
			p.Threads[0].TID = 5000
			m.Processes = append(m.Processes, p)
		}},
		{"rlimit and signal bounds", func(m *image.Meta) {
			p := &m.Processes[0]
			p.Rlimits = []image.Rlimit{{Resource: 0}, {Resource: 15}}
			p.SigActions = []image.SigAction{{Signal: 1}, {Signal: 64}}
		}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			m := sampleMeta()
			tt.edit(m)
			if err := m.Validate(); err != nil {
				t.Fatal(err)
			}
			want := sampleMeta()
			tt.edit(want)
			if !reflect.DeepEqual(m, want) {
				t.Error("Validate changed the metadata")
			}
		})
	}
}

func TestFindVMA(t *testing.T) {
	p := &sampleMeta().Processes[0]
	for _, tc := range []struct {
		addr  uint64
		start uint64 // 0: none
	}{
		{0, 0}, {0x3fffff, 0}, {0x400000, 0x400000}, {0x401fff, 0x400000}, {0x402000, 0},
		{0x425fff, 0x405000}, {0x7ffc00020fff, 0x7ffc00000000}, {0x7ffc00102000, 0}, {^uint64(0), 0},
	} {
		v := p.FindVMA(tc.addr)
		switch {
		case v == nil && tc.start != 0:
			t.Errorf("FindVMA(%#x) = nil, want the mapping at %#x", tc.addr, tc.start)
		case v != nil && v.Start != tc.start:
			t.Errorf("FindVMA(%#x) = mapping at %#x, want %#x", tc.addr, v.Start, tc.start)
		}
	}
	var empty image.Process
	if empty.FindVMA(0x1000) != nil {
		t.Error("FindVMA found a mapping in an empty process")
	}
}

func TestMetaProcess(t *testing.T) {
	m := sampleMeta()
	if p := m.Process(4242); p != &m.Processes[0] {
		t.Errorf("Process(4242) = %p, want %p", p, &m.Processes[0])
	}
	if p := m.Process(4243); p != nil {
		t.Errorf("Process(4243) (a thread) = %+v, want nil", p)
	}
}
