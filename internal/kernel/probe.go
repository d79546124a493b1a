package kernel

import (
	"errors"
	"sync"

	"github.com/godwit-dev/godwit/fault"
)

// Probe is one kernel feature godwit uses and the test for it.
type Probe struct {
	Name      string // stable name, one of the constants of this package
	UsedFor   string // what godwit does with it
	Disables  string // what godwit cannot do without it
	MinKernel string // first Linux version that has it, e.g. "6.7"
	// Required probes are needed by checkpoint and restore themselves;
	// `godwit check` fails when one of them is not ok.
	Required bool
	// Info probes only describe the machine: absent is not a failure.
	Info bool
	// Workaround, when set, is how godwit does without the feature when it
	// is denied to this user; a denial is then not a failure.
	Workaround string
	// Run tests for the feature, without side effects; nil means usable.
	Run func() error
	// Detail, when set, describes what was found (sizes, modes); it is
	// called after Run succeeds.
	Detail func() string
}

// Status is the outcome of a probe.
type Status string

// Statuses.
const (
	StatusOK      Status = "ok"      // present and usable by this user
	StatusMissing Status = "missing" // the kernel lacks it (or it is disabled)
	StatusDenied  Status = "denied"  // present, but not permitted for this user
	StatusFailed  Status = "failed"  // the probe itself could not run
	StatusAbsent  Status = "absent"  // an Info probe found nothing: not a failure
)

// Result is the outcome of running one Probe.
type Result struct {
	Probe
	Status Status
	Detail string // from Probe.Detail, when ok
	Err    error  // why it is not ok
}

// OK reports whether the feature is usable.
func (r Result) OK() bool { return r.Status == StatusOK }

// Failed reports whether the result makes `godwit check` fail: a required
// feature that is not usable, unless it is only denied and has a Workaround.
func (r Result) Failed() bool {
	if r.Status == StatusDenied && r.Workaround != "" {
		return false
	}
	return r.Required && r.Status != StatusOK
}

func run(p Probe) Result {
	r := Result{Probe: p}
	r.Err = p.Run()
	switch {
	case r.Err == nil:
		r.Status = StatusOK
		if p.Detail != nil {
			r.Detail = p.Detail()
		}
	case errors.Is(r.Err, fault.ErrPermission):
		r.Status = StatusDenied
	case errors.Is(r.Err, fault.ErrKernel):
		r.Status = StatusMissing
		if p.Info {
			r.Status = StatusAbsent
		}
	default:
		r.Status = StatusFailed
	}
	return r
}

var cache struct {
	sync.Mutex
	results map[string]Result
}

// Run runs the probe of the given name once per process and returns its
// (cached) result; ok is false when no probe has that name.
func Run(name string) (r Result, ok bool) {
	cache.Lock()
	defer cache.Unlock()
	if r, ok := cache.results[name]; ok {
		return r, true
	}
	for _, p := range Probes() {
		if p.Name == name {
			r = run(p)
			if cache.results == nil {
				cache.results = map[string]Result{}
			}
			cache.results[name] = r
			return r, true
		}
	}
	return Result{}, false
}

// Check runs every probe (each once per process) and returns their results
// in the order of Probes.
func Check() []Result {
	ps := Probes()
	out := make([]Result, 0, len(ps))
	for _, p := range ps {
		r, _ := Run(p.Name)
		out = append(out, r)
	}
	return out
}
