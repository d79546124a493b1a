package unix

import "testing"

func TestXstateSize(t *testing.T) {
	n, err := XstateSize()
	if err != nil {
		t.Skipf("CPU or kernel without XSAVE: %v", err)
	}
	// Legacy area (512) + XSAVE header (64) is the minimum.
	if n < 576 {
		t.Fatalf("XstateSize = %d, want at least 576", n)
	}
	xcr0 := XCR0()
	if xcr0&3 != 3 {
		t.Fatalf("XCR0 = %#x, want x87 and SSE enabled", xcr0)
	}
	t.Logf("xstate %d bytes, XCR0 %#x", n, xcr0)
}
