package adaptertest

import (
	"context"
	"errors"
	"sync"
	"testing"
)

var bg = context.Background()

// must fails the test on an error.
func must(t *testing.T, err error, what string) {
	t.Helper()
	if err != nil {
		t.Fatalf("%s: %v", what, err)
	}
}

// wantErr fails unless errors.Is(err, target).
func wantErr(t *testing.T, err, target error, what string) {
	t.Helper()
	if !errors.Is(err, target) {
		t.Fatalf("%s: error %v, want %v", what, err, target)
	}
}

// same fails when a record differs from the one saved.
func same(t *testing.T, got, want any, what string) {
	t.Helper()
	if d := diff(got, want); d != "" {
		t.Fatalf("%s: %s", what, d)
	}
}

// race runs f from racers goroutines released at once and returns how many
// calls returned no error; every error must be one of allowed.
func race(t *testing.T, f func(i int) error, allowed ...error) int {
	t.Helper()
	var (
		wg     sync.WaitGroup
		mu     sync.Mutex
		wins   int
		others []error
	)
	start := make(chan struct{})
	for i := range racers {
		wg.Go(func() {
			<-start
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
	close(start)
	wg.Wait()
	if len(others) > 0 {
		t.Fatalf("%d unexpected errors, first: %v", len(others), others[0])
	}
	return wins
}
