package procfs

import (
	"bytes"
	"errors"
	"io/fs"
	"os"
	"os/exec"
	"reflect"
	"slices"
	"testing"
)

func TestParseChildren(t *testing.T) {
	cases := []struct {
		name string
		in   []byte
		want []int
	}{
		{"fixture", fixture(t, "children/c-fixture.txt"), []int{5980, 5981}},
		{"fixture empty", fixture(t, "children/empty.txt"), nil},
		{"no trailing space", []byte("3 1 2"), []int{3, 1, 2}},
		{"newline", []byte("3 \n4\n"), []int{3, 4}},
		{"tabs", []byte("\t5\t"), []int{5}},
	}
	for _, c := range cases {
		got, err := ParseChildren(bytes.NewReader(c.in))
		if err != nil || !reflect.DeepEqual(got, c.want) {
			t.Errorf("%s: got %v, %v; want %v", c.name, got, err, c.want)
		}
	}
}

func TestParseChildrenMalformed(t *testing.T) {
	cases := []badCase{
		{"word", "12 ab ", `children line 1: bad pid "ab"`, 1},
		{"zero", "0 ", `children line 1: bad pid "0"`, 1},
		{"negative", "1\n-1 ", `children line 2: bad pid "-1"`, 2},
		{"overflow", "99999999999999999999", "value out of range", 1},
	}
	checkBad(t, cases, func(r *bytes.Reader) error {
		_, err := ParseChildren(r)
		return err
	})
}

func TestChildrenSelf(t *testing.T) {
	cmd := exec.Command("sleep", "60")
	if err := cmd.Start(); err != nil {
		t.Skip(err)
	}
	defer cmd.Wait()
	defer cmd.Process.Kill()
	kids, err := Children(os.Getpid())
	if err != nil {
		t.Fatal(err)
	}
	if !slices.Contains(kids, cmd.Process.Pid) || !slices.IsSorted(kids) {
		t.Errorf("Children = %v, want sorted and containing %d", kids, cmd.Process.Pid)
	}
}

func TestReadMissingProcess(t *testing.T) {
	const pid = 1 << 30 // above pid_max
	for name, err := range map[string]error{
		"maps":   second(ReadMaps(pid)),
		"status": second(ReadStatus(pid)),
		"task":   second(ReadTaskStatus(pid, pid)),
		"stat":   second(ReadStat(pid)),
		"fdinfo": second(ReadFDInfo(pid, 0)),
		"limits": second(ReadLimits(pid)),
		"timers": second(ReadTimers(pid)),
		"auxv":   second(ReadAuxv(pid)),
		"tasks":  second(Tasks(pid)),
		"fds":    second(FDs(pid)),
		"kids":   second(Children(pid)),
	} {
		if !errors.Is(err, fs.ErrNotExist) {
			t.Errorf("%s: got %v, want fs.ErrNotExist", name, err)
		}
	}
}

func second[T any](_ T, err error) error { return err }
