package transport

import (
	"encoding/binary"
	"testing"
)

func muxHeader(typ uint8, flags uint16, id, length uint32) []byte {
	h := []byte{0, typ}
	h = binary.BigEndian.AppendUint16(h, flags)
	h = binary.BigEndian.AppendUint32(h, id)
	return binary.BigEndian.AppendUint32(h, length)
}

// TestWatchConnFINs feeds the frame follower a byte stream in every split,
// with a FIN flag hidden in data that it must skip.
func TestWatchConnFINs(t *testing.T) {
	var in []byte
	in = append(in, muxHeader(1, 1, 3, 0)...) // window update, SYN, stream 3
	data := muxHeader(1, muxFlagFIN, 9, 0)    // looks like a FIN for 9, but is data
	in = append(in, muxHeader(0, 0, 3, uint32(len(data)))...)
	in = append(in, data...)
	in = append(in, muxHeader(2, 1, 0, 77)...)           // ping
	in = append(in, muxHeader(0, muxFlagFIN, 5, 2)...)   // data + FIN on 5
	in = append(in, 'h', 'i')                            //
	in = append(in, muxHeader(1, muxFlagFIN, 3, 0)...)   // FIN on 3
	in = append(in, muxHeader(1, muxFlagFIN|8, 0, 0)...) // never a stream

	for split := 1; split <= len(in); split++ {
		w := newWatchConn(nil, nil)
		for p := in; len(p) > 0; {
			n := min(split, len(p))
			w.observe(p[:n])
			p = p[n:]
		}
		for id, want := range map[uint32]bool{3: true, 5: true, 9: false, 0: false} {
			if got := w.takeFIN(id); got != want {
				t.Fatalf("split %d: FIN on stream %d: %v, want %v", split, id, got, want)
			}
		}
		if w.takeFIN(3) {
			t.Fatalf("takeFIN did not forget")
		}
	}
}
