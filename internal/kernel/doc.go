// Package kernel probes the running kernel for the features godwit uses.
//
// Each Probe names a feature, says what godwit uses it for, what its absence
// disables and from which Linux version it exists, and carries a side-effect
// free test. Check runs them all (godwit check prints the result); Run runs
// one. Results are computed once per process and cached.
//
// A probe's error is a *fault.Error that names the feature and, when the
// kernel lacks it, the minimum version, e.g.
//
//	PAGEMAP_SCAN ioctl: requires Linux 6.7: ENOTTY
//
// Its code tells missing (fault.CodeKernel) from not permitted for this user
// (fault.CodePermission); the errno stays reachable through errors.Is.
package kernel
