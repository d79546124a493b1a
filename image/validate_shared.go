package image

import "math"

// mapShared is MAP_SHARED (this package makes no system calls).
const mapShared = 0x01

// validateShared checks what the processes of an image share beyond their
// own state: the shell job's terminal (Meta.Terminal, FDTTY descriptors,
// Process.CTTY) and SysV shared memory segments (Meta.SysVShm, their
// FileBlobs and their VMASysVShm attachments). Validate calls it once the
// processes and blobs passed their own checks.
func (m *Meta) validateShared() error {
	if t := m.Terminal; t != nil {
		if t.Rdev == 0 || t.Index < 0 || t.Index >= 1<<20 {
			return inconsistent("terminal /dev/pts/%d with device %#x", t.Index, t.Rdev)
		}
		if t.Foreground != 0 && !validID(t.Foreground) {
			return inconsistent("terminal foreground process group %d", t.Foreground)
		}
		if t.Termios != nil && len(t.Termios.Cc) != NCCS {
			return inconsistent("terminal settings with %d control characters, want %d", len(t.Termios.Cc), NCCS)
		}
	}
	ctty := 0 // the session whose controlling terminal it is
	for i := range m.Processes {
		p := &m.Processes[i]
		if p.CTTY {
			if m.Terminal == nil {
				return inconsistent("process %d: controlling terminal without a terminal", p.PID)
			}
			if ctty != 0 && p.SID != ctty {
				return inconsistent("process %d: controlling terminal of sessions %d and %d", p.PID, ctty, p.SID)
			}
			ctty = p.SID
		}
		for _, f := range p.FDs {
			if f.Kind != FDTTY {
				if f.TTY != nil {
					return inconsistent("process %d fd %d: terminal description on a %q descriptor", p.PID, f.FD, f.Kind)
				}
				continue
			}
			if m.Terminal == nil || f.TTY == nil {
				return inconsistent("process %d fd %d: terminal descriptor without a terminal", p.PID, f.FD)
			}
			if !f.TTY.DevTTY && f.TTY.Index != m.Terminal.Index {
				return inconsistent("process %d fd %d: /dev/pts/%d is not the terminal /dev/pts/%d", p.PID, f.FD, f.TTY.Index, m.Terminal.Index)
			}
			if f.Deleted {
				return inconsistent("process %d fd %d: deleted terminal", p.PID, f.FD)
			}
		}
	}

	blobs := map[int]FileBlob{}
	for _, b := range m.Files {
		blobs[b.ID] = b
	}
	segs := map[int]*SysVShm{}
	keys := map[int32]bool{}
	contents := map[int]bool{} // blob ids of segments
	for i := range m.SysVShm {
		s := &m.SysVShm[i]
		if s.ID < 0 || s.ID > math.MaxInt32 || segs[s.ID] != nil {
			return inconsistent("SysV segment id %d invalid or repeated", s.ID)
		}
		segs[s.ID] = s
		if s.Key != 0 {
			if keys[s.Key] {
				return inconsistent("SysV segment %d: key %#x repeated", s.ID, uint32(s.Key))
			}
			keys[s.Key] = true
		}
		if s.Removed && s.Key != 0 {
			return inconsistent("SysV segment %d: removed but still has key %#x", s.ID, uint32(s.Key))
		}
		if s.Size == 0 || s.Size > 1<<40 {
			return inconsistent("SysV segment %d: size %d", s.ID, s.Size)
		}
		if s.Mode&^0o777 != 0 {
			return inconsistent("SysV segment %d: mode %#o", s.ID, s.Mode)
		}
		b, ok := blobs[s.FileID]
		if !ok || !b.SysV || uint64(b.Size) != s.Size || contents[s.FileID] {
			return inconsistent("SysV segment %d: contents (file blob %d) missing, shared or not of its size", s.ID, s.FileID)
		}
		contents[s.FileID] = true
	}
	for _, b := range m.Files {
		if b.SysV && (b.Shmem || !contents[b.ID]) {
			return inconsistent("file blob %d: SysV contents of no segment", b.ID)
		}
	}
	attached := map[int]bool{}
	for i := range m.Processes {
		p := &m.Processes[i]
		for _, v := range p.VMAs {
			if v.Kind != VMASysVShm {
				continue
			}
			s := segs[int(v.Inode)]
			if v.Inode > math.MaxInt32 || s == nil {
				return inconsistent("process %d: mapping %#x-%#x of SysV segment %d, which is not in the image",
					p.PID, v.Start, v.End, v.Inode)
			}
			size := (s.Size + PageSize - 1) / PageSize * PageSize
			if v.Offset%PageSize != 0 || v.Len() > size || v.Offset > size-v.Len() {
				return inconsistent("process %d: mapping %#x-%#x at offset %d is outside SysV segment %d of %d bytes",
					p.PID, v.Start, v.End, v.Offset, s.ID, s.Size)
			}
			if v.Flags&mapShared == 0 || v.Pages != 0 || v.Deleted {
				return inconsistent("process %d: mapping %#x-%#x of SysV segment %d: flags %#x, %d pages",
					p.PID, v.Start, v.End, s.ID, v.Flags, v.Pages)
			}
			attached[s.ID] = true
		}
	}
	for _, s := range m.SysVShm {
		if !attached[s.ID] {
			return inconsistent("SysV segment %d is attached by no process", s.ID)
		}
	}
	return nil
}
