package procfs

import (
	"bytes"
	"fmt"
	"os"
	"reflect"
	"strings"
	"testing"

	"golang.org/x/sys/unix"
)

func TestParseLimitsFixtures(t *testing.T) {
	all := fixtures(t, "limits")
	for _, name := range sortedNames(all) {
		t.Run(name, func(t *testing.T) {
			limits, err := ParseLimits(bytes.NewReader(all[name]))
			if err != nil {
				t.Fatal(err)
			}
			if len(limits) != 16 {
				t.Fatalf("%d limits, want 16", len(limits))
			}
			for i, l := range limits {
				if l.Resource != i || limitNames[l.Name] != i {
					t.Errorf("row %d: %+v", i, l)
				}
				if l.Soft > l.Hard {
					t.Errorf("row %d: soft above hard: %+v", i, l)
				}
			}
		})
	}
}

func TestParseLimitsCFixture(t *testing.T) {
	limits, err := ParseLimits(bytes.NewReader(fixture(t, "limits/c-fixture.txt")))
	if err != nil {
		t.Fatal(err)
	}
	want := map[int]Limit{
		unix.RLIMIT_CPU:    {Resource: unix.RLIMIT_CPU, Name: "Max cpu time", Soft: 100, Hard: 200, Unit: "seconds"},
		unix.RLIMIT_NOFILE: {Resource: unix.RLIMIT_NOFILE, Name: "Max open files", Soft: 1024, Hard: 4096, Unit: "files"},
		unix.RLIMIT_CORE:   {Resource: unix.RLIMIT_CORE, Name: "Max core file size", Soft: Unlimited, Hard: Unlimited, Unit: "bytes"},
		unix.RLIMIT_STACK:  {Resource: unix.RLIMIT_STACK, Name: "Max stack size", Soft: 8388608, Hard: Unlimited, Unit: "bytes"},
		unix.RLIMIT_NICE:   {Resource: unix.RLIMIT_NICE, Name: "Max nice priority"},
		unix.RLIMIT_RTPRIO: {Resource: unix.RLIMIT_RTPRIO, Name: "Max realtime priority"},
		unix.RLIMIT_RTTIME: {Resource: unix.RLIMIT_RTTIME, Name: "Max realtime timeout", Soft: Unlimited, Hard: Unlimited, Unit: "us"},
	}
	for r, w := range want {
		if got := limits[r]; got != w {
			t.Errorf("got  %+v\nwant %+v", got, w)
		}
	}
	if Unlimited != unix.RLIM_INFINITY {
		t.Error("Unlimited is not RLIM_INFINITY")
	}
}

func TestParseLimitsEdgeCases(t *testing.T) {
	in := "Max cpu time 1 2 seconds\n" + // no header, single spaces
		"Max file size             18446744073709551615 unlimited            bytes     \n" +
		"Max future thing          7                    8                    widgets   \n" +
		"Max nice priority         0                    0"
	limits, err := ParseLimits(strings.NewReader(in))
	if err != nil {
		t.Fatal(err)
	}
	want := []Limit{
		{Resource: unix.RLIMIT_CPU, Name: "Max cpu time", Soft: 1, Hard: 2, Unit: "seconds"},
		{Resource: unix.RLIMIT_FSIZE, Name: "Max file size", Soft: Unlimited, Hard: Unlimited, Unit: "bytes"},
		{Resource: 2, Name: "Max future thing", Soft: 7, Hard: 8, Unit: "widgets"},
		{Resource: unix.RLIMIT_NICE, Name: "Max nice priority"},
	}
	if !reflect.DeepEqual(limits, want) {
		t.Errorf("got  %+v\nwant %+v", limits, want)
	}
	if l, err := ParseLimits(strings.NewReader("Limit                     Soft Limit           Hard Limit           Units     \n")); err != nil || len(l) != 0 {
		t.Errorf("header only: %v, %v", l, err)
	}
}

func TestParseLimitsMalformed(t *testing.T) {
	hdr := "Limit                     Soft Limit           Hard Limit           Units     \n"
	cases := []badCase{
		{"empty line", hdr + "\n", "limits line 2: want name, soft limit, hard limit and unit", 2},
		{"no name", hdr + "1 2 bytes\n", "limits line 2: want name", 2},
		{"one value", hdr + "Max cpu time 5 seconds\n", `limits line 2: bad soft limit "time"`, 2},
		{"bad hard", hdr + "Max cpu time 5 infinite seconds\n", `limits line 2: bad hard limit "infinite"`, 2},
		{"overflow", hdr + "Max cpu time 18446744073709551616 1 seconds\n", "value out of range", 2},
		{"header later", hdr + "Max cpu time 1 2 seconds\n" + hdr, `limits line 3: bad soft limit "Hard"`, 3},
		{"negative", "Max cpu time -1 2 seconds\n", `limits line 1: bad soft limit "-1"`, 1},
	}
	checkBad(t, cases, func(r *bytes.Reader) error {
		_, err := ParseLimits(r)
		return err
	})
}

func TestReadLimitsSelf(t *testing.T) {
	limits, err := ReadLimits(os.Getpid())
	if err != nil {
		t.Fatal(err)
	}
	for _, l := range limits {
		var rl unix.Rlimit
		if err := unix.Getrlimit(l.Resource, &rl); err != nil {
			t.Fatal(err)
		}
		if rl.Cur != l.Soft || rl.Max != l.Hard {
			t.Errorf("%s: getrlimit %d/%d, limits %d/%d", l.Name, rl.Cur, rl.Max, l.Soft, l.Hard)
		}
	}
	if len(limits) != 16 {
		t.Errorf("%d limits", len(limits))
	}
}

// formatLimits writes limits the way the kernel does.
func formatLimits(limits []Limit) string {
	var b strings.Builder
	fmt.Fprintf(&b, "%-25s %-20s %-20s %-10s\n", "Limit", "Soft Limit", "Hard Limit", "Units")
	val := func(v uint64) string {
		if v == Unlimited {
			return "unlimited"
		}
		return fmt.Sprint(v)
	}
	for _, l := range limits {
		fmt.Fprintf(&b, "%-25s %-20s %-20s ", l.Name, val(l.Soft), val(l.Hard))
		if l.Unit != "" {
			fmt.Fprintf(&b, "%-10s", l.Unit)
		}
		b.WriteString("\n")
	}
	return b.String()
}

func TestFormatLimitsMatchesKernel(t *testing.T) {
	data := fixture(t, "limits/c-fixture.txt")
	limits, err := ParseLimits(bytes.NewReader(data))
	if err != nil {
		t.Fatal(err)
	}
	if got := formatLimits(limits); got != string(data) {
		t.Errorf("formatLimits:\n%s\nwant\n%s", got, data)
	}
}
