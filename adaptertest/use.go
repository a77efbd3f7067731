package adaptertest

import (
	"context"
	"fmt"
	"testing"
	"time"

	"github.com/dpopkit/dpop"
	"github.com/dpopkit/dpop/store"
)

// The resource's one step of an access token lookup and the replay entry
// of the proof sent with it (RFC 9449 §7.1, §11.1) is store.AccessTokenUser,
// which a store may leave out: the middleware then looks the token up and
// records the proof apart. The Use group checks a store that implements it
// and has no subtests for one that does not.

// watchedUser is the store.AccessTokenUser of a watched store, its calls
// bounded by the same watchdog.
type watchedUser struct {
	t *testing.T
	u store.AccessTokenUser
}

// usage is what UseAccessToken returns.
type usage struct {
	t        *store.AccessToken
	inserted bool
}

// UseAccessToken calls the store's within CallTimeout.
func (w *watchedUser) UseAccessToken(ctx context.Context, h store.TokenHash, jkt string, k dpop.ReplayKey, ttl time.Duration) (*store.AccessToken, bool, error) {
	w.t.Helper()
	u, err := bounded(w.t, "UseAccessToken", func() (usage, error) {
		t, ok, err := w.u.UseAccessToken(ctx, h, jkt, k, ttl)
		return usage{t, ok}, err
	})
	return u.t, u.inserted, err
}

// userOf returns the store.AccessTokenUser of a store opened by open,
// behind the same watchdog, or false when the store does not implement it.
func userOf(t *testing.T, s store.Store) (store.AccessTokenUser, bool) {
	if w, ok := s.(*watched); ok {
		s = w.s
	}
	u, ok := s.(store.AccessTokenUser)
	if !ok {
		return nil, false
	}
	return &watchedUser{t: t, u: u}, true
}

func testUse(t *testing.T, newStore NewStore) {
	// Whether the store implements the interface is a property of its
	// type: a probe store answers for every subtest.
	if _, ok := userOf(t, open(t, newStore)); !ok {
		t.Log("the store does not implement store.AccessTokenUser: no subtests")
		return
	}
	openUser := func(t *testing.T) (store.Store, store.AccessTokenUser) {
		t.Helper()
		s := open(t, newStore)
		u, _ := userOf(t, s)
		return s, u
	}
	bound := func(jkt string, exp time.Time) *store.AccessToken {
		a := sampleAccess("grant-use", exp)
		a.JKT = jkt
		return a
	}
	t.Run("LookupAndRecord", func(t *testing.T) {
		s, u := openUser(t)
		exp := now().Add(time.Hour)
		h, k := randomHash(), dpop.NewReplayKey("jkt-a", "use-1")
		must(t, s.SaveAccessToken(bg, h, bound("jkt-a", exp)), "SaveAccessToken")
		got, ok, err := u.UseAccessToken(bg, h, "jkt-a", k, time.Minute)
		must(t, err, "UseAccessToken")
		if !ok {
			t.Fatal("the first proof sent with a live bound token was not recorded")
		}
		same(t, got, bound("jkt-a", exp), "token read by UseAccessToken")
		got.Audience[0] = "changed by the caller"
		for range 2 {
			got, ok, err = u.UseAccessToken(bg, h, "jkt-a", k, time.Minute)
			must(t, err, "UseAccessToken again")
			if ok {
				t.Fatal("the same proof was recorded twice: a replay would pass")
			}
			same(t, got, bound("jkt-a", exp), "token read with a replayed proof")
		}
		_, ok, err = u.UseAccessToken(bg, h, "jkt-a", dpop.NewReplayKey("jkt-a", "use-2"), time.Minute)
		must(t, err, "UseAccessToken with another proof")
		if !ok {
			t.Fatal("another proof was refused")
		}
	})
	t.Run("OtherKeyRecordsNothing", func(t *testing.T) {
		s, u := openUser(t)
		exp := now().Add(time.Hour)
		h, k := randomHash(), dpop.NewReplayKey("jkt-b", "use-3")
		must(t, s.SaveAccessToken(bg, h, bound("jkt-a", exp)), "SaveAccessToken")
		got, ok, err := u.UseAccessToken(bg, h, "jkt-b", k, time.Minute)
		must(t, err, "UseAccessToken with another key")
		if ok {
			t.Fatal("a proof of a key the token is not bound to was recorded")
		}
		same(t, got, bound("jkt-a", exp), "token read with another key")
		// Other members that spell the binding of another key bind nothing.
		spoof := bound("jkt-a", exp)
		spoof.Subject, spoof.Scope = `x","jkt":"jkt-b`, `"jkt":"jkt-b"`
		spoof.Audience = append(spoof.Audience, `{"jkt":"jkt-b"}`)
		hs := randomHash()
		must(t, s.SaveAccessToken(bg, hs, spoof), "SaveAccessToken")
		if _, ok, err := u.UseAccessToken(bg, hs, "jkt-b", k, time.Minute); err != nil || ok {
			t.Fatalf("UseAccessToken with a key named only in other members = %v, %v; want nothing recorded", ok, err)
		}
		// Nothing was recorded: the entry is still free for the token's key.
		h2 := randomHash()
		must(t, s.SaveAccessToken(bg, h2, bound("jkt-b", exp)), "SaveAccessToken")
		if _, ok, err := u.UseAccessToken(bg, h2, "jkt-b", k, time.Minute); err != nil || !ok {
			t.Fatalf("the entry a refused call left free: %v, %v", ok, err)
		}
	})
	t.Run("NotLiveRecordsNothing", func(t *testing.T) {
		s, u := openUser(t)
		exp := now().Add(time.Hour)
		expired, revokedToken, revokedGrant, unknown := randomHash(), randomHash(), randomHash(), randomHash()
		short := bound("jkt-a", now().Add(shortTTL))
		must(t, s.SaveAccessToken(bg, expired, short), "SaveAccessToken")
		must(t, s.SaveAccessToken(bg, revokedToken, bound("jkt-a", exp)), "SaveAccessToken")
		must(t, s.RevokeAccessToken(bg, revokedToken), "RevokeAccessToken")
		g := bound("jkt-a", exp)
		g.GrantID = "grant-use-revoked"
		must(t, s.SaveAccessToken(bg, revokedGrant, g), "SaveAccessToken")
		must(t, s.RevokeGrant(bg, g.GrantID, exp.Add(time.Hour)), "RevokeGrant")
		time.Sleep(waitExpiry)
		for i, c := range []struct {
			h    store.TokenHash
			want error
			what string
		}{
			{unknown, store.ErrNotFound, "unknown token"},
			{revokedToken, store.ErrNotFound, "revoked token"},
			{revokedGrant, store.ErrRevoked, "token of a revoked grant"},
			// ErrExpired, or ErrNotFound (which it wraps) once reclaimed.
			{expired, store.ErrNotFound, "expired token"},
		} {
			k := dpop.NewReplayKey("jkt-a", fmt.Sprintf("not-live-%d", i))
			got, ok, err := u.UseAccessToken(bg, c.h, "jkt-a", k, time.Minute)
			wantErr(t, err, c.want, "UseAccessToken of an "+c.what)
			if ok || got != nil {
				t.Fatalf("UseAccessToken of an %s = %+v, %v; want nothing recorded or returned", c.what, got, ok)
			}
			live := randomHash()
			must(t, s.SaveAccessToken(bg, live, bound("jkt-a", exp)), "SaveAccessToken")
			if _, ok, err := u.UseAccessToken(bg, live, "jkt-a", k, time.Minute); err != nil || !ok {
				t.Fatalf("the entry a call on an %s left free: %v, %v", c.what, ok, err)
			}
		}
	})
	t.Run("Concurrent", func(t *testing.T) {
		s, u := openUser(t)
		h := randomHash()
		must(t, s.SaveAccessToken(bg, h, bound("jkt-a", now().Add(time.Hour))), "SaveAccessToken")
		raceKeys(t, "uses", "jkt-a", func(k dpop.ReplayKey) (bool, error) {
			_, ok, err := u.UseAccessToken(bg, h, "jkt-a", k, time.Minute)
			return ok, err
		})
	})
	t.Run("Context", func(t *testing.T) {
		s, u := openUser(t)
		h := randomHash()
		must(t, s.SaveAccessToken(bg, h, bound("jkt-a", now().Add(time.Hour))), "SaveAccessToken")
		ctx, cancel := context.WithCancel(bg)
		cancel()
		k := dpop.NewReplayKey("jkt-a", "use-cancelled")
		if _, ok, err := u.UseAccessToken(ctx, h, "jkt-a", k, time.Minute); err == nil || ok {
			t.Fatalf("UseAccessToken with a cancelled context = %v, %v; want an error", ok, err)
		}
		if _, ok, err := u.UseAccessToken(bg, h, "jkt-a", k, time.Minute); err != nil || !ok {
			t.Fatalf("a cancelled call recorded its proof: %v, %v", ok, err)
		}
	})
}
