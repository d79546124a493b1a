package procfs

import (
	"bytes"
	"os"
	"reflect"
	"testing"
)

func TestParseFDInfoFixtures(t *testing.T) {
	all := fixtures(t, "fdinfo")
	for _, name := range sortedNames(all) {
		t.Run(name, func(t *testing.T) {
			fi, err := ParseFDInfo(bytes.NewReader(all[name]))
			if err != nil {
				t.Fatal(err)
			}
			if want := bytes.Count(all[name], []byte("\n")) - 4; len(fi.Lines) != want {
				t.Errorf("%d other lines, want %d", len(fi.Lines), want)
			}
		})
	}
}

func TestParseFDInfoKinds(t *testing.T) {
	cases := map[string]*FDInfo{
		"stdin.txt": {Flags: 0o100000, MntID: 23, Ino: 3},
		"eventfd.txt": {Flags: 0o2004002, MntID: 17, Ino: 1038, Lines: []string{
			"eventfd-count:                7", "eventfd-id: 1", "eventfd-semaphore: 0"}},
		"timerfd.txt": {Flags: 0o2000002, MntID: 17, Ino: 1038, Lines: []string{
			"clockid: 1", "ticks: 0", "settime flags: 00", "it_value: (99, 423387984)", "it_interval: (3, 500)"}},
		"signalfd.txt": {Flags: 0o4002, MntID: 17, Ino: 1038, Lines: []string{"sigmask:\t0000000000010800"}},
		"epoll.txt": {Flags: 0o2, MntID: 17, Ino: 1038, Lines: []string{
			"tfd:        4 events: 80000019 data:               42  pos:0 ino:40e sdev:10",
			"tfd:        5 events: 80000019 data:               42  pos:0 ino:40e sdev:10"}},
		"locked.txt": {Pos: 3, Flags: 0o102002, MntID: 26, Ino: 9978573, Lines: []string{
			"lock:\t1: FLOCK  ADVISORY  WRITE 5977 fe:00:9978573 0 EOF"}},
		"pidfd.txt": {Flags: 0o2000002, MntID: 4, Ino: 5982, Lines: []string{"Pid:\t5981", "NSpid:\t5981"}},
		"memfd.txt": {Flags: 0o100002, Ino: 31},
	}
	for name, want := range cases {
		fi, err := ParseFDInfo(bytes.NewReader(fixture(t, "fdinfo/"+name)))
		if err != nil {
			t.Errorf("%s: %v", name, err)
			continue
		}
		if !reflect.DeepEqual(fi, want) {
			t.Errorf("%s:\ngot  %#v\nwant %#v", name, fi, want)
		}
	}
	inotify, err := ParseFDInfo(bytes.NewReader(fixture(t, "fdinfo/inotify.txt")))
	if err != nil || len(inotify.Lines) != 1 || inotify.Lines[0][:11] != "inotify wd:" {
		t.Errorf("inotify: %+v, %v", inotify, err)
	}
}

func TestParseFDInfoEdgeCases(t *testing.T) {
	// Kernels before 5.14 print no ino line; the order does not matter.
	fi, err := ParseFDInfo(bytes.NewReader([]byte("mnt_id:\t9\nflags:\t02\npos:\t-1\n\neventfd-count: 0")))
	if err != nil {
		t.Fatal(err)
	}
	want := &FDInfo{Pos: -1, Flags: 2, MntID: 9, Lines: []string{"", "eventfd-count: 0"}}
	if !reflect.DeepEqual(fi, want) {
		t.Errorf("got %#v, want %#v", fi, want)
	}
}

func TestParseFDInfoMalformed(t *testing.T) {
	cases := []badCase{
		{"empty", "", "fdinfo: no pos line", 0},
		{"no flags", "pos:\t0\nmnt_id:\t1\n", "fdinfo: no flags line", 0},
		{"no mnt_id", "pos:\t0\nflags:\t0\n", "fdinfo: no mnt_id line", 0},
		{"bad pos", "pos:\tx\n", `fdinfo line 1: bad pos "x"`, 1},
		{"decimal flags", "pos:\t0\nflags:\t09\n", `fdinfo line 2: bad flags "09"`, 2},
		{"big flags", "pos:\t0\nflags:\t077777777777\n", "value out of range", 2},
		{"bad mnt_id", "pos:\t0\nflags:\t0\nmnt_id:\t\n", `fdinfo line 3: bad mnt_id ""`, 3},
		{"bad ino", "pos:\t0\nflags:\t0\nmnt_id:\t1\nino:\t-1\n", `fdinfo line 4: bad ino "-1"`, 4},
	}
	checkBad(t, cases, func(r *bytes.Reader) error {
		_, err := ParseFDInfo(r)
		return err
	})
}

func TestReadFDInfoSelf(t *testing.T) {
	f, err := os.Open("testdata/fdinfo/stdin.txt")
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	if _, err := f.Seek(7, 0); err != nil {
		t.Fatal(err)
	}
	fi, err := ReadFDInfo(os.Getpid(), int(f.Fd()))
	if err != nil {
		t.Fatal(err)
	}
	st, err := f.Stat()
	if err != nil {
		t.Fatal(err)
	}
	if fi.Pos != 7 || fi.Flags&0o3 != uint32(os.O_RDONLY) || fi.MntID == 0 || fi.Ino == 0 {
		t.Errorf("unexpected %+v (file %v)", fi, st.Sys())
	}
	fds, err := FDs(os.Getpid())
	if err != nil {
		t.Fatal(err)
	}
	found := false
	for i, fd := range fds {
		found = found || fd == int(f.Fd())
		if i > 0 && fd <= fds[i-1] {
			t.Errorf("FDs not ascending: %v", fds)
		}
	}
	if !found {
		t.Errorf("FDs %v misses %d", fds, f.Fd())
	}
}
