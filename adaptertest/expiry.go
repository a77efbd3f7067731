package adaptertest

import (
	"testing"
	"time"

	"github.com/dpopkit/dpop"
	"github.com/dpopkit/dpop/store"
)

// testExpiry saves records that live shortTTL, checks they are there, waits
// past their expiry and checks that no lookup returns them. The subtests run
// in parallel, so the suite waits about once.
func testExpiry(t *testing.T, newStore NewStore) {
	t.Run("Codes", func(t *testing.T) {
		t.Parallel()
		s := open(t, newStore)
		h, used := randomHash(), randomHash()
		must(t, s.SaveCode(bg, h, sampleCode("g", now().Add(shortTTL))), "SaveCode")
		must(t, s.SaveCode(bg, used, sampleCode("g", now().Add(shortTTL))), "SaveCode")
		_, err := s.ConsumeCode(bg, used)
		must(t, err, "ConsumeCode before expiry")
		time.Sleep(waitExpiry)
		_, err = s.ConsumeCode(bg, h)
		wantErr(t, err, store.ErrNotFound, "ConsumeCode of an expired code")
		_, err = s.ConsumeCode(bg, used)
		wantErr(t, err, store.ErrNotFound, "ConsumeCode of an expired, used code")
	})
	t.Run("AccessTokens", func(t *testing.T) {
		t.Parallel()
		s := open(t, newStore)
		h := randomHash()
		must(t, s.SaveAccessToken(bg, h, sampleAccess("g", now().Add(shortTTL))), "SaveAccessToken")
		_, err := s.GetAccessToken(bg, h)
		must(t, err, "GetAccessToken before expiry")
		time.Sleep(waitExpiry)
		_, err = s.GetAccessToken(bg, h)
		wantErr(t, err, store.ErrNotFound, "GetAccessToken of an expired token")
	})
	t.Run("RefreshTokens", func(t *testing.T) {
		t.Parallel()
		s := open(t, newStore)
		h, next := randomHash(), randomHash()
		must(t, s.SaveRefreshToken(bg, h, sampleRefresh("g", now().Add(shortTTL))), "SaveRefreshToken")
		_, err := s.GetRefreshToken(bg, h)
		must(t, err, "GetRefreshToken before expiry")
		time.Sleep(waitExpiry)
		_, err = s.GetRefreshToken(bg, h)
		wantErr(t, err, store.ErrNotFound, "GetRefreshToken of an expired token")
		_, err = s.RotateRefreshToken(bg, h, next, sampleRefresh("g", now().Add(time.Hour)))
		wantErr(t, err, store.ErrNotFound, "RotateRefreshToken of an expired token")
		_, err = s.GetRefreshToken(bg, next)
		wantErr(t, err, store.ErrNotFound, "token stored by a refused rotation")
	})
	t.Run("Replay", func(t *testing.T) {
		t.Parallel()
		s := open(t, newStore)
		k := dpop.NewReplayKey("jkt", "short")
		ok, err := s.Insert(bg, k, shortTTL)
		must(t, err, "Insert")
		if !ok {
			t.Fatal("first Insert refused")
		}
		if ok, err = s.Insert(bg, k, shortTTL); err != nil || ok {
			t.Fatalf("Insert before expiry: %v, %v; want a replay", ok, err)
		}
		time.Sleep(waitExpiry)
		ok, err = s.Insert(bg, k, shortTTL)
		must(t, err, "Insert after expiry")
		if !ok {
			t.Fatal("an expired replay entry still refuses its key")
		}
	})
}
