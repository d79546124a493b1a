package procfs

import (
	"bytes"
	"os"
	"reflect"
	"strings"
	"testing"
)

func TestParseStatusFixtures(t *testing.T) {
	all := fixtures(t, "status")
	for _, name := range sortedNames(all) {
		t.Run(name, func(t *testing.T) {
			st, err := ParseStatus(bytes.NewReader(all[name]))
			if err != nil {
				t.Fatal(err)
			}
			if st.Pid <= 0 || st.Tgid <= 0 || len(st.NSpid) == 0 || st.NSpid[0] != st.Pid {
				t.Errorf("Pid %d Tgid %d NSpid %v", st.Pid, st.Tgid, st.NSpid)
			}
			// The stat fixture of the same task has the same comm.
			statName := strings.Replace(name, "comm-escape", "comm-newline", 1)
			stat, err := ParseStat(bytes.NewReader(fixture(t, "stat/"+statName)))
			if err != nil {
				t.Fatal(err)
			}
			if stat.Comm != st.Name || stat.State != st.State {
				t.Errorf("stat has comm %q state %c, status has %q %c", stat.Comm, stat.State, st.Name, st.State)
			}
		})
	}
}

func TestParseStatusCFixture(t *testing.T) {
	st, err := ParseStatus(bytes.NewReader(fixture(t, "status/c-fixture-main.txt")))
	if err != nil {
		t.Fatal(err)
	}
	want := &Status{
		Name: "a b) (c) d", Umask: 0o027, HasUmask: true, State: 'S',
		Tgid: 5977, Pid: 5977, PPid: 5972,
		NStgid: []int{5977}, NSpid: []int{5977}, NSpgid: []int{5968}, NSsid: []int{2652},
		Threads: 2,
		SigBlk:  0x1000000800, SigIgn: 0x2206, SigCgt: 0x100000000,
		CapPrm: 0x1fffeffffff, CapEff: 0x1fffeffffff, CapBnd: 0x1fffeffffff,
	}
	if !reflect.DeepEqual(st, want) {
		t.Errorf("got  %+v\nwant %+v", st, want)
	}

	th, err := ParseStatus(bytes.NewReader(fixture(t, "status/c-fixture-thread.txt")))
	if err != nil {
		t.Fatal(err)
	}
	if th.Name != "worker (1)" || th.Tgid != 5977 || th.Pid != 5979 || th.Threads != 2 {
		t.Errorf("thread: %+v", th)
	}
}

func TestParseStatusSpecial(t *testing.T) {
	cases := []struct {
		file  string
		check func(*Status) bool
	}{
		{"comm-escape.txt", func(s *Status) bool { return s.Name == "nl\nbs\\ x)" }},
		{"python3-thread.txt", func(s *Status) bool { return s.Name == "thr) 0" && s.Pid != s.Tgid && s.Threads == 4 }},
		{"python3.txt", func(s *Status) bool { return s.Name == "py (x)) y" && s.Umask == 0o022 }},
		{"zombie.txt", func(s *Status) bool { return s.Name == "zombie)" && s.State == 'Z' && !s.HasUmask && s.Threads == 1 }},
		{"pidns.txt", func(s *Status) bool {
			return reflect.DeepEqual(s.NSpid, []int{s.Pid, 1}) && reflect.DeepEqual(s.NStgid, []int{s.Pid, 1}) &&
				len(s.NSpgid) == 2 && len(s.NSsid) == 2
		}},
		{"kthreadd.txt", func(s *Status) bool { return s.Name == "kthreadd" && s.Pid == 2 && s.PPid == 0 && s.Groups == nil }},
	}
	for _, c := range cases {
		st, err := ParseStatus(bytes.NewReader(fixture(t, "status/"+c.file)))
		if err != nil {
			t.Errorf("%s: %v", c.file, err)
			continue
		}
		if !c.check(st) {
			t.Errorf("%s: unexpected %+v", c.file, st)
		}
	}
}

func TestParseStatusEdgeCases(t *testing.T) {
	in := "Name:\t  lead\\\\n\\t trail \n" +
		"State:\tt (tracing stop)\n" +
		"Pid:\t7\n" +
		"TracerPid:\t9\n" +
		"Uid:\t1000\t1001\t1002\t4294967295\n" +
		"Gid:\t5\t6\t7\t8\n" +
		"Groups:\t4 24 27 \n" +
		"NoNewPrivs:\t1\n" +
		"Seccomp:\t2\n" +
		"ShdPnd:\tffffffffffffffff\n" +
		"SomethingNew:\twhatever: with colons\n" +
		"Umask:\t0777"
	st, err := ParseStatus(strings.NewReader(in))
	if err != nil {
		t.Fatal(err)
	}
	want := &Status{
		Name: "  lead\\n\\t trail ", State: 't', Pid: 7, TracerPid: 9,
		Uid: [4]uint32{1000, 1001, 1002, 4294967295}, Gid: [4]uint32{5, 6, 7, 8},
		Groups: []uint32{4, 24, 27}, NoNewPrivs: true, Seccomp: 2, ShdPnd: ^uint64(0),
		Umask: 0o777, HasUmask: true,
	}
	if !reflect.DeepEqual(st, want) {
		t.Errorf("got  %+v\nwant %+v", st, want)
	}
}

func TestUnescapeComm(t *testing.T) {
	for in, want := range map[string]string{
		``:          ``,
		`plain`:     `plain`,
		`a\nb`:      "a\nb",
		`a\\nb`:     `a\nb`,
		`a\\\nb`:    "a\\\nb",
		`trailing\`: `trailing\`,
		`\t\x`:      `\t\x`,
	} {
		if got := unescapeComm(in); got != want {
			t.Errorf("unescapeComm(%q) = %q, want %q", in, got, want)
		}
	}
}

const minStatus = "Name:\tx\nState:\tS (sleeping)\nPid:\t1\n"

var badStatus = []badCase{
	{"empty", "", "status: no Name line", 0},
	{"no state", "Name:\tx\nPid:\t1\n", "status: no State line", 0},
	{"no pid", "Name:\tx\nState:\tR\n", "status: no Pid line", 0},
	{"no colon", minStatus + "garbage\n", `status line 4: no ':' in "garbage"`, 4},
	{"blank line", minStatus + "\n", `status line 4: no ':'`, 4},
	{"empty state", "Name:\tx\nState:\t\n", "status line 2: empty State", 2},
	{"bad umask", minStatus + "Umask:\t0089\n", `status line 4: bad Umask "0089"`, 4},
	{"bad pid", "Pid:\tone\n", `status line 1: bad Pid "one"`, 1},
	{"bad tgid", minStatus + "Tgid:\t99999999999999999999\n", "value out of range", 4},
	{"three uids", minStatus + "Uid:\t0\t0\t0\n", `status line 4: bad Uid "0\t0\t0": want 4 ids`, 4},
	{"negative gid", minStatus + "Gid:\t0\t0\t-1\t0\n", `bad Gid "-1"`, 4},
	{"bad group", minStatus + "Groups:\t1 x\n", `bad Groups "x"`, 4},
	{"bad nspid", minStatus + "NSpid:\t1\tz\n", `bad NSpid "z"`, 4},
	{"bad mask", minStatus + "SigBlk:\t00000000000000g0\n", `bad SigBlk`, 4},
	{"long mask", minStatus + "CapEff:\t10000000000000000\n", "value out of range", 4},
	{"bad nnp", minStatus + "NoNewPrivs:\t2\n", `bad NoNewPrivs "2"`, 4},
	{"bad seccomp", minStatus + "Seccomp:\t\n", `bad Seccomp ""`, 4},
	{"bad threads", minStatus + "Threads:\t1.5\n", `bad Threads "1.5"`, 4},
}

func TestParseStatusMalformed(t *testing.T) {
	checkBad(t, badStatus, func(r *bytes.Reader) error {
		_, err := ParseStatus(r)
		return err
	})
}

func TestReadStatusSelf(t *testing.T) {
	st, err := ReadStatus(os.Getpid())
	if err != nil {
		t.Fatal(err)
	}
	if st.Pid != os.Getpid() || st.Tgid != os.Getpid() || st.PPid != os.Getppid() || !st.HasUmask || st.Threads < 1 {
		t.Errorf("unexpected %+v", st)
	}
	tids, err := Tasks(os.Getpid())
	if err != nil {
		t.Fatal(err)
	}
	if len(tids) == 0 || tids[0] != os.Getpid() {
		t.Errorf("Tasks %v does not start with the main thread %d", tids, os.Getpid())
	}
	for _, tid := range tids {
		ts, err := ReadTaskStatus(os.Getpid(), tid)
		if err != nil {
			continue // the thread may have exited
		}
		if ts.Pid != tid || ts.Tgid != os.Getpid() {
			t.Errorf("task %d: Pid %d Tgid %d", tid, ts.Pid, ts.Tgid)
		}
	}
}
