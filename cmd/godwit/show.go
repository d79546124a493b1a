package main

import (
	"encoding/binary"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"sort"
	"strconv"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/spf13/cobra"

	"github.com/godwit-dev/godwit/fault"
	"github.com/godwit-dev/godwit/image"
	"github.com/godwit-dev/godwit/internal/ptrace"
)

func init() { register(newShowCommand) }

func newShowCommand() *cobra.Command {
	var imagePath string
	var asJSON bool
	cmd := &cobra.Command{
		Use:   "show [--json] --image FILE",
		Short: "decode an image (FILE may be - for stdin) and print what it holds",
		Args:  cobra.NoArgs,
		RunE: func(cmd *cobra.Command, args []string) error {
			if imagePath == "" {
				return &fault.Error{Code: fault.CodeInvalidArgument, Op: "show", Msg: "--image is required"}
			}
			r := cmd.InOrStdin()
			if imagePath != "-" {
				f, err := os.Open(imagePath)
				if err != nil {
					return &fault.Error{Code: fault.CodeIO, Op: "show", Path: imagePath, Msg: "open image", Err: err}
				}
				defer f.Close()
				r = f
			}
			doc, err := decodeImage(r)
			if err != nil {
				return err
			}
			out := cmd.OutOrStdout()
			if asJSON {
				enc := json.NewEncoder(out)
				enc.SetIndent("", "  ")
				err = enc.Encode(doc)
			} else {
				err = doc.writeText(out)
			}
			if err != nil {
				return &fault.Error{Code: fault.CodeIO, Op: "show", Msg: "write output", Err: err}
			}
			return doc.problemError()
		},
	}
	cmd.Flags().StringVar(&imagePath, "image", "", "image file to read, - for stdin")
	cmd.Flags().BoolVar(&asJSON, "json", false, "print one JSON document: the metadata, page counts per mapping and totals")
	return cmd
}

// showDoc is everything show prints, and the document of --json.
type showDoc struct {
	Version  int           `json:"version"`
	Meta     *image.Meta   `json:"meta"`
	Threads  []showThread  `json:"threads"`  // registers decoded from meta
	Mappings []showMapping `json:"mappings"` // page counts taken from the stream
	Files    []showFile    `json:"files"`
	Totals   showTotals    `json:"totals"`
	// Problems are the first maxProblems of ProblemCount problems found.
	Problems     []showProblem `json:"problems,omitempty"`
	ProblemCount int           `json:"problem_count,omitempty"`

	procs   map[int]*procCounts
	threads map[int]showThread
}

type showThread struct {
	PID int    `json:"pid"`
	TID int    `json:"tid"`
	RIP uint64 `json:"rip"`
	RSP uint64 `json:"rsp"`
	// Syscall is the system call the thread was in (orig_rax), or -1.
	Syscall int64 `json:"syscall"`
}

type showMapping struct {
	PID   int    `json:"pid"`
	Start uint64 `json:"start"`
	End   uint64 `json:"end"`
	Kind  string `json:"kind"`
	// Pages and ZeroPages are what the stream holds for the mapping;
	// MetaPages is what the metadata says it holds (VMA.Pages).
	Pages     uint64 `json:"pages"`
	ZeroPages uint64 `json:"zero_pages"`
	MetaPages uint64 `json:"meta_pages"`
}

type showFile struct {
	ID     int    `json:"id"`
	Path   string `json:"path"`
	Size   int64  `json:"size"`
	Stored int64  `json:"stored"` // bytes in FileData records
}

type showTotals struct {
	Records   uint64 `json:"records"` // the End record included
	Pages     uint64 `json:"pages"`
	ZeroPages uint64 `json:"zero_pages"`
	PageBytes uint64 `json:"page_bytes"` // bytes of page data
	FileBytes uint64 `json:"file_bytes"`
	Bytes     int64  `json:"bytes"` // the whole stream
}

// showProblem is an inconsistency between the stream and its metadata that
// the framing does not catch but restore would refuse or trip over.
type showProblem struct {
	Offset int64  `json:"offset,omitempty"`
	Record int    `json:"record,omitempty"`
	Msg    string `json:"msg"`
}

type procCounts struct {
	p     *image.Process
	pages []uint64 // per mapping
	zero  []uint64
}

// maxProblems bounds the problems show keeps; the rest are only counted.
const maxProblems = 20

// decodeImage reads an image to its end. It keeps the metadata and counters,
// never the page data.
func decodeImage(r io.Reader) (*showDoc, error) {
	ir, err := image.NewReader(r)
	if err != nil {
		return nil, badShowImage(err)
	}
	m, err := ir.ReadMeta()
	if err != nil {
		return nil, badShowImage(err)
	}
	if err := m.Validate(); err != nil {
		return nil, badShowImage(&image.FormatError{Offset: 16, Record: 0, Type: image.TypeMeta, Err: err})
	}
	d := &showDoc{Version: image.Version, Meta: m, procs: map[int]*procCounts{}, threads: map[int]showThread{},
		Threads: []showThread{}, Mappings: []showMapping{}, Files: []showFile{}}
	blobs := map[int]bool{}
	for _, f := range m.Files {
		blobs[f.ID] = true
	}
	for i := range m.Processes {
		p := &m.Processes[i]
		d.procs[p.PID] = &procCounts{p: p, pages: make([]uint64, len(p.VMAs)), zero: make([]uint64, len(p.VMAs))}
		for _, t := range p.Threads {
			st := showThread{PID: p.PID, TID: t.TID, Syscall: -1}
			if regs, err := ptrace.DecodeRegs(t.Regs); err == nil {
				st.RIP, st.RSP = regs.Rip, regs.Rsp
				if int64(regs.Orig_rax) >= 0 {
					st.Syscall = int64(regs.Orig_rax)
				}
			}
			d.Threads = append(d.Threads, st)
			d.threads[t.TID] = st
		}
	}
	stored := map[int]int64{}
	problem := func(off int64, rec int, format string, args ...any) {
		d.ProblemCount++
		if len(d.Problems) < maxProblems {
			d.Problems = append(d.Problems, showProblem{Offset: off, Record: rec, Msg: fmt.Sprintf(format, args...)})
		}
	}
	d.Totals.Records = 1
	for index := 1; ; index++ {
		off := ir.Offset()
		rec, err := ir.Next()
		if errors.Is(err, io.EOF) {
			break
		}
		if err != nil {
			return nil, badShowImage(err)
		}
		d.Totals.Records++
		switch rec.Type {
		case image.TypeFileData:
			if !blobs[rec.FileID] {
				problem(off, index, "data for file %d, which the metadata does not list", rec.FileID)
			}
			stored[rec.FileID] += int64(len(rec.Data))
			d.Totals.FileBytes += uint64(len(rec.Data))
		case image.TypePages:
			n := uint64(rec.Count)
			d.Totals.Pages += n
			if rec.Zero {
				d.Totals.ZeroPages += n
			} else {
				d.Totals.PageBytes += uint64(len(rec.Data))
			}
			end := rec.Addr + n*image.PageSize
			pc := d.procs[rec.PID]
			if pc == nil {
				problem(off, index, "pages %#x-%#x of pid %d, which is not in the image", rec.Addr, end, rec.PID)
				continue
			}
			i := sort.Search(len(pc.p.VMAs), func(i int) bool { return pc.p.VMAs[i].End > rec.Addr })
			if i == len(pc.p.VMAs) || pc.p.VMAs[i].Start > rec.Addr || end > pc.p.VMAs[i].End ||
				(pc.p.VMAs[i].Kind != image.VMAAnon && pc.p.VMAs[i].Kind != image.VMAFile) {
				problem(off, index, "pages %#x-%#x of pid %d are outside every private mapping", rec.Addr, end, rec.PID)
				continue
			}
			pc.pages[i] += n
			if rec.Zero {
				pc.zero[i] += n
			}
		}
	}
	d.Totals.Bytes = ir.Offset()
	for _, p := range m.Processes {
		pc := d.procs[p.PID]
		for i, v := range p.VMAs {
			d.Mappings = append(d.Mappings, showMapping{PID: p.PID, Start: v.Start, End: v.End, Kind: v.Kind,
				Pages: pc.pages[i], ZeroPages: pc.zero[i], MetaPages: v.Pages})
			if pc.pages[i] != v.Pages {
				problem(0, 0, "pid %d mapping %#x-%#x: %d pages stored, the metadata says %d", p.PID, v.Start, v.End, pc.pages[i], v.Pages)
			}
		}
	}
	for _, f := range m.Files {
		d.Files = append(d.Files, showFile{ID: f.ID, Path: f.Path, Size: f.Size, Stored: stored[f.ID]})
		if stored[f.ID] != f.Size {
			problem(0, 0, "file %d (%s): %d bytes stored, the metadata says %d", f.ID, f.Path, stored[f.ID], f.Size)
		}
	}
	return d, nil
}

// badShowImage turns a decoding error into a bad-image error that says where.
func badShowImage(err error) error {
	fe := &fault.Error{Code: fault.CodeBadImage, Op: "show", Msg: "cannot decode the image", Err: err}
	var ie *image.FormatError
	if errors.As(err, &ie) {
		fe.Offset = ie.Offset
	}
	return fe
}

// problemError reports the problems found, after they were printed.
func (d *showDoc) problemError() error {
	if len(d.Problems) == 0 {
		return nil
	}
	p := d.Problems[0]
	msg := p.Msg
	if d.ProblemCount > 1 {
		msg = fmt.Sprintf("%s (and %d more problems)", msg, d.ProblemCount-1)
	}
	return &fault.Error{Code: fault.CodeBadImage, Op: "show", Offset: p.Offset, Msg: msg,
		Remedy: "restore would refuse or fail on this image; take a new checkpoint"}
}

func (d *showDoc) writeText(out io.Writer) error {
	w := &textWriter{w: out}
	m := d.Meta
	w.printf("image       godwit image version %d, %d bytes, %d records\n", d.Version, d.Totals.Bytes, d.Totals.Records)
	w.printf("taken       %s on Linux %s %s (xstate %d bytes)\n",
		time.Unix(0, m.Created).UTC().Format(time.RFC3339), m.Kernel, m.Arch, m.XstateSize)
	w.printf("root        pid %d, %d process(es)\n", m.Root, len(m.Processes))
	for i := range m.Processes {
		d.writeProcess(w, &m.Processes[i])
	}
	if len(d.Files) > 0 {
		w.printf("\nfile contents (%d)\n", len(d.Files))
		tw := w.table("  ID\tSIZE\tSTORED\tPATH")
		for _, f := range d.Files {
			tw.row("  %d\t%d\t%d\t%s", f.ID, f.Size, f.Stored, f.Path)
		}
		tw.flush()
	}
	t := d.Totals
	w.printf("\ntotals      %d records, %d pages (%d with data, %d zero), %d bytes of page data, %d bytes of file data, %d bytes\n",
		t.Records, t.Pages, t.Pages-t.ZeroPages, t.ZeroPages, t.PageBytes, t.FileBytes, t.Bytes)
	if len(d.Problems) > 0 {
		w.printf("\nproblems\n")
		for _, p := range d.Problems {
			if p.Offset != 0 {
				w.printf("  record %d at offset %d: %s\n", p.Record, p.Offset, p.Msg)
			} else {
				w.printf("  %s\n", p.Msg)
			}
		}
		if d.ProblemCount > len(d.Problems) {
			w.printf("  ... and %d more\n", d.ProblemCount-len(d.Problems))
		}
	}
	return w.err
}

func (d *showDoc) writeProcess(w *textWriter, p *image.Process) {
	w.printf("\nprocess %d %q\n", p.PID, p.Comm)
	w.printf("  ppid %d, pgid %d, sid %d\n", p.PPID, p.PGID, p.SID)
	exe := p.Exe
	if p.ExeDeleted {
		exe += fmt.Sprintf(" (deleted, content in file %d)", p.ExeFile)
	}
	w.printf("  exe         %s\n", exe)
	w.printf("  cwd         %s\n", p.Cwd)
	c := p.Creds
	w.printf("  uid         %d %d %d %d (real, effective, saved, fs)\n", c.UID[0], c.UID[1], c.UID[2], c.UID[3])
	w.printf("  gid         %d %d %d %d\n", c.GID[0], c.GID[1], c.GID[2], c.GID[3])
	w.printf("  groups      %s\n", joinInts(c.Groups))
	w.printf("  caps        inh %#x prm %#x eff %#x bnd %#x amb %#x\n", c.CapInh, c.CapPrm, c.CapEff, c.CapBnd, c.CapAmb)
	w.printf("  umask       %04o\n", p.Umask)
	w.printf("  personality %#x\n", p.Personality)
	w.printf("  rlimits     %d\n", len(p.Rlimits))
	w.printf("  prctl       %s\n", prctlText(p.Prctl))
	mm := p.MM
	w.printf("  mm          code %#x-%#x data %#x-%#x brk %#x-%#x stack %#x\n",
		mm.StartCode, mm.EndCode, mm.StartData, mm.EndData, mm.StartBrk, mm.Brk, mm.StartStack)
	w.printf("              args %#x-%#x env %#x-%#x auxv %d entries\n", mm.ArgStart, mm.ArgEnd, mm.EnvStart, mm.EnvEnd, len(mm.Auxv)/2)

	w.printf("\n  threads (%d)\n", len(p.Threads))
	tw := w.table("    TID\tCOMM\tRIP\tRSP\tSYSCALL\tSIGMASK\tRSEQ\tALTSTACK")
	for _, t := range p.Threads {
		st := d.threads[t.TID]
		sys := "-"
		if st.Syscall >= 0 {
			sys = strconv.FormatInt(st.Syscall, 10)
		}
		rseq := "-"
		if t.Rseq != nil {
			rseq = fmt.Sprintf("%#x/%d sig %#x", t.Rseq.Addr, t.Rseq.Size, t.Rseq.Sig)
		}
		tw.row("    %d\t%s\t%#x\t%#x\t%s\t%s\t%s\t%s", t.TID, t.Comm, st.RIP, st.RSP, sys, sigsetText(t.Sigmask), rseq, altstackText(t.AltStack))
	}
	tw.flush()

	pc := d.procs[p.PID]
	var stored, size uint64
	for i, v := range p.VMAs {
		stored += pc.pages[i]
		size += v.Len() / image.PageSize
	}
	w.printf("\n  mappings (%d, %d of %d pages stored)\n", len(p.VMAs), stored, size)
	tw = w.table("    START-END\tPROT\tKIND\tSTORED\tZERO\tSIZE\tMAPPING")
	for i := range p.VMAs {
		v := &p.VMAs[i]
		pages := strconv.FormatUint(pc.pages[i], 10)
		if pc.pages[i] != v.Pages {
			pages += fmt.Sprintf(" (metadata: %d!)", v.Pages)
		}
		tw.row("    %#x-%#x\t%s\t%s\t%s\t%d\t%d\t%s", v.Start, v.End, protText(v), v.Kind, pages, pc.zero[i], v.Len()/image.PageSize, vmaText(v))
	}
	tw.flush()

	w.printf("\n  descriptors (%d)\n", len(p.FDs))
	if len(p.FDs) > 0 {
		tw = w.table("    FD\tKIND\tFLAGS\tOFFSET\tPATH")
		for _, f := range p.FDs {
			path := f.Path
			if f.Deleted {
				path += fmt.Sprintf(" (deleted, content in file %d)", f.FileID)
			}
			if f.SameAs >= 0 {
				path += fmt.Sprintf(" (shares its open file with fd %d)", f.SameAs)
			}
			tw.row("    %d\t%s\t%s\t%d\t%s", f.FD, f.Kind, openFlagsText(f.Flags), f.Pos, path)
		}
		tw.flush()
	}

	w.printf("\n  signal actions (%d not default)\n", len(p.SigActions))
	if len(p.SigActions) > 0 {
		tw = w.table("    SIGNAL\tHANDLER\tFLAGS\tMASK\tRESTORER")
		for _, a := range p.SigActions {
			tw.row("    %s\t%s\t%s\t%s\t%#x", signalName(a.Signal), handlerText(a.Handler), saFlagsText(a.Flags), sigsetText(a.Mask), a.Restorer)
		}
		tw.flush()
	}

	var pending []string
	for _, si := range p.Pending {
		pending = append(pending, "process: "+siginfoText(si))
	}
	for _, t := range p.Threads {
		for _, si := range t.Pending {
			pending = append(pending, fmt.Sprintf("tid %d: %s", t.TID, siginfoText(si)))
		}
	}
	w.printf("\n  pending signals (%d)\n", len(pending))
	for _, s := range pending {
		w.printf("    %s\n", s)
	}

	var timers []string
	for which, it := range p.ITimers {
		if it.IntervalUsec != 0 || it.ValueUsec != 0 {
			timers = append(timers, fmt.Sprintf("%s: value %v, interval %v", []string{"ITIMER_REAL", "ITIMER_VIRTUAL", "ITIMER_PROF"}[which],
				time.Duration(it.ValueUsec)*time.Microsecond, time.Duration(it.IntervalUsec)*time.Microsecond))
		}
	}
	for _, t := range p.Timers {
		timers = append(timers, fmt.Sprintf("timer %d: %s, %s, remaining %v, interval %v, overrun %d",
			t.ID, clockName(t.Clock), notifyText(t), time.Duration(t.RemainingNs), time.Duration(t.IntervalNs), t.Overrun))
	}
	w.printf("\n  timers (%d)\n", len(timers))
	for _, s := range timers {
		w.printf("    %s\n", s)
	}
}

// textWriter remembers the first write error.
type textWriter struct {
	w   io.Writer
	err error
}

func (w *textWriter) printf(format string, args ...any) {
	if w.err == nil {
		_, w.err = fmt.Fprintf(w.w, format, args...)
	}
}

type table struct {
	w  *textWriter
	tw *tabwriter.Writer
}

func (w *textWriter) table(header string) *table {
	t := &table{w: w, tw: tabwriter.NewWriter(w.w, 0, 0, 2, ' ', 0)}
	t.row("%s", header)
	return t
}

func (t *table) row(format string, args ...any) {
	if t.w.err == nil {
		_, t.w.err = fmt.Fprintf(t.tw, format+"\n", args...)
	}
}

func (t *table) flush() {
	if err := t.tw.Flush(); err != nil && t.w.err == nil {
		t.w.err = err
	}
}

func joinInts[T uint32 | int](v []T) string {
	if len(v) == 0 {
		return "-"
	}
	s := make([]string, len(v))
	for i, x := range v {
		s[i] = strconv.FormatInt(int64(x), 10)
	}
	return strings.Join(s, " ")
}

func prctlText(p image.Prctl) string {
	parts := []string{fmt.Sprintf("dumpable %d", p.Dumpable)}
	if p.NoNewPrivs {
		parts = append(parts, "no_new_privs")
	}
	if p.PdeathSig != 0 {
		parts = append(parts, "pdeathsig "+signalName(p.PdeathSig))
	}
	if p.ChildSubreaper {
		parts = append(parts, "child_subreaper")
	}
	return strings.Join(parts, ", ")
}

// The names below are those of x86_64, the only architecture an image can
// have (Meta.Validate), whatever machine show runs on.

var signalNames = [...]string{1: "SIGHUP", "SIGINT", "SIGQUIT", "SIGILL", "SIGTRAP", "SIGABRT", "SIGBUS", "SIGFPE",
	"SIGKILL", "SIGUSR1", "SIGSEGV", "SIGUSR2", "SIGPIPE", "SIGALRM", "SIGTERM", "SIGSTKFLT", "SIGCHLD", "SIGCONT",
	"SIGSTOP", "SIGTSTP", "SIGTTIN", "SIGTTOU", "SIGURG", "SIGXCPU", "SIGXFSZ", "SIGVTALRM", "SIGPROF", "SIGWINCH",
	"SIGIO", "SIGPWR", "SIGSYS"}

// signalName names signal n, the real-time ones as glibc numbers them
// (SIGRTMIN is 34; 32 and 33 are reserved by the C library).
func signalName(n int) string {
	switch {
	case n > 0 && n < len(signalNames):
		return signalNames[n]
	case n == 34:
		return "SIGRTMIN"
	case n > 34 && n <= 64:
		return fmt.Sprintf("SIGRTMIN+%d", n-34)
	}
	return fmt.Sprintf("SIG%d", n)
}

// sigsetText prints a signal set as hex and, when short, by name.
func sigsetText(set uint64) string {
	if set == 0 {
		return "0"
	}
	var names []string
	for n := 1; n <= 64; n++ {
		if set&(1<<(n-1)) != 0 {
			names = append(names, signalName(n))
		}
	}
	if len(names) > 4 {
		return fmt.Sprintf("%#x (%d signals)", set, len(names))
	}
	return fmt.Sprintf("%#x (%s)", set, strings.Join(names, ","))
}

type flagName struct {
	bit  uint64
	name string
}

// flagsText names the bits of v, and prints what is left in hex.
func flagsText(v uint64, names []flagName) []string {
	var out []string
	for _, f := range names {
		if v&f.bit == f.bit && f.bit != 0 {
			out = append(out, f.name)
			v &^= f.bit
		}
	}
	if v != 0 {
		out = append(out, fmt.Sprintf("%#x", v))
	}
	return out
}

var openFlagNames = []flagName{
	{0o4010000, "O_SYNC"}, // before O_DSYNC, which it includes
	{0o100, "O_CREAT"}, {0o200, "O_EXCL"}, {0o400, "O_NOCTTY"}, {0o1000, "O_TRUNC"}, {0o2000, "O_APPEND"},
	{0o4000, "O_NONBLOCK"}, {0o10000, "O_DSYNC"}, {0o20000, "O_ASYNC"}, {0o40000, "O_DIRECT"},
	{0o100000, "O_LARGEFILE"}, {0o200000, "O_DIRECTORY"}, {0o400000, "O_NOFOLLOW"}, {0o1000000, "O_NOATIME"},
	{0o2000000, "O_CLOEXEC"}, {0o10000000, "O_PATH"}, {0o20000000, "__O_TMPFILE"},
}

// openFlagsText decodes open(2) flags: O_RDWR|O_APPEND|O_CLOEXEC.
func openFlagsText(flags uint32) string {
	acc := []string{"O_RDONLY", "O_WRONLY", "O_RDWR", "O_ACCMODE"}[flags&3]
	return strings.Join(append([]string{acc}, flagsText(uint64(flags&^3), openFlagNames)...), "|")
}

var saFlagNames = []flagName{
	{1, "SA_NOCLDSTOP"}, {2, "SA_NOCLDWAIT"}, {4, "SA_SIGINFO"}, {0x400, "SA_UNSUPPORTED"}, {0x800, "SA_EXPOSE_TAGBITS"},
	{0x04000000, "SA_RESTORER"}, {0x08000000, "SA_ONSTACK"}, {0x10000000, "SA_RESTART"},
	{0x40000000, "SA_NODEFER"}, {0x80000000, "SA_RESETHAND"},
}

func saFlagsText(flags uint64) string {
	if flags == 0 {
		return "0"
	}
	return strings.Join(flagsText(flags, saFlagNames), "|")
}

func handlerText(h uint64) string {
	switch h {
	case 0:
		return "SIG_DFL"
	case 1:
		return "SIG_IGN"
	}
	return fmt.Sprintf("%#x", h)
}

func altstackText(a image.AltStack) string {
	var flags []string
	if a.Flags&1 != 0 {
		flags = append(flags, "SS_ONSTACK")
	}
	if a.Flags&2 != 0 {
		flags = append(flags, "SS_DISABLE")
	}
	if uint32(a.Flags)&(1<<31) != 0 {
		flags = append(flags, "SS_AUTODISARM")
	}
	if rest := uint32(a.Flags) &^ (1<<31 | 3); rest != 0 {
		flags = append(flags, fmt.Sprintf("%#x", rest))
	}
	if a.SP == 0 && a.Size == 0 {
		if len(flags) == 0 {
			return "-"
		}
		return strings.Join(flags, "|")
	}
	s := fmt.Sprintf("%#x+%d", a.SP, a.Size)
	if len(flags) > 0 {
		s += " " + strings.Join(flags, "|")
	}
	return s
}

// siginfoText decodes the head of a raw siginfo_t.
func siginfoText(si image.Siginfo) string {
	if len(si) < 24 {
		return fmt.Sprintf("siginfo of %d bytes", len(si))
	}
	le := binary.LittleEndian
	signo, errno, code := int32(le.Uint32(si[0:])), int32(le.Uint32(si[4:])), int32(le.Uint32(si[8:]))
	s := signalName(int(signo))
	switch code {
	case 0, -1, -6: // SI_USER, SI_QUEUE, SI_TKILL: sent by a process
		s += fmt.Sprintf(" (%s from pid %d uid %d)", map[int32]string{0: "SI_USER", -1: "SI_QUEUE", -6: "SI_TKILL"}[code],
			int32(le.Uint32(si[16:])), le.Uint32(si[20:]))
	case 0x80:
		s += " (SI_KERNEL)"
	case -2:
		s += " (SI_TIMER)"
	default:
		s += fmt.Sprintf(" (code %d)", code)
	}
	if errno != 0 {
		s += fmt.Sprintf(" errno %d", errno)
	}
	return s
}

var clockNames = map[int]string{0: "CLOCK_REALTIME", 1: "CLOCK_MONOTONIC", 2: "CLOCK_PROCESS_CPUTIME_ID",
	3: "CLOCK_THREAD_CPUTIME_ID", 4: "CLOCK_MONOTONIC_RAW", 5: "CLOCK_REALTIME_COARSE", 6: "CLOCK_MONOTONIC_COARSE",
	7: "CLOCK_BOOTTIME", 8: "CLOCK_REALTIME_ALARM", 9: "CLOCK_BOOTTIME_ALARM", 11: "CLOCK_TAI"}

func clockName(c int) string {
	if n, ok := clockNames[c]; ok {
		return n
	}
	return fmt.Sprintf("clock %d", c)
}

func notifyText(t image.PosixTimer) string {
	switch t.Notify {
	case 0:
		return "signal " + signalName(t.Signal)
	case 1:
		return "no notification"
	case 4:
		return fmt.Sprintf("signal %s to tid %d", signalName(t.Signal), t.NotifyTID)
	}
	return fmt.Sprintf("notify %d, signal %s", t.Notify, signalName(t.Signal))
}

// protText prints a mapping's protection like /proc/PID/maps.
func protText(v *image.VMA) string {
	b := []byte("---p")
	if v.Prot&1 != 0 {
		b[0] = 'r'
	}
	if v.Prot&2 != 0 {
		b[1] = 'w'
	}
	if v.Prot&4 != 0 {
		b[2] = 'x'
	}
	if v.Flags&1 != 0 { // MAP_SHARED
		b[3] = 's'
	}
	return string(b)
}

func vmaText(v *image.VMA) string {
	s := v.Path
	if s == "" {
		s = v.Name
	}
	if s == "" {
		s = "(anonymous)"
	}
	if v.Path != "" && v.Name != "" {
		s += " " + v.Name
	}
	if v.Kind == image.VMAFile || v.Kind == image.VMASharedFile {
		s += fmt.Sprintf(" @%#x", v.Offset)
	}
	if v.Deleted {
		s += fmt.Sprintf(" (deleted, content in file %d)", v.FileID)
	}
	return s
}
