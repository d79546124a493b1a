package spec

import (
	"bytes"
	"encoding/json"
	"testing"
)

func TestDefaultValidates(t *testing.T) {
	for _, rootless := range []bool{false, true} {
		s := Default(Options{Rootless: rootless, UID: 1000, GID: 1000})
		b, _ := json.Marshal(s)
		got, err := Decode(bytes.NewReader(b))
		if err != nil {
			t.Fatalf("rootless=%v: %v", rootless, err)
		}
		if rootless && (len(got.Linux.UIDMappings) != 1 || got.Linux.UIDMappings[0].HostID != 1000) {
			t.Errorf("rootless mappings: %+v", got.Linux.UIDMappings)
		}
	}
}

func TestDecodeRefuses(t *testing.T) {
	for _, in := range []string{
		`{}`,
		`{"root":{"path":"rootfs"}}`,
		`{"root":{"path":"rootfs"},"process":{"args":[],"cwd":"/"},"linux":{}}`,
		`{"root":{"path":"rootfs"},"process":{"args":["sh"],"cwd":"relative"},"linux":{}}`,
		`{"root":{"path":"rootfs"},"process":{"args":["sh"],"cwd":"/"}}`,
		`{"root":{"path":"rootfs"},"process":{"args":["sh"],"cwd":"/"},"linux":{},"mounts":[{"destination":""}]}`,
		`not json`,
	} {
		if _, err := Decode(bytes.NewReader([]byte(in))); err == nil {
			t.Errorf("accepted %s", in)
		}
	}
}

func FuzzDecode(f *testing.F) {
	b, _ := json.Marshal(Default(Options{}))
	f.Add(b)
	f.Add([]byte(`{"root":{"path":"r"},"process":{"args":["a"],"cwd":"/"},"linux":{"seccomp":{"syscalls":[{"names":["read"]}]}}}`))
	f.Fuzz(func(t *testing.T, in []byte) {
		s, err := Decode(bytes.NewReader(in))
		if err == nil && (s.Process == nil || s.Root == nil || s.Linux == nil) {
			t.Fatal("validated spec lacks a required section")
		}
	})
}
