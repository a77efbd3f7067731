package adaptertest

import (
	"context"
	"fmt"
	"sync/atomic"
	"testing"
	"time"

	"github.com/dpopkit/dpop/store"
)

func testCodes(t *testing.T, newStore NewStore) {
	t.Run("RoundTrip", func(t *testing.T) {
		s, h, exp := withCode(t, newStore, "grant-1")
		got, err := s.ConsumeCode(bg, h)
		must(t, err, "ConsumeCode")
		same(t, got, sampleCode("grant-1", exp), "code")
	})
	t.Run("NoResources", func(t *testing.T) {
		// A code without resource indicators stays without: a store may
		// answer nil or an empty list, but not a list of one empty string.
		s := open(t, newStore)
		h, exp := randomHash(), now().Add(time.Minute)
		c := sampleCode("grant-none", exp)
		c.Resources = nil
		must(t, s.SaveCode(bg, h, c), "SaveCode")
		got, err := s.GetCode(bg, h)
		must(t, err, "GetCode")
		same(t, got, c, "code without resources")
		got, err = s.ConsumeCode(bg, h)
		must(t, err, "ConsumeCode")
		same(t, got, c, "code without resources, consumed")
	})
	t.Run("Copies", func(t *testing.T) {
		s := open(t, newStore)
		h, exp := randomHash(), now().Add(time.Minute)
		c := sampleCode("grant-copy", exp)
		must(t, s.SaveCode(bg, h, c), "SaveCode")
		c.Resources[0] = "https://evil.example/"
		got, err := s.GetCode(bg, h)
		must(t, err, "GetCode")
		same(t, got, sampleCode("grant-copy", exp), "code after the caller changed its copy")
		got.Resources[1] = "https://evil.example/"
		got, err = s.ConsumeCode(bg, h)
		must(t, err, "ConsumeCode")
		same(t, got, sampleCode("grant-copy", exp), "code after a reader changed its copy")
		got.Resources[0] = "https://evil.example/"
		got, err = s.GetCode(bg, h)
		wantErr(t, err, store.ErrConsumed, "GetCode of the redeemed code")
		same(t, got, sampleCode("grant-copy", exp), "redeemed code after its redeemer changed its copy")
	})
	t.Run("ConsumeOnce", func(t *testing.T) {
		s, h, _ := withCode(t, newStore, "grant-2")
		_, err := s.ConsumeCode(bg, h)
		must(t, err, "first ConsumeCode")
		for i := range 2 {
			got, err := s.ConsumeCode(bg, h)
			wantErr(t, err, store.ErrConsumed, "ConsumeCode again")
			// The record comes back, so that the caller can revoke its grant.
			if got == nil || got.GrantID != "grant-2" {
				t.Fatalf("consume %d of a used code returned %+v, want the record", i+2, got)
			}
		}
	})
	t.Run("ConcurrentConsume", func(t *testing.T) {
		s := open(t, newStore)
		for round := range raceRounds {
			h, grant := randomHash(), fmt.Sprintf("grant-3-%d", round)
			must(t, s.SaveCode(bg, h, sampleCode(grant, now().Add(time.Minute))), "SaveCode")
			var records atomic.Int32
			wins := race(t, func(int) error {
				c, err := s.ConsumeCode(bg, h)
				if c != nil && c.GrantID == grant {
					records.Add(1)
				}
				return err
			}, store.ErrConsumed)
			// Every caller gets the record: the winner to issue tokens,
			// the others to revoke the grant.
			if wins != 1 || records.Load() != racers {
				t.Fatalf("round %d of %d: %d of %d concurrent consumers won and %d got the record, want exactly 1 and all",
					round+1, raceRounds, wins, racers, records.Load())
			}
		}
	})
	t.Run("NotFound", func(t *testing.T) {
		s := open(t, newStore)
		must(t, s.SaveCode(bg, randomHash(), sampleCode("g", now().Add(time.Minute))), "SaveCode")
		_, err := s.ConsumeCode(bg, randomHash())
		wantErr(t, err, store.ErrNotFound, "ConsumeCode of an unknown code")
	})
	t.Run("OddKeys", func(t *testing.T) {
		s := open(t, newStore)
		oddCodes(t, s, "ConsumeCode", s.ConsumeCode)
	})
	t.Run("SavedExpired", func(t *testing.T) {
		s := open(t, newStore)
		h := randomHash()
		must(t, s.SaveCode(bg, h, sampleCode("g", now().Add(-time.Second))), "SaveCode")
		_, err := s.ConsumeCode(bg, h)
		wantErr(t, err, store.ErrNotFound, "ConsumeCode of a code saved already expired")
	})
	testGetCode(t, newStore)
}

// testGetCode checks the lookup the token endpoint makes before it redeems a
// code: it answers as ConsumeCode would, record included, and consumes
// nothing.
func testGetCode(t *testing.T, newStore NewStore) {
	t.Run("Get", func(t *testing.T) {
		s, h, exp := withCode(t, newStore, "grant-get")
		for range 3 {
			got, err := s.GetCode(bg, h)
			must(t, err, "GetCode of a live code")
			same(t, got, sampleCode("grant-get", exp), "code from GetCode")
		}
		_, err := s.GetCode(bg, randomHash())
		wantErr(t, err, store.ErrNotFound, "GetCode of an unknown code")
		past := randomHash()
		must(t, s.SaveCode(bg, past, sampleCode("g", now().Add(-time.Second))), "SaveCode")
		_, err = s.GetCode(bg, past)
		wantErr(t, err, store.ErrNotFound, "GetCode of a code saved already expired")
	})
	t.Run("GetDoesNotConsume", func(t *testing.T) {
		s, h, exp := withCode(t, newStore, "grant-peek")
		for range 3 {
			_, err := s.GetCode(bg, h)
			must(t, err, "GetCode")
		}
		got, err := s.ConsumeCode(bg, h)
		must(t, err, "ConsumeCode after GetCode (GetCode must not redeem the code)")
		same(t, got, sampleCode("grant-peek", exp), "code redeemed after GetCode")
		// Lookups racing with the redemption take nothing from it either.
		for round := range raceRounds {
			h := randomHash()
			must(t, s.SaveCode(bg, h, sampleCode("grant-peek", exp)), "SaveCode")
			wins := race(t, func(i int) error {
				if i > 0 {
					_, err := s.GetCode(bg, h)
					if err == nil {
						return errPeeked
					}
					return err
				}
				_, err := s.ConsumeCode(bg, h)
				return err
			}, store.ErrConsumed, errPeeked)
			if wins != 1 {
				t.Fatalf("round %d of %d: ConsumeCode racing with %d GetCode calls did not redeem the code", round+1, raceRounds, racers-1)
			}
		}
	})
	t.Run("GetConsumed", func(t *testing.T) {
		s, h, exp := withCode(t, newStore, "grant-used")
		_, err := s.ConsumeCode(bg, h)
		must(t, err, "ConsumeCode")
		for range 2 {
			got, err := s.GetCode(bg, h)
			wantErr(t, err, store.ErrConsumed, "GetCode of a redeemed code")
			// The record comes back, so that the caller can revoke its
			// grant (RFC 6749 §4.1.2).
			if got == nil {
				t.Fatal("GetCode of a redeemed code returned no record: its grant could not be revoked")
			}
			same(t, got, sampleCode("grant-used", exp), "redeemed code from GetCode")
		}
		_, err = s.ConsumeCode(bg, h)
		wantErr(t, err, store.ErrConsumed, "ConsumeCode after GetCode of a redeemed code")
	})
	t.Run("GetOddKeys", func(t *testing.T) {
		s := open(t, newStore)
		keys, exp := oddCodes(t, s, "GetCode", s.GetCode)
		// Redeeming one leaves its neighbour, one bit away, live.
		_, err := s.ConsumeCode(bg, keys[2])
		must(t, err, "ConsumeCode of an odd key")
		_, err = s.GetCode(bg, keys[2])
		wantErr(t, err, store.ErrConsumed, "GetCode of a redeemed odd key")
		got, err := s.GetCode(bg, keys[3])
		must(t, err, "GetCode of the neighbouring key")
		same(t, got, sampleCode("odd-d", exp), "neighbouring key")
	})
}

// oddCodes saves a code of a grant of its own under each of oddHashes and
// checks that lookup (ConsumeCode or GetCode, named name) answers each
// with its own record. It returns the keys and the codes' expiry.
func oddCodes(t *testing.T, s store.CodeStore, name string, lookup func(context.Context, store.TokenHash) (*store.AuthorizationCode, error)) ([]store.TokenHash, time.Time) {
	t.Helper()
	exp := now().Add(time.Minute)
	keys := oddHashes()
	for i, h := range keys {
		must(t, s.SaveCode(bg, h, sampleCode("odd-"+string(rune('a'+i)), exp)), "SaveCode")
	}
	for i, h := range keys {
		got, err := lookup(bg, h)
		must(t, err, name+" of an odd key")
		same(t, got, sampleCode("odd-"+string(rune('a'+i)), exp), "odd key")
	}
	return keys, exp
}

// withCode opens a store for the subtest and saves a code of grant in it,
// under a fresh key and live for a minute; it returns the store, the key and
// the code's expiry.
func withCode(t *testing.T, newStore NewStore, grant string) (store.Store, store.TokenHash, time.Time) {
	t.Helper()
	s := open(t, newStore)
	h, exp := randomHash(), now().Add(time.Minute)
	must(t, s.SaveCode(bg, h, sampleCode(grant, exp)), "SaveCode")
	return s, h, exp
}
