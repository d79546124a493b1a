package procfs

import (
	"bytes"
	"encoding/binary"
	"os"
	"reflect"
	"testing"
)

const (
	atNull   = 0
	atPagesz = 6
	atEntry  = 9
	atRandom = 25
)

// auxvValue returns the value of typ in words.
func auxvValue(words []uint64, typ uint64) (uint64, bool) {
	for i := 0; i+1 < len(words); i += 2 {
		if words[i] == typ {
			return words[i+1], true
		}
	}
	return 0, false
}

func TestParseAuxvFixtures(t *testing.T) {
	all := fixtures(t, "auxv")
	for _, name := range sortedNames(all) {
		t.Run(name, func(t *testing.T) {
			words, err := ParseAuxv(bytes.NewReader(all[name]))
			if err != nil {
				t.Fatal(err)
			}
			if len(words) != len(all[name])/8 {
				t.Errorf("%d words from %d bytes", len(words), len(all[name]))
			}
			if n := len(words); n < 2 || words[n-2] != atNull || words[n-1] != 0 {
				t.Errorf("does not end with AT_NULL: %x", words)
			}
			if v, ok := auxvValue(words, atPagesz); !ok || v != 4096 {
				t.Errorf("AT_PAGESZ = %d, %v", v, ok)
			}
		})
	}
	words, err := ParseAuxv(bytes.NewReader(fixture(t, "auxv/c-fixture.bin")))
	if err != nil {
		t.Fatal(err)
	}
	if v, _ := auxvValue(words, atEntry); v != 0x55707100a330 {
		t.Errorf("AT_ENTRY = %#x", v)
	}
	if v, _ := auxvValue(words, atRandom); v != 0x7fffd2129019 {
		t.Errorf("AT_RANDOM = %#x", v)
	}
}

// auxvBytes encodes words natively.
func auxvBytes(words ...uint64) []byte {
	var b []byte
	for _, w := range words {
		b = binary.NativeEndian.AppendUint64(b, w)
	}
	return b
}

func TestParseAuxvEdgeCases(t *testing.T) {
	cases := []struct {
		name string
		in   []byte
		want []uint64
	}{
		{"empty", nil, nil},
		{"only AT_NULL", auxvBytes(0, 0), []uint64{0, 0}},
		{"AT_NULL with value", auxvBytes(6, 4096, 0, 7), []uint64{6, 4096, 0, 7}},
		{"bytes after AT_NULL", append(auxvBytes(6, 4096, 0, 0, 9, 9), 1, 2, 3), []uint64{6, 4096, 0, 0}},
	}
	for _, c := range cases {
		got, err := ParseAuxv(bytes.NewReader(c.in))
		if err != nil || !reflect.DeepEqual(got, c.want) {
			t.Errorf("%s: got %v, %v; want %v", c.name, got, err, c.want)
		}
	}
}

func TestParseAuxvMalformed(t *testing.T) {
	cases := []badCase{
		{"no AT_NULL", string(auxvBytes(6, 4096, 9, 1)), "auxv: no AT_NULL entry in 2 entries", 0},
		{"truncated", string(auxvBytes(6, 4096, 9)), "auxv: entry 1 truncated: 8 of 16 bytes", 0},
		{"short", "\x00\x00\x00", "auxv: entry 0 truncated: 3 of 16 bytes", 0},
	}
	checkBad(t, cases, func(r *bytes.Reader) error {
		_, err := ParseAuxv(r)
		return err
	})
}

func TestReadAuxvSelf(t *testing.T) {
	words, err := ReadAuxv(os.Getpid())
	if err != nil {
		t.Fatal(err)
	}
	if v, ok := auxvValue(words, atPagesz); !ok || v != uint64(os.Getpagesize()) {
		t.Errorf("AT_PAGESZ = %d, %v", v, ok)
	}
}
