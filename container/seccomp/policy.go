package seccomp

import (
	"fmt"
	"time"
)

// Device is a character device (major:minor).
type Device struct {
	Major uint32 `json:"major"`
	Minor uint32 `json:"minor"`
}

func (d Device) String() string { return fmt.Sprintf("%d:%d", d.Major, d.Minor) }

// SafeDevices are the character devices the supervisor creates by default:
// null, zero, full, random, urandom, tty, console, and 0:0 (an overlayfs
// whiteout).
var SafeDevices = []Device{{1, 3}, {1, 5}, {1, 7}, {1, 8}, {1, 9}, {5, 0}, {5, 1}, {0, 0}}

// Policy says what the supervisor does on behalf of a container. The zero
// value supervises nothing.
type Policy struct {
	// Enabled turns the supervisor on: mknod, mknodat, setxattr and
	// lsetxattr are then sent to it.
	Enabled bool `json:"enabled"`
	// Devices the supervisor creates when asked for a character device.
	Devices []Device `json:"devices,omitempty"`
	// OverlayOpaque lets the container set trusted.overlay.opaque (root
	// supervisor only).
	OverlayOpaque bool `json:"overlayOpaque,omitempty"`
	// Timeout bounds the handling of one request; the caller gets EAGAIN
	// when it is exceeded. Zero means 5 s.
	Timeout time.Duration `json:"timeout,omitempty"`
}

// DefaultPolicy is the policy of a container that does not set one.
func DefaultPolicy() Policy {
	return Policy{Enabled: true, Devices: SafeDevices, OverlayOpaque: true}
}

func (p Policy) supervised() []string {
	if !p.Enabled {
		return nil
	}
	return []string{"mknod", "mknodat", "setxattr", "lsetxattr"}
}

func (p Policy) allows(d Device) bool {
	for _, a := range p.Devices {
		if a == d {
			return true
		}
	}
	return false
}

func (p Policy) timeout() time.Duration {
	if p.Timeout <= 0 {
		return 5 * time.Second
	}
	return p.Timeout
}
