package adaptertest

import (
	"errors"
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
		plain := sampleAccess("g", exp)
		plain.JKT = ""
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
		s := open(t, newStore)
		h, exp := randomHash(), now().Add(time.Hour)
		must(t, s.SaveRefreshToken(bg, h, sampleRefresh("g", exp)), "SaveRefreshToken")
		got, err := s.GetRefreshToken(bg, h)
		must(t, err, "GetRefreshToken")
		same(t, got, sampleRefresh("g", exp), "refresh token")
	})
	t.Run("Rotate", func(t *testing.T) {
		s := open(t, newStore)
		old, next, exp := randomHash(), randomHash(), now().Add(time.Hour)
		must(t, s.SaveRefreshToken(bg, old, sampleRefresh("g", exp)), "SaveRefreshToken")
		nextRec := sampleRefresh("g", exp.Add(time.Hour))
		nextRec.Scope = "read"
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
	t.Run("RotateTwice", func(t *testing.T) {
		s := open(t, newStore)
		old, exp := randomHash(), now().Add(time.Hour)
		must(t, s.SaveRefreshToken(bg, old, sampleRefresh("g", exp)), "SaveRefreshToken")
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
		old, exp := randomHash(), now().Add(time.Hour)
		must(t, s.SaveRefreshToken(bg, old, sampleRefresh("g", exp)), "SaveRefreshToken")
		next := make([]store.TokenHash, racers)
		for i := range next {
			next[i] = randomHash()
		}
		wins := race(t, func(i int) error {
			_, err := s.RotateRefreshToken(bg, old, next[i], sampleRefresh("g", exp))
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
		if wins != 1 || stored != 1 {
			t.Fatalf("%d of %d concurrent rotations won and %d new tokens exist, want 1 and 1", wins, racers, stored)
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
		s := open(t, newStore)
		h := randomHash()
		must(t, s.SaveRefreshToken(bg, h, sampleRefresh("g", now().Add(time.Hour))), "SaveRefreshToken")
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
