package procfs

import (
	"bytes"
	"os"
	"reflect"
	"strings"
	"testing"
)

func TestParseStatFixtures(t *testing.T) {
	all := fixtures(t, "stat")
	for _, name := range sortedNames(all) {
		t.Run(name, func(t *testing.T) {
			st, err := ParseStat(bytes.NewReader(all[name]))
			if err != nil {
				t.Fatal(err)
			}
			if st.PID <= 0 || st.NumThreads < 1 || st.StartTime == 0 {
				t.Errorf("unexpected %+v", st)
			}
		})
	}
}

func TestParseStatCFixture(t *testing.T) {
	st, err := ParseStat(bytes.NewReader(fixture(t, "stat/c-fixture-main.txt")))
	if err != nil {
		t.Fatal(err)
	}
	want := &Stat{
		PID: 5977, Comm: "a b) (c) d", State: 'S',
		PPID: 5972, PGRP: 5968, Session: 2652, TTYNr: 0, TPGID: -1,
		Flags: 4194560, MinFlt: 131, MajFlt: 4,
		Priority: 20, Nice: 0, NumThreads: 2, StartTime: 714023, VSize: 10997760, RSS: 416,
		StartCode: 93941420564480, EndCode: 93941420567801, StartStack: 140736717819200,
		ExitSignal: 17,
		StartData:  93941420576208, EndData: 93941420577160, StartBrk: 93942341320704,
		ArgStart: 140736717822455, ArgEnd: 140736717822482, EnvStart: 140736717822482, EnvEnd: 140736717823983,
	}
	if !reflect.DeepEqual(st, want) {
		t.Errorf("got  %+v\nwant %+v", st, want)
	}
}

func TestParseStatSpecial(t *testing.T) {
	cases := []struct {
		file  string
		check func(*Stat) bool
	}{
		{"comm-newline.txt", func(s *Stat) bool { return s.Comm == "nl\nbs\\ x)" && s.State == 'S' && s.ExitSignal == 17 }},
		{"zombie.txt", func(s *Stat) bool {
			return s.Comm == "zombie)" && s.State == 'Z' && s.ExitCode == 3<<8 && s.StartCode == 0
		}},
		{"python3-thread.txt", func(s *Stat) bool { return s.Comm == "thr) 0" && s.ExitSignal == -1 && s.NumThreads == 4 }},
		{"kthreadd.txt", func(s *Stat) bool { return s.PID == 2 && s.Comm == "kthreadd" && s.PPID == 0 && s.StartCode == 0 }},
		{"c-fixture-thread.txt", func(s *Stat) bool { return s.Comm == "worker (1)" && s.ExitSignal == -1 }},
	}
	for _, c := range cases {
		st, err := ParseStat(bytes.NewReader(fixture(t, "stat/"+c.file)))
		if err != nil {
			t.Errorf("%s: %v", c.file, err)
			continue
		}
		if !c.check(st) {
			t.Errorf("%s: unexpected %+v", c.file, st)
		}
	}
}

// statTail is fields 3..52 of a valid stat line.
const statTail = "S 1 2 3 4 -1 5 6 7 8 9 10 11 12 13 20 0 1 0 99 4096 3 18446744073709551615 " +
	"26 27 28 29 30 31 32 33 34 35 36 37 38 39 40 41 42 43 44 45 46 47 48 49 50 51 52"

func TestParseStatEdgeCases(t *testing.T) {
	cases := []struct {
		name, in, comm string
	}{
		{"empty comm", "10 () " + statTail + "\n", ""},
		{"only parens", "10 ())(() " + statTail, "))(("},
		{"spaces", "10 (  ) " + statTail, "  "},
		{"extra fields", "10 (x) " + statTail + " 53 54\n", "x"},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			st, err := ParseStat(strings.NewReader(c.in))
			if err != nil {
				t.Fatal(err)
			}
			if st.PID != 10 || st.Comm != c.comm || st.StartCode != 26 || st.ExitSignal != 38 ||
				st.Processor != 39 || st.RTPriority != 40 || st.Policy != 41 ||
				st.StartData != 45 || st.EnvEnd != 51 || st.ExitCode != 52 || st.TPGID != -1 {
				t.Errorf("unexpected %+v", st)
			}
		})
	}
}

func TestParseStatMalformed(t *testing.T) {
	short := strings.Join(strings.Fields(statTail)[:40], " ")
	cases := []badCase{
		{"empty", "", "stat line 1: no (comm)", 1},
		{"no paren", "10 x " + statTail, "stat line 1: no (comm)", 1},
		{"no close", "10 (x " + statTail, "stat line 1: no (comm)", 1},
		{"close before open", "10 )x( " + statTail, "stat line 1: no (comm)", 1},
		{"bad pid", "x (y) " + statTail, `stat line 1: field 1: bad pid "x"`, 1},
		{"no pid", "(y) " + statTail, `stat line 1: field 1: bad pid ""`, 1},
		{"no space", "10 (y)" + statTail, "stat line 1: field 3: no space after comm", 1},
		{"too few", "10 (y) " + short, "stat line 1: field 43: missing: have 42 fields, want 52", 1},
		{"long state", "10 (y) SS" + statTail[1:], `field 3: bad state "SS"`, 1},
		{"bad ppid", "10 (y) S x" + statTail[3:], `field 4: bad value "x"`, 1},
		{"bad field 52", "10 (y) " + strings.TrimSuffix(statTail, "52") + "5x", `field 52: bad value "5x"`, 1},
		{"negative startcode", "10 (y) " + strings.Replace(statTail, " 26 ", " -26 ", 1), `field 26: bad value "-26"`, 1},
		{"policy range", "10 (y) " + strings.Replace(statTail, " 41 ", " 4294967296 ", 1), "field 41: bad value", 1},
		{"newline in comm", "10 (a\nb) S x" + statTail[3:], "stat line 2: field 4", 2},
	}
	checkBad(t, cases, func(r *bytes.Reader) error {
		_, err := ParseStat(r)
		return err
	})
}

func TestReadStatSelf(t *testing.T) {
	st, err := ReadStat(os.Getpid())
	if err != nil {
		t.Fatal(err)
	}
	if st.PID != os.Getpid() || st.PPID != os.Getppid() || st.StartCode == 0 || st.ArgEnd <= st.ArgStart {
		t.Errorf("unexpected %+v", st)
	}
	ts, err := ReadTaskStat(os.Getpid(), os.Getpid())
	if err != nil {
		t.Fatal(err)
	}
	if ts.PID != os.Getpid() || ts.Comm != st.Comm {
		t.Errorf("task stat %+v", ts)
	}
}
