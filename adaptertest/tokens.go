package adaptertest

import (
	"errors"
	"fmt"
	"sync/atomic"
	"testing"
	"time"

	"github.com/dpopkit/dpop/store"
)

func testAccessTokens(t *testing.T, newStore NewStore) {
	t.Run("RoundTrip", func(t *testing.T) {
		s := open(t, newStore)
		exp := now().Add(time.Hour)
		bound, bearer := randomHash(), randomHash()
		must(t, s.SaveAccessToken(bg, bound, sampleAccess("g", exp)), "SaveAccessToken")
		// A Bearer token without an audience or claims of the host: they
		// stay empty (nil or empty, not a list of one empty string, nor
		// "null" or "{}").
		plain := sampleAccess("g", exp)
		plain.JKT, plain.Audience, plain.Claims = "", nil, nil
		must(t, s.SaveAccessToken(bg, bearer, plain), "SaveAccessToken (Bearer)")
		for range 2 { // a lookup does not consume
			got, err := s.GetAccessToken(bg, bound)
			must(t, err, "GetAccessToken")
			same(t, got, sampleAccess("g", exp), "DPoP-bound token")
		}
		got, err := s.GetAccessToken(bg, bearer)
		must(t, err, "GetAccessToken (Bearer)")
		same(t, got, plain, "Bearer token")
	})
	t.Run("Copies", func(t *testing.T) {
		s := open(t, newStore)
		h, exp := randomHash(), now().Add(time.Hour)
		tok := sampleAccess("g", exp)
		must(t, s.SaveAccessToken(bg, h, tok), "SaveAccessToken")
		tok.Audience[0], tok.Claims[0] = "https://evil.example/", '['
		got, err := s.GetAccessToken(bg, h)
		must(t, err, "GetAccessToken")
		same(t, got, sampleAccess("g", exp), "token after the caller changed its copy")
		got.Audience[1], got.Claims[1] = "https://evil.example/", 'x'
		got, err = s.GetAccessToken(bg, h)
		must(t, err, "GetAccessToken")
		same(t, got, sampleAccess("g", exp), "token after a reader changed its copy")
	})
	t.Run("NotFound", func(t *testing.T) {
		s := open(t, newStore)
		_, err := s.GetAccessToken(bg, randomHash())
		wantErr(t, err, store.ErrNotFound, "GetAccessToken of an unknown token")
	})
	t.Run("Revoke", func(t *testing.T) {
		s := open(t, newStore)
		h, other := randomHash(), randomHash()
		must(t, s.SaveAccessToken(bg, h, sampleAccess("g", now().Add(time.Hour))), "SaveAccessToken")
		must(t, s.SaveAccessToken(bg, other, sampleAccess("g", now().Add(time.Hour))), "SaveAccessToken")
		must(t, s.RevokeAccessToken(bg, h), "RevokeAccessToken")
		_, err := s.GetAccessToken(bg, h)
		wantErr(t, err, store.ErrNotFound, "GetAccessToken after revocation")
		_, err = s.GetAccessToken(bg, other)
		must(t, err, "GetAccessToken of another token after revocation")
		must(t, s.RevokeAccessToken(bg, h), "RevokeAccessToken twice")
		must(t, s.RevokeAccessToken(bg, randomHash()), "RevokeAccessToken of an unknown token")
	})
	t.Run("OddKeys", func(t *testing.T) {
		s := open(t, newStore)
		exp := now().Add(time.Hour)
		for i, h := range oddHashes() {
			tok := sampleAccess("g", exp)
			tok.Subject = string(rune('a' + i))
			must(t, s.SaveAccessToken(bg, h, tok), "SaveAccessToken")
		}
		for i, h := range oddHashes() {
			got, err := s.GetAccessToken(bg, h)
			must(t, err, "GetAccessToken of an odd key")
			if got.Subject != string(rune('a'+i)) {
				t.Fatalf("odd key %d returned the record of another key (%q)", i, got.Subject)
			}
		}
	})
}

func testRefreshTokens(t *testing.T, newStore NewStore) {
	t.Run("RoundTrip", func(t *testing.T) {
		s, h, exp := withRefresh(t, newStore, "g")
		got, err := s.GetRefreshToken(bg, h)
		must(t, err, "GetRefreshToken")
		same(t, got, sampleRefresh("g", exp), "refresh token")
	})
	t.Run("Rotate", func(t *testing.T) {
		s, old, exp := withRefresh(t, newStore, "g")
		next := randomHash()
		// A refresh may narrow the scope and the audience (RFC 8707
		// §2.2), and the host's claims may change: the new record's own.
		nextRec := sampleRefresh("g", exp.Add(time.Hour))
		nextRec.Scope = "read"
		nextRec.Audience, nextRec.Claims = []string{"https://api.example/v1?tenant=a&x=1"}, []byte(`{"z":{},"a":[1]}`)
		prev, err := s.RotateRefreshToken(bg, old, next, nextRec)
		must(t, err, "RotateRefreshToken")
		same(t, prev, sampleRefresh("g", exp), "record returned by rotation")
		got, err := s.GetRefreshToken(bg, next)
		must(t, err, "GetRefreshToken of the new token")
		same(t, got, nextRec, "new refresh token")
		got, err = s.GetRefreshToken(bg, old)
		wantErr(t, err, store.ErrConsumed, "GetRefreshToken of the rotated token")
		if got == nil || got.GrantID != "g" {
			t.Fatalf("rotated token's lookup returned %+v, want its record", got)
		}
	})
	t.Run("RotateToNone", func(t *testing.T) {
		// A rotation into a token without audience or claims stores
		// none, whatever the old token had.
		s, old, exp := withRefresh(t, newStore, "g")
		next := randomHash()
		nextRec := sampleRefresh("g", exp)
		nextRec.Audience, nextRec.Claims = nil, nil
		_, err := s.RotateRefreshToken(bg, old, next, nextRec)
		must(t, err, "RotateRefreshToken")
		got, err := s.GetRefreshToken(bg, next)
		must(t, err, "GetRefreshToken of the new token")
		same(t, got, nextRec, "new refresh token without audience and claims")
	})
	t.Run("Copies", func(t *testing.T) {
		s, old, exp := withRefresh(t, newStore, "g")
		tok := sampleRefresh("g", exp)
		h := randomHash()
		must(t, s.SaveRefreshToken(bg, h, tok), "SaveRefreshToken")
		tok.Audience[0], tok.Claims[0] = "https://evil.example/", '['
		got, err := s.GetRefreshToken(bg, h)
		must(t, err, "GetRefreshToken")
		same(t, got, sampleRefresh("g", exp), "token after the caller changed its copy")
		got.Audience[0], got.Claims[1] = "https://evil.example/", 'x'
		got, err = s.GetRefreshToken(bg, h)
		must(t, err, "GetRefreshToken")
		same(t, got, sampleRefresh("g", exp), "token after a reader changed its copy")

		// A rotation: neither the record passed in nor the one returned
		// is the store's.
		next, nextRec := randomHash(), sampleRefresh("g", exp)
		prev, err := s.RotateRefreshToken(bg, old, next, nextRec)
		must(t, err, "RotateRefreshToken")
		nextRec.Audience[0], nextRec.Claims[0] = "https://evil.example/", '['
		prev.Audience[0], prev.Claims[1] = "https://evil.example/", 'x'
		got, err = s.GetRefreshToken(bg, next)
		must(t, err, "GetRefreshToken of the new token")
		same(t, got, sampleRefresh("g", exp), "new token after the rotator changed its copy")
		got, err = s.GetRefreshToken(bg, old)
		wantErr(t, err, store.ErrConsumed, "GetRefreshToken of the rotated token")
		same(t, got, sampleRefresh("g", exp), "rotated token after the rotator changed the record returned")
	})
	t.Run("RotateTwice", func(t *testing.T) {
		s, old, exp := withRefresh(t, newStore, "g")
		_, err := s.RotateRefreshToken(bg, old, randomHash(), sampleRefresh("g", exp))
		must(t, err, "RotateRefreshToken")
		second := randomHash()
		got, err := s.RotateRefreshToken(bg, old, second, sampleRefresh("g", exp))
		wantErr(t, err, store.ErrConsumed, "second RotateRefreshToken of one token")
		if got == nil || got.GrantID != "g" {
			t.Fatalf("second rotation returned %+v, want the old record", got)
		}
		_, err = s.GetRefreshToken(bg, second)
		wantErr(t, err, store.ErrNotFound, "token stored by a refused rotation")
	})
	t.Run("RotateRace", func(t *testing.T) {
		s := open(t, newStore)
		exp := now().Add(time.Hour)
		next := make([]store.TokenHash, racers)
		for round := range raceRounds {
			old, grant := randomHash(), fmt.Sprintf("race-%d", round)
			must(t, s.SaveRefreshToken(bg, old, sampleRefresh(grant, exp)), "SaveRefreshToken")
			for i := range next {
				next[i] = randomHash()
			}
			var records atomic.Int32
			wins := race(t, func(i int) error {
				prev, err := s.RotateRefreshToken(bg, old, next[i], sampleRefresh(grant, exp))
				if prev != nil && prev.GrantID == grant {
					records.Add(1)
				}
				return err
			}, store.ErrConsumed)
			stored := 0
			for _, h := range next {
				if _, err := s.GetRefreshToken(bg, h); err == nil {
					stored++
				} else if !errors.Is(err, store.ErrNotFound) {
					t.Fatalf("GetRefreshToken: %v", err)
				}
			}
			// Every caller gets old's record: the winner, and the losers to
			// revoke the grant (RFC 9700 §4.14.2).
			if wins != 1 || stored != 1 || records.Load() != racers {
				t.Fatalf("round %d of %d: %d of %d concurrent rotations won, %d new tokens exist and %d got the old record, want 1, 1 and all",
					round+1, raceRounds, wins, racers, stored, records.Load())
			}
		}
	})
	t.Run("RotateUnknown", func(t *testing.T) {
		s := open(t, newStore)
		next := randomHash()
		_, err := s.RotateRefreshToken(bg, randomHash(), next, sampleRefresh("g", now().Add(time.Hour)))
		wantErr(t, err, store.ErrNotFound, "RotateRefreshToken of an unknown token")
		_, err = s.GetRefreshToken(bg, next)
		wantErr(t, err, store.ErrNotFound, "token stored by a refused rotation")
	})
	t.Run("Revoke", func(t *testing.T) {
		s, h, _ := withRefresh(t, newStore, "g")
		must(t, s.RevokeRefreshToken(bg, h), "RevokeRefreshToken")
		_, err := s.GetRefreshToken(bg, h)
		wantErr(t, err, store.ErrNotFound, "GetRefreshToken after revocation")
		next := randomHash()
		_, err = s.RotateRefreshToken(bg, h, next, sampleRefresh("g", now().Add(time.Hour)))
		wantErr(t, err, store.ErrNotFound, "RotateRefreshToken after revocation")
		must(t, s.RevokeRefreshToken(bg, randomHash()), "RevokeRefreshToken of an unknown token")
	})
	t.Run("OddKeys", func(t *testing.T) {
		s := open(t, newStore)
		exp := now().Add(time.Hour)
		keys := oddHashes()
		for i, h := range keys {
			tok := sampleRefresh("g", exp)
			tok.Subject = string(rune('a' + i))
			must(t, s.SaveRefreshToken(bg, h, tok), "SaveRefreshToken")
		}
		// Rotating one odd key leaves its neighbour (one bit away) alone.
		_, err := s.RotateRefreshToken(bg, keys[2], randomHash(), sampleRefresh("g", exp))
		must(t, err, "RotateRefreshToken of an odd key")
		got, err := s.GetRefreshToken(bg, keys[3])
		must(t, err, "GetRefreshToken of the neighbouring key")
		if got.Subject != "d" {
			t.Fatalf("neighbouring key returned %q", got.Subject)
		}
	})
	t.Run("ChainBound", func(t *testing.T) { testChainBound(t, newStore) })
	t.Run("ChainBoundSparesLiveTokens", func(t *testing.T) {
		// A rotated token saved again under the same hash is live once
		// more: forgetting the grant's older rotated tokens never deletes
		// it.
		s := open(t, newStore)
		exp := now().Add(time.Hour)
		first := randomHash()
		must(t, s.SaveRefreshToken(bg, first, sampleRefresh("g", exp)), "SaveRefreshToken")
		prev := first
		for i := range 2 * store.ConsumedRefreshTokensPerGrant {
			next := randomHash()
			_, err := s.RotateRefreshToken(bg, prev, next, sampleRefresh("g", exp))
			must(t, err, fmt.Sprintf("rotation %d", i))
			if i == 0 {
				must(t, s.SaveRefreshToken(bg, first, sampleRefresh("g", exp)), "SaveRefreshToken of a rotated token")
			}
			prev = next
		}
		_, err := s.GetRefreshToken(bg, first)
		must(t, err, "a live token after its grant's rotated tokens were forgotten")
	})
}

// withRefresh opens a store for the subtest and saves a refresh token of
// grant in it, under a fresh key and live for an hour; it returns the
// store, the key and the token's expiry.
func withRefresh(t *testing.T, newStore NewStore, grant string) (store.Store, store.TokenHash, time.Time) {
	t.Helper()
	s := open(t, newStore)
	h, exp := randomHash(), now().Add(time.Hour)
	must(t, s.SaveRefreshToken(bg, h, sampleRefresh(grant, exp)), "SaveRefreshToken")
	return s, h, exp
}

// chainExtra is how many rotations beyond ConsumedRefreshTokensPerGrant
// ChainBound makes, so that the store must forget that many tokens.
const chainExtra = 4

// chainRecord is the record of the i-th token of a grant's rotation chain,
// different from the others, so that a token answering with another
// token's record shows.
func chainRecord(grant string, i int, exp time.Time) *store.RefreshToken {
	r := sampleRefresh(grant, exp)
	r.Subject = fmt.Sprintf("%s, token %d", r.Subject, i)
	r.IssuedAt = r.IssuedAt.Add(time.Duration(i) * time.Minute)
	return r
}

// testChainBound rotates one grant's refresh token
// ConsumedRefreshTokensPerGrant+chainExtra times and checks, after every
// rotation, that exactly the ConsumedRefreshTokensPerGrant most recently
// consumed tokens answer ErrConsumed with their own record, that older
// ones are forgotten (ErrNotFound) and that the newest is live; that the
// tokens of another grant of the same client, rotated before and in
// between, are untouched; and that rotating a forgotten token is refused as
// unknown and stores nothing.
func testChainBound(t *testing.T, newStore NewStore) {
	const keep = store.ConsumedRefreshTokensPerGrant
	s := open(t, newStore)
	exp := now().Add(time.Hour)
	type chain struct {
		grant string
		h     []store.TokenHash
	}
	newChain := func(grant string) *chain {
		c := &chain{grant: grant, h: []store.TokenHash{randomHash()}}
		must(t, s.SaveRefreshToken(bg, c.h[0], chainRecord(grant, 0, exp)), "SaveRefreshToken")
		return c
	}
	rotate := func(c *chain) {
		t.Helper()
		n := len(c.h)
		next := randomHash()
		prev, err := s.RotateRefreshToken(bg, c.h[n-1], next, chainRecord(c.grant, n, exp))
		must(t, err, fmt.Sprintf("rotation %d of grant %s", n, c.grant))
		same(t, prev, chainRecord(c.grant, n-1, exp), fmt.Sprintf("record returned by rotation %d", n))
		c.h = append(c.h, next)
	}
	// check verifies every token of c: the newest is live, the keep before
	// it are consumed, the older ones are forgotten.
	check := func(c *chain, when string) {
		t.Helper()
		last := len(c.h) - 1
		for i, h := range c.h {
			got, err := s.GetRefreshToken(bg, h)
			what := fmt.Sprintf("%s: token %d of grant %s (%d rotations)", when, i, c.grant, last)
			switch {
			case i == last:
				must(t, err, what+", the live one")
				same(t, got, chainRecord(c.grant, i, exp), what)
			case i >= last-keep:
				if !errors.Is(err, store.ErrConsumed) {
					t.Fatalf("%s, one of the %d most recently consumed: error %v, want %v (a consumed token must be remembered)", what, keep, err, store.ErrConsumed)
				}
				if got == nil {
					t.Fatalf("%s: no record with ErrConsumed: its grant could not be revoked", what)
				}
				same(t, got, chainRecord(c.grant, i, exp), what)
			default:
				if errors.Is(err, store.ErrConsumed) {
					t.Fatalf("%s, older than the %d most recently consumed: still remembered (%v), want %v: the chain is not bounded", what, keep, err, store.ErrNotFound)
				}
				wantErr(t, err, store.ErrNotFound, what+", older than the kept ones")
			}
		}
	}
	// Another grant of the same client, rotated before and in between: a
	// store that bounds consumed tokens per client, or forgets the oldest
	// of the table, loses its tokens.
	other := newChain("other-grant")
	rotate(other)
	rotate(other)
	c := newChain("chain-grant")
	for r := 1; r <= keep+chainExtra; r++ {
		rotate(c)
		if r == keep/2 {
			rotate(other)
		}
		check(c, fmt.Sprintf("after rotation %d", r))
		check(other, fmt.Sprintf("after rotation %d of another grant", r))
	}

	// A forgotten token is unknown: rotating it stores nothing, and
	// touches neither chain.
	for i := range chainExtra {
		next := randomHash()
		_, err := s.RotateRefreshToken(bg, c.h[i], next, chainRecord(c.grant, 99, exp))
		wantErr(t, err, store.ErrNotFound, fmt.Sprintf("rotation of forgotten token %d", i))
		_, err = s.GetRefreshToken(bg, next)
		wantErr(t, err, store.ErrNotFound, "token stored by the rotation of a forgotten token")
	}
	check(c, "after rotating forgotten tokens")
	check(other, "after rotating forgotten tokens of another grant")
}

func testGrants(t *testing.T, newStore NewStore) {
	t.Run("RevokeGrant", func(t *testing.T) {
		s := open(t, newStore)
		exp := now().Add(time.Hour)
		a1, a2, aOther := randomHash(), randomHash(), randomHash()
		r1, rOther := randomHash(), randomHash()
		must(t, s.SaveAccessToken(bg, a1, sampleAccess("doomed", exp)), "SaveAccessToken")
		must(t, s.SaveAccessToken(bg, aOther, sampleAccess("kept", exp)), "SaveAccessToken")
		must(t, s.SaveRefreshToken(bg, r1, sampleRefresh("doomed", exp)), "SaveRefreshToken")
		must(t, s.SaveRefreshToken(bg, rOther, sampleRefresh("kept", exp)), "SaveRefreshToken")
		must(t, s.RevokeGrant(bg, "doomed", exp.Add(time.Hour)), "RevokeGrant")

		_, err := s.GetAccessToken(bg, a1)
		wantErr(t, err, store.ErrRevoked, "access token of a revoked grant")
		_, err = s.GetRefreshToken(bg, r1)
		wantErr(t, err, store.ErrRevoked, "refresh token of a revoked grant")
		next := randomHash()
		_, err = s.RotateRefreshToken(bg, r1, next, sampleRefresh("doomed", exp))
		wantErr(t, err, store.ErrRevoked, "rotation of a refresh token of a revoked grant")
		_, err = s.GetRefreshToken(bg, next)
		wantErr(t, err, store.ErrNotFound, "token stored by a refused rotation")

		// Tokens stored after the revocation (a request in flight) are covered too.
		must(t, s.SaveAccessToken(bg, a2, sampleAccess("doomed", exp)), "SaveAccessToken")
		_, err = s.GetAccessToken(bg, a2)
		wantErr(t, err, store.ErrRevoked, "access token saved after its grant was revoked")

		_, err = s.GetAccessToken(bg, aOther)
		must(t, err, "access token of another grant")
		_, err = s.GetRefreshToken(bg, rOther)
		must(t, err, "refresh token of another grant")
		must(t, s.RevokeGrant(bg, "doomed", exp), "RevokeGrant again")
	})
	t.Run("CodeReplayRevokesTokens", func(t *testing.T) {
		// The flow the handlers run when a code is redeemed twice (RFC 6749
		// §4.1.2): the second ConsumeCode names the grant, and revoking it
		// disables what the first redemption issued.
		s := open(t, newStore)
		exp := now().Add(time.Hour)
		code, at := randomHash(), randomHash()
		must(t, s.SaveCode(bg, code, sampleCode("grant-x", exp)), "SaveCode")
		c, err := s.ConsumeCode(bg, code)
		must(t, err, "ConsumeCode")
		must(t, s.SaveAccessToken(bg, at, sampleAccess(c.GrantID, exp)), "SaveAccessToken")
		c, err = s.ConsumeCode(bg, code)
		wantErr(t, err, store.ErrConsumed, "second ConsumeCode")
		must(t, s.RevokeGrant(bg, c.GrantID, exp), "RevokeGrant")
		_, err = s.GetAccessToken(bg, at)
		wantErr(t, err, store.ErrRevoked, "token issued from a replayed code")
	})
}
