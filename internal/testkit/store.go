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
