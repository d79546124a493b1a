package procfs

import (
	"bytes"
	"errors"
	"os"
	"path/filepath"
	"sort"
	"strings"
	"testing"
)

// fixture returns testdata/name.
func fixture(t testing.TB, name string) []byte {
	t.Helper()
	data, err := os.ReadFile(filepath.Join("testdata", name))
	if err != nil {
		t.Fatal(err)
	}
	return data
}

// fixtures returns every file of testdata/dir, by name.
func fixtures(t testing.TB, dir string) map[string][]byte {
	t.Helper()
	entries, err := os.ReadDir(filepath.Join("testdata", dir))
	if err != nil {
		t.Fatal(err)
	}
	out := map[string][]byte{}
	for _, e := range entries {
		if e.Type().IsRegular() {
			out[e.Name()] = fixture(t, filepath.Join(dir, e.Name()))
		}
	}
	if len(out) == 0 {
		t.Fatalf("no fixtures in testdata/%s", dir)
	}
	return out
}

// sortedNames returns the keys of m in order, for deterministic subtests.
func sortedNames(m map[string][]byte) []string {
	names := make([]string, 0, len(m))
	for n := range m {
		names = append(names, n)
	}
	sort.Strings(names)
	return names
}

// seed adds every fixture of testdata/dir and the extra inputs to the corpus.
func seed(f *testing.F, dir string, extra ...string) {
	f.Helper()
	for _, name := range sortedNames(fixtures(f, dir)) {
		f.Add(fixture(f, filepath.Join(dir, name)))
	}
	for _, s := range extra {
		f.Add([]byte(s))
	}
}

// badCase is malformed input and the text its error must contain.
type badCase struct {
	name, in, want string
	line           int // expected ParseError.Line
}

// checkBad runs parse on every case and checks the error.
func checkBad(t *testing.T, cases []badCase, parse func(*bytes.Reader) error) {
	t.Helper()
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			err := parse(bytes.NewReader([]byte(c.in)))
			if err == nil {
				t.Fatalf("no error for %q", c.in)
			}
			if !strings.Contains(err.Error(), c.want) {
				t.Errorf("error %q does not contain %q", err, c.want)
			}
			var pe *ParseError
			if !errors.As(err, &pe) {
				t.Fatalf("error %q is not a *ParseError", err)
			}
			if pe.Line != c.line {
				t.Errorf("error %q: line %d, want %d", err, pe.Line, c.line)
			}
		})
	}
}

func TestParseErrorMessage(t *testing.T) {
	inner := errors.New("boom")
	err := error(&ParseError{File: "maps", Line: 3, Err: inner})
	if got, want := err.Error(), "maps line 3: boom"; got != want {
		t.Errorf("got %q, want %q", got, want)
	}
	if !errors.Is(err, inner) {
		t.Error("ParseError does not unwrap")
	}
	err = &ParseError{File: "auxv", Err: inner}
	if got, want := err.Error(), "auxv: boom"; got != want {
		t.Errorf("got %q, want %q", got, want)
	}
}

func TestLineTooLong(t *testing.T) {
	in := "pos:\t0\n" + strings.Repeat("x", maxLine+1) + "\n"
	_, err := ParseFDInfo(strings.NewReader(in))
	if err == nil || !strings.Contains(err.Error(), "fdinfo line 2:") {
		t.Fatalf("got %v, want an error about line 2", err)
	}
}

func TestLineKeepsCR(t *testing.T) {
	fi, err := ParseFDInfo(strings.NewReader("pos:\t0\nflags:\t02\nmnt_id:\t1\nx: y\r\n"))
	if err != nil {
		t.Fatal(err)
	}
	if len(fi.Lines) != 1 || fi.Lines[0] != "x: y\r" {
		t.Errorf("Lines = %q", fi.Lines)
	}
}
