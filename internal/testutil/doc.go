// Package testutil holds helpers for godwit's tests: gates that skip a test
// with a reason (RequireRoot, RequireCommand), builders for the godwit binary
// and for C victim programs, a poll-until-true WaitFor, a Victim type that
// starts a program and always cleans it up (also after it was checkpointed and
// restored under the same PID), and helpers to run godwit and read its
// result.
//
// Tests that restore processes must call Subreaper first: a restored process
// is reparented to the nearest child-subreaper ancestor of godwit, so the test
// process becomes its parent and can reap it.
//
// Helpers that take a testing.TB call t.Helper and t.Fatal on failure; none
// of them may run concurrently with another test of the same binary that
// reaps children (tests using Victim must not be parallel).
package testutil
