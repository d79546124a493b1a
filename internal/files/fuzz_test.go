package files

import (
	"strings"
	"testing"
)

func checkParseErr(t *testing.T, err error) {
	t.Helper()
	if err == nil {
		return
	}
	if _, ok := err.(*ParseError); !ok {
		t.Fatalf("error %q (%T) is not a *ParseError", err, err)
	}
}

// FuzzFDInfoLines feeds every fdinfo parser of the package the same lines.
func FuzzFDInfoLines(f *testing.F) {
	for _, s := range []string{
		"eventfd-count:                5\neventfd-id: 3\neventfd-semaphore: 1",
		"clockid: 1\nticks: 0\nsettime flags: 00\nit_value: (99, 998399444)\nit_interval: (1, 0)",
		"sigmask:\t0000000000004200",
		"Pid:\t10420\nNSpid:\t10420",
		"tfd:        4 events: 80000019 data:                4  pos:0 ino:3a1ad sdev:f",
		"inotify wd:2 ino:13 sdev:fe00000 mask:80000002 ignored_mask:0 fhandle-bytes:8 fhandle-type:1 f_handle:1300000000000000",
		"inotify wd:1 ino:1 sdev:0 mask:0 ignored_mask:0 fhandle-bytes:ff fhandle-type:1 f_handle:zz",
		"scm_fds: 0",
		"it_value: (,)\ntfd: events:",
	} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		lines := strings.Split(s, "\n")
		e, err := parseEventfd(lines)
		checkParseErr(t, err)
		if err == nil && e == nil {
			t.Fatal("nil eventfd")
		}
		tf, err := parseTimerfd(lines)
		checkParseErr(t, err)
		if err == nil && (tf.ValueNsec < 0 || tf.IntervalNsec < 0) {
			t.Fatalf("negative time %+v", tf)
		}
		_, err = parseSignalfd(lines)
		checkParseErr(t, err)
		p, err := parsePidfd(lines)
		checkParseErr(t, err)
		if err == nil && p.Pid < -1 {
			t.Fatalf("pid %d", p.Pid)
		}
		ep, err := parseEpoll(lines)
		checkParseErr(t, err)
		if err == nil {
			for _, tg := range ep.Targets {
				if tg.FD < 0 || tg.Pos < 0 {
					t.Fatalf("bad target %+v", tg)
				}
			}
		}
		in, err := parseInotify(lines)
		checkParseErr(t, err)
		if err == nil {
			for _, w := range in.Watches {
				if w.WD < 0 || len(w.Handle) > 255 {
					t.Fatalf("bad watch %+v", w)
				}
			}
		}
		n, err := parseScmFds(lines)
		checkParseErr(t, err)
		if n < 0 {
			t.Fatalf("scm_fds %d", n)
		}
		_ = fields(s)
		_ = unescapeMount(s)
	})
}
