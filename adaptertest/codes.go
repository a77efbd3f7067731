package adaptertest

import (
	"sync/atomic"
	"testing"
	"time"

	"github.com/dpopkit/dpop/store"
)

func testCodes(t *testing.T, newStore NewStore) {
	t.Run("RoundTrip", func(t *testing.T) {
		s := open(t, newStore)
		h, exp := randomHash(), now().Add(time.Minute)
		must(t, s.SaveCode(bg, h, sampleCode("grant-1", exp)), "SaveCode")
		got, err := s.ConsumeCode(bg, h)
		must(t, err, "ConsumeCode")
		same(t, got, sampleCode("grant-1", exp), "code")
	})
	t.Run("ConsumeOnce", func(t *testing.T) {
		s := open(t, newStore)
		h, exp := randomHash(), now().Add(time.Minute)
		must(t, s.SaveCode(bg, h, sampleCode("grant-2", exp)), "SaveCode")
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
		h := randomHash()
		must(t, s.SaveCode(bg, h, sampleCode("grant-3", now().Add(time.Minute))), "SaveCode")
		var records atomic.Int32
		wins := race(t, func(int) error {
			c, err := s.ConsumeCode(bg, h)
			if err == nil && c != nil && c.GrantID == "grant-3" {
				records.Add(1)
			}
			return err
		}, store.ErrConsumed)
		if wins != 1 || records.Load() != 1 {
			t.Fatalf("%d of %d concurrent consumers won (%d got the record), want exactly 1", wins, racers, records.Load())
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
		exp := now().Add(time.Minute)
		keys := oddHashes()
		for i, h := range keys {
			must(t, s.SaveCode(bg, h, sampleCode("odd-"+string(rune('a'+i)), exp)), "SaveCode")
		}
		for i, h := range keys {
			got, err := s.ConsumeCode(bg, h)
			must(t, err, "ConsumeCode of an odd key")
			same(t, got, sampleCode("odd-"+string(rune('a'+i)), exp), "odd key")
		}
	})
	t.Run("SavedExpired", func(t *testing.T) {
		s := open(t, newStore)
		h := randomHash()
		must(t, s.SaveCode(bg, h, sampleCode("g", now().Add(-time.Second))), "SaveCode")
		_, err := s.ConsumeCode(bg, h)
		wantErr(t, err, store.ErrNotFound, "ConsumeCode of a code saved already expired")
	})
}
