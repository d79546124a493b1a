// Package e2e holds godwit's end-to-end tests. They build the godwit binary
// and the victim programs of test/victims, and drive godwit as a user would:
// start a victim, dump it, restore it, and compare what the victim itself
// reports before and after. They need root (most skip without it), gcc and
// python3; scripts/test.sh installs everything they use.
//
// Run them with: go test ./test/e2e
package e2e
