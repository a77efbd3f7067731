package adaptertest

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"testing"

	"github.com/dpopkit/dpop"
)

var bg = context.Background()

// must fails the test on an error.
func must(t testing.TB, err error, what string) {
	t.Helper()
	if err != nil {
		t.Fatalf("%s: %v", what, err)
	}
}

// wantErr fails unless errors.Is(err, target).
func wantErr(t testing.TB, err, target error, what string) {
	t.Helper()
	if !errors.Is(err, target) {
		t.Fatalf("%s: error %v, want %v", what, err, target)
	}
}

// same fails when a record differs from the one saved.
func same(t testing.TB, got, want any, what string) {
	t.Helper()
	if d := diff(got, want); d != "" {
		t.Fatalf("%s: %s", what, d)
	}
}

// The errors of the racers of a round that lost: errPeeked marks a GetCode
// that found the code live, in a race against its redemption; errReplayed
// an Insert that found its key.
var (
	errPeeked   = errors.New("looked up before the redemption")
	errReplayed = errors.New("replayed")
)

// race runs one round of an atomicity check: f(i) from racers goroutines
// that are all started and parked at a gate before it opens, so that their
// calls reach the store together. It returns how many calls returned no
// error; every error must be one of allowed. Atomicity subtests run
// raceRounds rounds, each over a fresh record, so that an implementation
// whose check and update are separate steps is caught even when the window
// between them is a single scheduling point: one round may happen to
// serialise the racers, twenty in a row do not.
func race(t *testing.T, f func(i int) error, allowed ...error) int {
	t.Helper()
	var (
		ready, wg sync.WaitGroup
		mu        sync.Mutex
		wins      int
		others    []error
	)
	gate := make(chan struct{})
	ready.Add(racers)
	for i := range racers {
		wg.Go(func() {
			ready.Done()
			<-gate
			err := f(i)
			mu.Lock()
			defer mu.Unlock()
			if err == nil {
				wins++
				return
			}
			for _, a := range allowed {
				if errors.Is(err, a) {
					return
				}
			}
			others = append(others, err)
		})
	}
	ready.Wait()
	close(gate)
	wg.Wait()
	if len(others) > 0 {
		t.Fatalf("%d unexpected errors, first: %v", len(others), others[0])
	}
	return wins
}

// raceKeys runs raceRounds rounds of race, each over a fresh replay key of
// the key thumbprint jkt, in which record(k) records k and reports whether
// this call did; exactly one racer of each round may. what names the calls
// in the failure.
func raceKeys(t *testing.T, what, jkt string, record func(k dpop.ReplayKey) (bool, error)) {
	t.Helper()
	for round := range raceRounds {
		k := dpop.NewReplayKey(jkt, fmt.Sprintf("contended-%s-%d", what, round))
		wins := race(t, func(int) error {
			ok, err := record(k)
			if err == nil && !ok {
				return errReplayed
			}
			return err
		}, errReplayed)
		if wins != 1 {
			t.Fatalf("round %d of %d: %d of %d concurrent %s of one key succeeded, want exactly 1", round+1, raceRounds, wins, racers, what)
		}
	}
}
