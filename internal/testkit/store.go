package testkit

import (
	"fmt"
	"testing"
	"time"

	"github.com/dpopkit/dpop/store"
)

// RotateChain saves a refresh token of grant and rotates it n times, each
// rotation returning the record it consumed; it returns the n+1 hashes,
// oldest first. Token i is issued i seconds after the first, as the
// handlers issue them, and expires at exp(i).
func RotateChain(tb testing.TB, s store.RefreshTokenStore, grant string, n int, exp func(i int) time.Time) []store.TokenHash {
	tb.Helper()
	base := time.Now().Truncate(time.Millisecond)
	tok := func(i int) *store.RefreshToken {
		return &store.RefreshToken{GrantID: grant, ClientID: "c", Subject: "s",
			IssuedAt: base.Add(time.Duration(i) * time.Second), ExpiresAt: exp(i)}
	}
	hs := make([]store.TokenHash, n+1)
	for i := range hs {
		hs[i] = store.HashToken(fmt.Sprint(grant, "-", i))
	}
	fatalIf(tb, s.SaveRefreshToken(bg, hs[0], tok(0)), "SaveRefreshToken")
	for i := 1; i <= n; i++ {
		prev, err := s.RotateRefreshToken(bg, hs[i-1], hs[i], tok(i))
		if err != nil || prev == nil || prev.GrantID != grant {
			tb.Fatalf("rotation %d: %+v, %v", i, prev, err)
		}
	}
	return hs
}

// StorePair opens one store over each of two connections to one database,
// a and b, with open, as two processes would, for
// adaptertest.RunInstances: it returns the two stores and a cleanup that
// closes both.
func StorePair[C any, S interface {
	store.Store
	Close() error
}](tb testing.TB, a, b C, open func(C) (S, error)) (store.Store, store.Store, func()) {
	tb.Helper()
	var stores [2]S
	for i, c := range []C{a, b} {
		s, err := open(c)
		fatalIf(tb, err, "opening a store")
		stores[i] = s
	}
	return stores[0], stores[1], func() { stores[0].Close(); stores[1].Close() }
}
