// Package bench holds godwit's performance benchmarks; it has no code of its
// own. See README.md in this directory for how to run them and what the
// figures mean.
package bench
