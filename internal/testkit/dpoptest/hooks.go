package dpoptest

import (
	"sync"

	"github.com/dpopkit/dpop"
)

// Events are the events a Recorder kept, by hook.
type Events struct {
	Proofs      []dpop.ProofEvent
	Issued      []dpop.TokenEvent
	TokenErrors []dpop.TokenErrorEvent
	Refusals    []dpop.ResourceEvent
	StoreCalls  []dpop.StoreEvent
}

// Recorder keeps every event of the dpop.Hooks it makes, for tests that
// count them. It is safe for concurrent use.
type Recorder struct {
	mu sync.Mutex
	ev Events
}

// Hooks returns hooks that record into r.
func (r *Recorder) Hooks() *dpop.Hooks {
	return &dpop.Hooks{
		ProofChecked: func(e dpop.ProofEvent) { r.mu.Lock(); r.ev.Proofs = append(r.ev.Proofs, e); r.mu.Unlock() },
		TokenIssued:  func(e dpop.TokenEvent) { r.mu.Lock(); r.ev.Issued = append(r.ev.Issued, e); r.mu.Unlock() },
		TokenError: func(e dpop.TokenErrorEvent) {
			r.mu.Lock()
			r.ev.TokenErrors = append(r.ev.TokenErrors, e)
			r.mu.Unlock()
		},
		ResourceRefused: func(e dpop.ResourceEvent) { r.mu.Lock(); r.ev.Refusals = append(r.ev.Refusals, e); r.mu.Unlock() },
		StoreCall:       func(e dpop.StoreEvent) { r.mu.Lock(); r.ev.StoreCalls = append(r.ev.StoreCalls, e); r.mu.Unlock() },
	}
}

// Take returns what was recorded since the last Take, and forgets it.
func (r *Recorder) Take() Events {
	r.mu.Lock()
	defer r.mu.Unlock()
	ev := r.ev
	r.ev = Events{}
	return ev
}

// NoOpHooks returns hooks whose every function does nothing: the cost of
// hooks that are set, for benchmarks.
func NoOpHooks() *dpop.Hooks {
	return &dpop.Hooks{
		ProofChecked:    func(dpop.ProofEvent) {},
		TokenIssued:     func(dpop.TokenEvent) {},
		TokenError:      func(dpop.TokenErrorEvent) {},
		ResourceRefused: func(dpop.ResourceEvent) {},
		StoreCall:       func(dpop.StoreEvent) {},
	}
}
