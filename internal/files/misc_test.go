package files

import (
	"bytes"
	"encoding/binary"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"

	"golang.org/x/sys/unix"
)

func TestPidfd(t *testing.T) {
	fd := mustFD(t)(unix.PidfdOpen(os.Getpid(), unix.PIDFD_NONBLOCK))
	d := hold(t, fd).inspect(t, fd)
	if d.Kind != KindPidfd || d.Pidfd.Pid != os.Getpid() || d.Flags&unix.O_NONBLOCK == 0 {
		t.Fatalf("pidfd: %+v %+v", d, d.Pidfd)
	}
	f, _, err := Create(d)
	must(t, err)
	closeOnCleanup(t, f)
	got, err := parsePidfd(fdinfo(t, int(f.Fd())).Lines)
	must(t, err)
	if got.Pid != os.Getpid() {
		t.Fatalf("recreated pidfd of %d", got.Pid)
	}
	d.Pidfd.Pid = -1
	_, _, err = Create(d)
	wantUnsupported(t, err)
}

func TestMemfd(t *testing.T) {
	fd := mustFD(t)(unix.MemfdCreate("godwit test", unix.MFD_ALLOW_SEALING))
	must(t, unix.Ftruncate(fd, 3<<20))
	_, err := unix.Pwrite(fd, []byte("head"), 0)
	must(t, err)
	_, err = unix.Pwrite(fd, []byte("tail"), 2<<20)
	must(t, err)
	_, err = unix.Seek(fd, 1234, 0)
	must(t, err)
	_, err = unix.FcntlInt(uintptr(fd), unix.F_ADD_SEALS, unix.F_SEAL_GROW|unix.F_SEAL_SHRINK)
	must(t, err)
	d := hold(t, fd).inspect(t, fd)
	m := d.Memfd
	if d.Kind != KindMemfd || m.Name != "godwit test" || m.Size != 3<<20 || m.Seals != unix.F_SEAL_GROW|unix.F_SEAL_SHRINK || d.Pos != 1234 {
		t.Fatalf("memfd: %+v %+v", d, m)
	}
	var data int
	for _, e := range m.Extents {
		data += len(e.Data)
	}
	if len(m.Extents) != 2 || data > 2*4096 || !bytes.HasPrefix(m.Extents[0].Data, []byte("head")) || m.Extents[1].Offset != 2<<20 {
		t.Fatalf("extents: %d, %d bytes", len(m.Extents), data)
	}
	if pos, _ := unix.Seek(fd, 0, 1); pos != 1234 {
		t.Fatalf("Inspect moved the offset to %d", pos)
	}
	f, _, err := Create(d)
	must(t, err)
	closeOnCleanup(t, f)
	nfd := int(f.Fd())
	buf := make([]byte, 4)
	if _, err := unix.Pread(nfd, buf, 2<<20); err != nil || string(buf) != "tail" {
		t.Fatalf("recreated memfd at 2 MiB: %q %v", buf, err)
	}
	if pos, _ := unix.Seek(nfd, 0, 1); pos != 1234 {
		t.Fatalf("recreated offset %d", pos)
	}
	if seals, _ := unix.FcntlInt(uintptr(nfd), unix.F_GET_SEALS, 0); seals != m.Seals {
		t.Fatalf("recreated seals %#x", seals)
	}
	if link, _ := os.Readlink("/proc/self/fd/" + strconv.Itoa(nfd)); !strings.HasPrefix(link, "/memfd:godwit test") {
		t.Fatalf("recreated memfd is %q", link)
	}
}

func TestInotify(t *testing.T) {
	dir := t.TempDir()
	sub := filepath.Join(dir, "sub")
	must(t, os.Mkdir(sub, 0o755))
	fd := mustFD(t)(unix.InotifyInit1(unix.IN_NONBLOCK))
	// Make the wds non-trivial: 1 is removed, 2 and 3 remain.
	w1, err := unix.InotifyAddWatch(fd, sub, unix.IN_CREATE)
	must(t, err)
	_, err = unix.InotifyRmWatch(fd, uint32(w1))
	must(t, err)
	w2, err := unix.InotifyAddWatch(fd, dir, unix.IN_CREATE|unix.IN_DELETE)
	must(t, err)
	w3, err := unix.InotifyAddWatch(fd, sub, unix.IN_MODIFY|unix.IN_ONESHOT)
	must(t, err)
	d := hold(t, fd).inspect(t, fd)
	in := d.Inotify
	if d.Kind != KindInotify || len(in.Watches) != 2 || in.Queued == 0 /* IN_IGNORED of wd 1 */ {
		t.Fatalf("inotify: %+v", in)
	}
	var st unix.Stat_t
	must(t, unix.Stat(dir, &st))
	for _, w := range in.Watches {
		switch w.WD {
		case w2:
			if w.Path != dir || w.Mask != unix.IN_CREATE|unix.IN_DELETE || w.Ino != st.Ino || w.Dev != st.Dev {
				t.Fatalf("watch %+v, dir ino %d dev %#x", w, st.Ino, st.Dev)
			}
		case w3:
			if w.Path != sub || w.Mask != unix.IN_MODIFY|unix.IN_ONESHOT {
				t.Fatalf("watch %+v", w)
			}
		default:
			t.Fatalf("unexpected watch %+v", w)
		}
	}
	f, _, err := Create(d)
	must(t, err)
	closeOnCleanup(t, f)
	got, err := parseInotify(fdinfo(t, int(f.Fd())).Lines)
	must(t, err)
	if len(got.Watches) != 2 {
		t.Fatalf("recreated watches %+v", got.Watches)
	}
	if q, _ := unix.IoctlGetInt(int(f.Fd()), unix.SIOCINQ); q != 0 {
		t.Fatalf("recreated inotify has %d bytes of events queued", q)
	}
	must(t, os.WriteFile(filepath.Join(dir, "new"), nil, 0o644))
	buf := make([]byte, 4096)
	n, err := unix.Read(int(f.Fd()), buf)
	must(t, err)
	if n < 16 || int(int32(binary.NativeEndian.Uint32(buf))) != w2 || binary.NativeEndian.Uint32(buf[4:])&unix.IN_CREATE == 0 {
		t.Fatalf("event %x", buf[:n])
	}
}

func TestUnsupported(t *testing.T) {
	f, err := os.Open("/proc/self/stat")
	must(t, err)
	defer f.Close()
	nl := mustFD(t)(unix.Socket(unix.AF_NETLINK, unix.SOCK_RAW, unix.NETLINK_ROUTE))
	h := hold(t, int(f.Fd()), nl)
	for _, fd := range []int{int(f.Fd()), nl} {
		_, err := Inspect(h.pidfd, h.pid, fd)
		wantUnsupported(t, err)
	}
	_, err = Inspect(h.pidfd, h.pid, 900)
	if err == nil {
		t.Fatal("Inspect of a closed descriptor succeeded")
	}
}
