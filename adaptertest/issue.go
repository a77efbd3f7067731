package adaptertest

import (
	"context"
	"errors"
	"fmt"
	"sync/atomic"
	"testing"
	"time"

	"github.com/dpopkit/dpop"
	"github.com/dpopkit/dpop/store"
)

// The token endpoint's one step of a proof's replay entry and the access
// token issued for it (RFC 9449 §11.1, §6) is store.AccessTokenIssuer, which
// a store may leave out: the handlers then make the two calls apart. The
// Issue group checks a store that implements it and, for one that does
// not, runs no subtest.

// watchedIssuer is the store.AccessTokenIssuer of a watched store, its
// calls bounded by the same watchdog.
type watchedIssuer struct {
	t *testing.T
	i store.AccessTokenIssuer
}

// InsertAndSaveAccessToken calls the store's within CallTimeout.
func (w *watchedIssuer) InsertAndSaveAccessToken(ctx context.Context, k dpop.ReplayKey, ttl time.Duration, h store.TokenHash, t *store.AccessToken) (bool, error) {
	w.t.Helper()
	return bounded(w.t, "InsertAndSaveAccessToken", func() (bool, error) {
		return w.i.InsertAndSaveAccessToken(ctx, k, ttl, h, t)
	})
}

// issuerOf returns the store.AccessTokenIssuer of a store opened by open,
// behind the same watchdog, or false when the store does not implement it.
func issuerOf(s store.Store) (store.AccessTokenIssuer, bool) {
	inner, w := s, (*watched)(nil)
	if ws, ok := s.(*watched); ok {
		inner, w = ws.s, ws
	}
	i, ok := inner.(store.AccessTokenIssuer)
	if !ok || w == nil {
		return i, ok
	}
	return &watchedIssuer{t: w.t, i: i}, true
}

func testIssue(t *testing.T, newStore NewStore) {
	// Whether the store implements the interface is a property of its
	// type: a probe store answers for every subtest, and a store without
	// it gets none (CI refuses skipped tests).
	if _, ok := issuerOf(open(t, newStore)); !ok {
		t.Log("the store does not implement store.AccessTokenIssuer: no subtests")
		return
	}
	openIssuer := func(t *testing.T) (store.Store, store.AccessTokenIssuer) {
		t.Helper()
		s := open(t, newStore)
		i, _ := issuerOf(s)
		return s, i
	}
	t.Run("InsertAndSave", func(t *testing.T) {
		s, i := openIssuer(t)
		k, exp := dpop.NewReplayKey("jkt", "issue-1"), now().Add(time.Hour)
		h := randomHash()
		ok, err := i.InsertAndSaveAccessToken(bg, k, time.Minute, h, sampleAccess("g", exp))
		must(t, err, "InsertAndSaveAccessToken")
		if !ok {
			t.Fatal("first InsertAndSaveAccessToken of a key reported a replay")
		}
		got, err := s.GetAccessToken(bg, h)
		must(t, err, "GetAccessToken")
		same(t, got, sampleAccess("g", exp), "token saved with its replay entry")
		// The entry is the replay cache's: Insert finds it.
		ok, err = s.Insert(bg, k, time.Minute)
		must(t, err, "Insert")
		if ok {
			t.Fatal("Insert accepted a key InsertAndSaveAccessToken recorded")
		}
	})
	t.Run("Replayed", func(t *testing.T) {
		s, i := openIssuer(t)
		k, exp := dpop.NewReplayKey("jkt", "issue-2"), now().Add(time.Hour)
		ok, err := s.Insert(bg, k, time.Minute)
		must(t, err, "Insert")
		if !ok {
			t.Fatal("first Insert refused")
		}
		for range 2 {
			h := randomHash()
			ok, err = i.InsertAndSaveAccessToken(bg, k, time.Minute, h, sampleAccess("g", exp))
			must(t, err, "InsertAndSaveAccessToken of a recorded key")
			if ok {
				t.Fatal("InsertAndSaveAccessToken accepted a recorded key: a replayed proof would get a token")
			}
			_, err = s.GetAccessToken(bg, h)
			wantErr(t, err, store.ErrNotFound, "GetAccessToken of the token of a replayed key")
		}
	})
	t.Run("Concurrent", func(t *testing.T) {
		s, i := openIssuer(t)
		exp := now().Add(time.Hour)
		for round := range raceRounds {
			k := dpop.NewReplayKey("jkt", fmt.Sprintf("issue-contended-%d", round))
			var hashes [racers]store.TokenHash
			var won atomic.Int64
			won.Store(-1)
			wins := race(t, func(n int) error {
				hashes[n] = randomHash()
				ok, err := i.InsertAndSaveAccessToken(bg, k, time.Minute, hashes[n], sampleAccess("g", exp))
				if err == nil && !ok {
					return errReplayed
				}
				if err == nil {
					won.Store(int64(n))
				}
				return err
			}, errReplayed)
			if wins != 1 {
				t.Fatalf("round %d of %d: %d of %d concurrent calls with one key succeeded, want exactly 1", round+1, raceRounds, wins, racers)
			}
			for n, h := range hashes {
				_, err := s.GetAccessToken(bg, h)
				if int64(n) == won.Load() {
					must(t, err, "GetAccessToken of the winner's token")
				} else {
					wantErr(t, err, store.ErrNotFound, "GetAccessToken of a loser's token")
				}
			}
		}
	})
	t.Run("Cancelled", func(t *testing.T) {
		s, i := openIssuer(t)
		ctx, cancel := context.WithCancel(bg)
		cancel()
		k, h := dpop.NewReplayKey("jkt", "issue-cancelled"), randomHash()
		_, err := i.InsertAndSaveAccessToken(ctx, k, time.Minute, h, sampleAccess("g", now().Add(time.Hour)))
		if err == nil {
			t.Fatal("InsertAndSaveAccessToken with a cancelled context succeeded")
		}
		if !errors.Is(err, context.Canceled) {
			t.Errorf("InsertAndSaveAccessToken with a cancelled context: %v, want an error wrapping context.Canceled", err)
		}
		_, err = s.GetAccessToken(bg, h)
		wantErr(t, err, store.ErrNotFound, "GetAccessToken after a cancelled InsertAndSaveAccessToken")
		ok, err := s.Insert(bg, k, time.Minute)
		must(t, err, "Insert after a cancelled InsertAndSaveAccessToken")
		if !ok {
			t.Fatal("a cancelled InsertAndSaveAccessToken recorded its key")
		}
	})
	t.Run("Expiry", func(t *testing.T) {
		t.Parallel()
		s, i := openIssuer(t)
		k, h := dpop.NewReplayKey("jkt", "issue-expiry"), randomHash()
		ok, err := i.InsertAndSaveAccessToken(bg, k, shortTTL, h, sampleAccess("g", now().Add(shortTTL)))
		must(t, err, "InsertAndSaveAccessToken")
		if !ok {
			t.Fatal("first InsertAndSaveAccessToken refused")
		}
		_, err = s.GetAccessToken(bg, h)
		must(t, err, "GetAccessToken before expiry")
		time.Sleep(waitExpiry)
		_, err = s.GetAccessToken(bg, h)
		wantErr(t, err, store.ErrNotFound, "GetAccessToken of an expired token")
		// The entry expired with its ttl: the key is new again.
		h2, exp := randomHash(), now().Add(time.Hour)
		ok, err = i.InsertAndSaveAccessToken(bg, k, time.Minute, h2, sampleAccess("g", exp))
		must(t, err, "InsertAndSaveAccessToken after expiry")
		if !ok {
			t.Fatal("an expired replay entry still refuses its key")
		}
		got, err := s.GetAccessToken(bg, h2)
		must(t, err, "GetAccessToken after expiry")
		same(t, got, sampleAccess("g", exp), "token saved after the entry expired")
	})
}
