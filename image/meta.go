package image

import "encoding/json"

// Meta is the metadata of a checkpointed process tree: everything but the
// contents of memory and of deleted files. It is the first record of an image.
type Meta struct {
	// Kernel is the release of the kernel the image was taken on.
	Kernel string `json:"kernel"`
	// Arch is the machine architecture ("x86_64").
	Arch string `json:"arch"`
	// XstateSize is the size of the NT_X86_XSTATE regset on the dumping CPU.
	XstateSize int `json:"xstate_size"`
	// Created is the wall-clock time of the freeze, in Unix nanoseconds.
	Created int64 `json:"created"`
	// Root is the PID of the tree's root process.
	Root int `json:"root"`
	// Processes are listed parents before children.
	Processes []Process `json:"processes"`
	// Zombies are children of processes of the tree that have exited but
	// were not reaped yet. They come back as zombies with the same status.
	Zombies []Zombie `json:"zombies,omitempty"`
	// Files holds contents that travel in FileData records, by ID.
	Files []FileBlob `json:"files,omitempty"`
	// Terminal is the terminal of a shell job: the one terminal that
	// descriptors of kind FDTTY and controlling terminals (Process.CTTY)
	// refer to. Restore attaches them to its own terminal instead.
	Terminal *Terminal `json:"terminal,omitempty"`
	// SysVShm are the SysV shared memory segments that processes of the
	// tree have attached (VMAs of kind VMASysVShm), each listed once.
	SysVShm []SysVShm `json:"sysv_shm,omitempty"`
}

// Terminal is the terminal a shell job ran on (a pseudo-terminal slave,
// /dev/pts/N), as it was when the tree was dumped.
type Terminal struct {
	// Rdev is the terminal's device number (user-space dev_t).
	Rdev uint64 `json:"rdev"`
	// Index is N of /dev/pts/N.
	Index int `json:"index"`
	// Foreground is the terminal's foreground process group (tpgid in
	// /proc/PID/stat of a process it is the controlling terminal of), 0
	// when no process of the tree had it as its controlling terminal.
	Foreground int `json:"foreground,omitempty"`
	// Termios is the terminal's line discipline settings, nil when no
	// descriptor of it could be read.
	Termios *Termios `json:"termios,omitempty"`
}

// Termios is the kernel's struct termios (TCGETS).
type Termios struct {
	Iflag uint32 `json:"iflag"`
	Oflag uint32 `json:"oflag"`
	Cflag uint32 `json:"cflag"`
	Lflag uint32 `json:"lflag"`
	Line  uint8  `json:"line"`
	// Cc holds the NCCS (19) control characters.
	Cc []byte `json:"cc"`
}

// NCCS is the number of control characters in Termios.Cc.
const NCCS = 19

// SysVShm is a SysV shared memory segment (shmget). Restore recreates it
// with the same id in its own IPC namespace.
type SysVShm struct {
	// ID is the segment's shmid.
	ID int `json:"id"`
	// Key is its key; IPC_PRIVATE (0) once it was removed.
	Key int32 `json:"key"`
	// Mode holds the permission bits (0777).
	Mode uint32 `json:"mode"`
	Size uint64 `json:"size"`
	// UID and GID own the segment; CUID and CGID created it (restore, not
	// the image, is the creator of the recreated one).
	UID  uint32 `json:"uid"`
	GID  uint32 `json:"gid"`
	CUID uint32 `json:"cuid"`
	CGID uint32 `json:"cgid"`
	// Removed tells the segment was marked for destruction (IPC_RMID while
	// attached, SHM_DEST): it goes when its last attachment does.
	Removed bool `json:"removed,omitempty"`
	// Locked tells its pages were locked in memory (SHM_LOCK).
	Locked bool `json:"locked,omitempty"`
	// FileID is the FileBlob (marked SysV) holding its contents.
	FileID int `json:"file_id"`
}

// Zombie is an exited, unreaped process of the tree.
type Zombie struct {
	PID  int    `json:"pid"`
	Comm string `json:"comm"`
	PPID int    `json:"ppid"`
	PGID int    `json:"pgid"`
	SID  int    `json:"sid"`
	// Status is the wait status its parent will read (as from waitpid).
	Status     int   `json:"status"`
	ExitSignal int   `json:"exit_signal"`
	NSpid      []int `json:"nspid,omitempty"`
}

// FileBlob describes the content of a file carried in the image.
type FileBlob struct {
	ID   int    `json:"id"`
	Size int64  `json:"size"`
	Mode uint32 `json:"mode"`
	Path string `json:"path"` // where the file lived when it was dumped
	// Shmem marks memory that no path names: shared anonymous memory or a
	// memfd. Restore recreates it as a memfd rather than a file.
	Shmem bool `json:"shmem,omitempty"`
	// SysV marks the contents of a SysV shared memory segment (named by
	// exactly one Meta.SysVShm). Restore fills the segment, no file.
	SysV bool `json:"sysv,omitempty"`
}

// Process is one checkpointed process.
type Process struct {
	PID  int    `json:"pid"`
	PPID int    `json:"ppid"`
	PGID int    `json:"pgid"`
	SID  int    `json:"sid"`
	Comm string `json:"comm"`
	// ExitSignal is the signal its parent gets when it exits (SIGCHLD).
	ExitSignal int `json:"exit_signal"`
	// NSpid is the process's pid in each PID namespace from the dumper's
	// (NSpid[0] == PID) to its own, innermost, one.
	NSpid []int `json:"nspid,omitempty"`
	// Exe is the path of the executable (/proc/PID/exe).
	Exe        string `json:"exe"`
	ExeDeleted bool   `json:"exe_deleted,omitempty"`
	// ExeFile is the ID of the FileBlob with the executable when ExeDeleted.
	ExeFile int `json:"exe_file,omitempty"`

	Creds       Creds        `json:"creds"`
	Umask       uint32       `json:"umask"`
	Cwd         string       `json:"cwd"`
	Personality uint32       `json:"personality"`
	Prctl       Prctl        `json:"prctl"`
	Rlimits     []Rlimit     `json:"rlimits"`
	SigActions  []SigAction  `json:"sigactions"`
	Pending     []Siginfo    `json:"pending,omitempty"` // process-wide pending signals
	ITimers     [3]ITimer    `json:"itimers"`           // ITIMER_REAL, _VIRTUAL, _PROF
	Timers      []PosixTimer `json:"timers,omitempty"`
	MM          MM           `json:"mm"`
	VMAs        []VMA        `json:"vmas"`
	FDs         []FD         `json:"fds"`
	Threads     []Thread     `json:"threads"` // the leader first
	// CTTY tells that the process's controlling terminal is Meta.Terminal.
	CTTY bool `json:"ctty,omitempty"`
}

// Creds are a process's credentials.
type Creds struct {
	UID    [4]uint32 `json:"uid"` // real, effective, saved, fs
	GID    [4]uint32 `json:"gid"`
	Groups []uint32  `json:"groups"`
	CapInh uint64    `json:"cap_inh"`
	CapPrm uint64    `json:"cap_prm"`
	CapEff uint64    `json:"cap_eff"`
	CapBnd uint64    `json:"cap_bnd"`
	CapAmb uint64    `json:"cap_amb"`
}

// Prctl holds per-process prctl(2) state.
type Prctl struct {
	Dumpable       int  `json:"dumpable"`
	NoNewPrivs     bool `json:"no_new_privs,omitempty"`
	PdeathSig      int  `json:"pdeathsig,omitempty"`
	ChildSubreaper bool `json:"child_subreaper,omitempty"`
}

// Rlimit is one resource limit. Infinity is ^uint64(0).
type Rlimit struct {
	Resource int    `json:"resource"`
	Cur      uint64 `json:"cur"`
	Max      uint64 `json:"max"`
}

// SigAction is the kernel's struct sigaction for one signal.
type SigAction struct {
	Signal   int    `json:"sig"`
	Handler  uint64 `json:"handler"`
	Flags    uint64 `json:"flags"`
	Restorer uint64 `json:"restorer"`
	Mask     uint64 `json:"mask"`
}

// Siginfo is a raw 128-byte siginfo_t of a queued signal.
type Siginfo []byte

// ITimer is one interval timer (setitimer), in microseconds.
type ITimer struct {
	IntervalUsec int64 `json:"interval_usec"`
	ValueUsec    int64 `json:"value_usec"`
}

// PosixTimer is one timer_create(2) timer.
type PosixTimer struct {
	ID          int    `json:"id"`
	Clock       int    `json:"clock"`
	Signal      int    `json:"signal"`
	Notify      int    `json:"notify"` // SIGEV_SIGNAL, SIGEV_NONE, SIGEV_THREAD_ID
	NotifyTID   int    `json:"notify_tid,omitempty"`
	Value       uint64 `json:"value"` // sigev_value
	IntervalNs  int64  `json:"interval_ns"`
	RemainingNs int64  `json:"remaining_ns"`
	Overrun     int    `json:"overrun,omitempty"`
}

// MM holds the mm_struct fields that /proc reports and PR_SET_MM_MAP restores.
type MM struct {
	StartCode  uint64   `json:"start_code"`
	EndCode    uint64   `json:"end_code"`
	StartData  uint64   `json:"start_data"`
	EndData    uint64   `json:"end_data"`
	StartBrk   uint64   `json:"start_brk"`
	Brk        uint64   `json:"brk"`
	StartStack uint64   `json:"start_stack"`
	ArgStart   uint64   `json:"arg_start"`
	ArgEnd     uint64   `json:"arg_end"`
	EnvStart   uint64   `json:"env_start"`
	EnvEnd     uint64   `json:"env_end"`
	Auxv       []uint64 `json:"auxv"`
}

// VMA kinds.
const (
	VMAAnon       = "anon"        // private anonymous (incl. [heap], [stack], [anon:...])
	VMAFile       = "file"        // private file mapping
	VMASharedFile = "shared-file" // MAP_SHARED file mapping
	VMAVdso       = "vdso"        // [vdso], [vvar], [vvar_vclock]: moved, not written
	// VMASysVShm is an attachment (shmat) of a SysV shared memory segment:
	// Inode is the segment's shmid (the kernel numbers a segment's inode
	// with its id), Offset the offset in the segment. No pages travel: the
	// contents are in the segment's FileBlob.
	VMASysVShm = "sysv-shm"
)

// VMA is one mapping of a process.
type VMA struct {
	Start uint64 `json:"start"`
	End   uint64 `json:"end"`
	Prot  uint32 `json:"prot"`  // PROT_*
	Flags uint32 `json:"flags"` // MAP_PRIVATE, MAP_SHARED, MAP_GROWSDOWN, MAP_ANONYMOUS
	Kind  string `json:"kind"`
	// Name is the pathname column of /proc/PID/maps for special mappings
	// ("[heap]", "[stack]", "[vdso]", ...).
	Name    string   `json:"name,omitempty"`
	Path    string   `json:"path,omitempty"`
	Deleted bool     `json:"deleted,omitempty"`
	FileID  int      `json:"file_id,omitempty"` // FileBlob holding a deleted file's content
	Offset  uint64   `json:"offset,omitempty"`  // file offset in bytes
	Dev     uint64   `json:"dev,omitempty"`
	Inode   uint64   `json:"inode,omitempty"`
	VmFlags []string `json:"vmflags,omitempty"`
	// Pages is the number of pages of this mapping stored in the image
	// (zero runs of file mappings included).
	Pages uint64 `json:"pages"`
}

// Len is the length of the mapping in bytes.
func (v VMA) Len() uint64 { return v.End - v.Start }

// FD kinds.
const (
	FDFile = "file" // regular file
	FDDir  = "dir"  // directory
	FDPath = "path" // O_PATH descriptor of anything
	FDChr  = "chr"  // character device (/dev/null, /dev/zero, /dev/urandom, ...)
	// FDObject is a kernel object without a path (pipe, socket, eventfd,
	// epoll, timerfd, signalfd, inotify, pidfd, memfd), described in Object.
	FDObject = "object"
	// FDTTY is the terminal of a shell job (Meta.Terminal): /dev/pts/N, or
	// /dev/tty standing for it. Restore attaches it to its own terminal.
	FDTTY = "tty"
)

// FD is one open file descriptor.
type FD struct {
	FD      int    `json:"fd"`
	Kind    string `json:"kind"`
	Path    string `json:"path"`
	Flags   uint32 `json:"flags"` // open flags incl. O_CLOEXEC, as in fdinfo
	Pos     int64  `json:"pos"`
	Deleted bool   `json:"deleted,omitempty"`
	FileID  int    `json:"file_id,omitempty"` // FileBlob of a deleted file
	Mode    uint32 `json:"mode"`              // st_mode
	Rdev    uint64 `json:"rdev,omitempty"`
	// SameAs is the lowest other fd of the same process that shares this
	// fd's open file description (dup), or -1.
	SameAs int `json:"same_as"`
	// Object describes an FDObject descriptor (package internal/files'
	// Desc as JSON).
	Object json.RawMessage `json:"object,omitempty"`
	// Inherit names an fd of a process listed earlier that shares this fd's
	// open file description (fork, SCM_RIGHTS); nil when there is none.
	Inherit *FDRef `json:"inherit,omitempty"`
	// TTY describes an FDTTY descriptor.
	TTY *TTY `json:"tty,omitempty"`
}

// TTY describes a descriptor of the shell job's terminal.
type TTY struct {
	// Index is N of /dev/pts/N (Meta.Terminal.Index).
	Index int `json:"index"`
	// DevTTY tells the descriptor was opened through /dev/tty, the
	// process's controlling terminal.
	DevTTY bool `json:"dev_tty,omitempty"`
}

// Thread is one task of a process.
type Thread struct {
	TID int `json:"tid"`
	// NSpid is the thread's id in each PID namespace, as Process.NSpid.
	NSpid []int  `json:"nspid,omitempty"`
	Comm  string `json:"comm"`
	// Regs is the raw NT_PRSTATUS regset (struct user_regs_struct, 216 bytes).
	Regs []byte `json:"regs"`
	// Xstate is the raw NT_X86_XSTATE regset.
	Xstate        []byte    `json:"xstate"`
	Sigmask       uint64    `json:"sigmask"`
	Pending       []Siginfo `json:"pending,omitempty"`
	Rseq          *Rseq     `json:"rseq,omitempty"`
	RobustList    uint64    `json:"robust_list,omitempty"`
	RobustListLen uint64    `json:"robust_list_len,omitempty"`
	ClearChildTID uint64    `json:"clear_child_tid,omitempty"`
	AltStack      AltStack  `json:"altstack"`
}

// Rseq is a thread's rseq registration.
type Rseq struct {
	Addr uint64 `json:"addr"`
	Size uint32 `json:"size"`
	Sig  uint32 `json:"sig"`
}

// AltStack is a thread's sigaltstack.
type AltStack struct {
	SP    uint64 `json:"sp"`
	Flags int32  `json:"flags"`
	Size  uint64 `json:"size"`
}

// FDRef names a descriptor of a process of the tree.
type FDRef struct {
	PID int `json:"pid"`
	FD  int `json:"fd"`
}
