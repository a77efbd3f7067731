package adaptertest

import (
	"context"
	"errors"
	"fmt"
	"sync/atomic"
	"testing"
	"time"

	"github.com/dpopkit/dpop/store"
)

// Pushed authorization requests (RFC 9126) are a narrow interface of their
// own, store.PushedRequestStore, which a store may leave out: the handlers
// then turn pushed requests off. The PushedRequests group checks a store
// that implements it and, for one that does not, runs no subtest.

// pushedStore returns the store.PushedRequestStore of a store opened by
// open, behind the same watchdog, or false when the store under test does
// not implement it.
func pushedStore(s store.Store) (store.PushedRequestStore, bool) {
	w, ok := s.(*watched)
	if !ok {
		p, ok := s.(store.PushedRequestStore)
		return p, ok
	}
	p, ok := w.s.(store.PushedRequestStore)
	if !ok {
		return nil, false
	}
	return &watchedPushed{t: w.t, p: p}, true
}

// openPushed opens a store for the subtest, as open does, and returns its
// pushed requests too.
func openPushed(t *testing.T, newStore NewStore) (store.Store, store.PushedRequestStore) {
	t.Helper()
	s := open(t, newStore)
	p, ok := pushedStore(s)
	if !ok {
		t.Fatal("the constructor returned a store without store.PushedRequestStore, after one with it")
	}
	return s, p
}

// samplePushed is a pushed request of client with every field set; its
// parameters are form-encoded, with escapes and multi-byte characters.
func samplePushed(client string, exp time.Time) *store.PushedRequest {
	return &store.PushedRequest{
		ClientID: client,
		Params: "client_id=" + client + "&code_challenge=E9Melhoa2OwvFrEMTJguCHaoeK1t8URWbuGJSstw-cM&code_challenge_method=S256" +
			"&redirect_uri=https%3A%2F%2Fapp.example%2Fcallback%3Fa%3Db&resource=urn%3Aexample%3Ars&response_type=code" +
			"&scope=read+write+%C3%BCn%C3%AFcode&state=%22quoted%22+%26+%E2%9C%93",
		DPoPJKT:   "0ZcOCORZNYy-DWpqq30jZyJGHTN0d2HglBV3uiguA4I",
		ExpiresAt: exp,
	}
}

// withPushed opens a store for the subtest and saves a pushed request of
// client in it, under a fresh key and live for a minute.
func withPushed(t *testing.T, newStore NewStore, client string) (store.PushedRequestStore, store.TokenHash, time.Time) {
	t.Helper()
	_, p := openPushed(t, newStore)
	h, exp := randomHash(), now().Add(time.Minute)
	must(t, p.SavePushedRequest(bg, h, samplePushed(client, exp)), "SavePushedRequest")
	return p, h, exp
}

func testPushedRequests(t *testing.T, newStore NewStore) {
	if _, ok := pushedStore(open(t, newStore)); !ok {
		t.Log("the store does not implement store.PushedRequestStore (pushed authorization requests are off with it): nothing to check")
		return
	}
	t.Run("RoundTrip", func(t *testing.T) {
		p, h, exp := withPushed(t, newStore, unicodeID)
		got, err := p.GetPushedRequest(bg, h)
		must(t, err, "GetPushedRequest")
		same(t, got, samplePushed(unicodeID, exp), "pushed request")
		got, err = p.ConsumePushedRequest(bg, h)
		must(t, err, "ConsumePushedRequest")
		same(t, got, samplePushed(unicodeID, exp), "consumed pushed request")
		// Without a DPoP key, or parameters: empty strings stay empty.
		bare, hb := &store.PushedRequest{ClientID: "public", ExpiresAt: exp}, randomHash()
		must(t, p.SavePushedRequest(bg, hb, bare), "SavePushedRequest")
		got, err = p.GetPushedRequest(bg, hb)
		must(t, err, "GetPushedRequest")
		same(t, got, bare, "pushed request without dpop_jkt or parameters")
	})
	t.Run("GetDoesNotConsume", func(t *testing.T) {
		p, h, exp := withPushed(t, newStore, "client-peek")
		for range 3 {
			got, err := p.GetPushedRequest(bg, h)
			must(t, err, "GetPushedRequest (the user loads the page again)")
			same(t, got, samplePushed("client-peek", exp), "pushed request from GetPushedRequest")
		}
		got, err := p.ConsumePushedRequest(bg, h)
		must(t, err, "ConsumePushedRequest after GetPushedRequest (GetPushedRequest must not consume it)")
		same(t, got, samplePushed("client-peek", exp), "pushed request consumed after lookups")
		// Lookups racing with the consumption take nothing from it either.
		for round := range raceRounds {
			h := randomHash()
			must(t, p.SavePushedRequest(bg, h, samplePushed("client-peek", exp)), "SavePushedRequest")
			wins := race(t, func(i int) error {
				if i > 0 {
					_, err := p.GetPushedRequest(bg, h)
					if err == nil {
						return errPeeked
					}
					return err
				}
				_, err := p.ConsumePushedRequest(bg, h)
				return err
			}, store.ErrConsumed, errPeeked)
			if wins != 1 {
				t.Fatalf("round %d of %d: ConsumePushedRequest racing with %d GetPushedRequest calls did not consume the request", round+1, raceRounds, racers-1)
			}
		}
	})
	t.Run("ConsumeOnce", func(t *testing.T) {
		p, h, exp := withPushed(t, newStore, "client-once")
		_, err := p.ConsumePushedRequest(bg, h)
		must(t, err, "first ConsumePushedRequest")
		for i := range 2 {
			got, err := p.ConsumePushedRequest(bg, h)
			wantErr(t, err, store.ErrConsumed, fmt.Sprintf("ConsumePushedRequest %d of a consumed request", i+2))
			if got == nil {
				t.Fatal("ConsumePushedRequest of a consumed request returned no record")
			}
			same(t, got, samplePushed("client-once", exp), "consumed request from ConsumePushedRequest")
			got, err = p.GetPushedRequest(bg, h)
			wantErr(t, err, store.ErrConsumed, "GetPushedRequest of a consumed request")
			if got == nil {
				t.Fatal("GetPushedRequest of a consumed request returned no record")
			}
			same(t, got, samplePushed("client-once", exp), "consumed request from GetPushedRequest")
		}
	})
	t.Run("ConcurrentConsume", func(t *testing.T) {
		_, p := openPushed(t, newStore)
		for round := range raceRounds {
			h, client := randomHash(), fmt.Sprintf("client-race-%d", round)
			must(t, p.SavePushedRequest(bg, h, samplePushed(client, now().Add(time.Minute))), "SavePushedRequest")
			var records atomic.Int32
			wins := race(t, func(int) error {
				r, err := p.ConsumePushedRequest(bg, h)
				if r != nil && r.ClientID == client {
					records.Add(1)
				}
				return err
			}, store.ErrConsumed)
			if wins != 1 || records.Load() != racers {
				t.Fatalf("round %d of %d: %d of %d concurrent consumers won and %d got the record, want exactly 1 and all",
					round+1, raceRounds, wins, racers, records.Load())
			}
		}
	})
	t.Run("NotFound", func(t *testing.T) {
		s, p := openPushed(t, newStore)
		must(t, p.SavePushedRequest(bg, randomHash(), samplePushed("c", now().Add(time.Minute))), "SavePushedRequest")
		_, err := p.GetPushedRequest(bg, randomHash())
		wantErr(t, err, store.ErrNotFound, "GetPushedRequest of an unknown request")
		_, err = p.ConsumePushedRequest(bg, randomHash())
		wantErr(t, err, store.ErrNotFound, "ConsumePushedRequest of an unknown request")
		// Codes and pushed requests are apart, even under one hash.
		h := randomHash()
		must(t, s.SaveCode(bg, h, sampleCode("g", now().Add(time.Minute))), "SaveCode")
		_, err = p.GetPushedRequest(bg, h)
		wantErr(t, err, store.ErrNotFound, "GetPushedRequest under the hash of a code")
		hp := randomHash()
		must(t, p.SavePushedRequest(bg, hp, samplePushed("c", now().Add(time.Minute))), "SavePushedRequest")
		_, err = s.GetCode(bg, hp)
		wantErr(t, err, store.ErrNotFound, "GetCode under the hash of a pushed request")
		_, err = p.ConsumePushedRequest(bg, h)
		wantErr(t, err, store.ErrNotFound, "ConsumePushedRequest under the hash of a code")
		_, err = s.ConsumeCode(bg, h)
		must(t, err, "ConsumeCode of a code after pushed-request lookups under its hash")
	})
	t.Run("SavedExpired", func(t *testing.T) {
		_, p := openPushed(t, newStore)
		h := randomHash()
		must(t, p.SavePushedRequest(bg, h, samplePushed("c", now().Add(-time.Second))), "SavePushedRequest")
		_, err := p.GetPushedRequest(bg, h)
		wantErr(t, err, store.ErrNotFound, "GetPushedRequest of a request saved already expired")
		_, err = p.ConsumePushedRequest(bg, h)
		wantErr(t, err, store.ErrNotFound, "ConsumePushedRequest of a request saved already expired")
	})
	t.Run("Copies", func(t *testing.T) {
		_, p := openPushed(t, newStore)
		h, exp := randomHash(), now().Add(time.Minute)
		r := samplePushed("client-copy", exp)
		must(t, p.SavePushedRequest(bg, h, r), "SavePushedRequest")
		r.Params, r.DPoPJKT, r.ClientID = "response_type=token", "attacker-key", "evil"
		got, err := p.GetPushedRequest(bg, h)
		must(t, err, "GetPushedRequest")
		same(t, got, samplePushed("client-copy", exp), "pushed request after the caller changed its copy")
		got.Params, got.ExpiresAt = "scope=admin", exp.Add(time.Hour)
		got, err = p.ConsumePushedRequest(bg, h)
		must(t, err, "ConsumePushedRequest")
		same(t, got, samplePushed("client-copy", exp), "pushed request after a reader changed its copy")
		got.DPoPJKT = "attacker-key"
		got, err = p.GetPushedRequest(bg, h)
		wantErr(t, err, store.ErrConsumed, "GetPushedRequest of the consumed request")
		same(t, got, samplePushed("client-copy", exp), "consumed request after its consumer changed its copy")
	})
	t.Run("OddKeys", func(t *testing.T) {
		_, p := openPushed(t, newStore)
		exp := now().Add(time.Minute)
		keys := oddHashes()
		client := func(i int) string { return "odd-" + string(rune('a'+i)) }
		for i, h := range keys {
			must(t, p.SavePushedRequest(bg, h, samplePushed(client(i), exp)), "SavePushedRequest")
		}
		for i, h := range keys {
			got, err := p.GetPushedRequest(bg, h)
			must(t, err, "GetPushedRequest of an odd key")
			same(t, got, samplePushed(client(i), exp), "odd key")
		}
		// Consuming one leaves its neighbour, one bit away, live.
		got, err := p.ConsumePushedRequest(bg, keys[2])
		must(t, err, "ConsumePushedRequest of an odd key")
		same(t, got, samplePushed(client(2), exp), "odd key consumed")
		_, err = p.GetPushedRequest(bg, keys[2])
		wantErr(t, err, store.ErrConsumed, "GetPushedRequest of a consumed odd key")
		got, err = p.ConsumePushedRequest(bg, keys[3])
		must(t, err, "ConsumePushedRequest of the neighbouring key")
		same(t, got, samplePushed(client(3), exp), "neighbouring key")
	})
	t.Run("Context", func(t *testing.T) {
		_, p := openPushed(t, newStore)
		h, fresh, exp := randomHash(), randomHash(), now().Add(time.Hour)
		must(t, p.SavePushedRequest(bg, h, samplePushed("c", exp)), "SavePushedRequest")
		ctx, cancel := context.WithCancel(bg)
		cancel()
		calls := map[string]func() error{
			"SavePushedRequest":    func() error { return p.SavePushedRequest(ctx, fresh, samplePushed("c", exp)) },
			"GetPushedRequest":     func() error { _, err := p.GetPushedRequest(ctx, h); return err },
			"ConsumePushedRequest": func() error { _, err := p.ConsumePushedRequest(ctx, h); return err },
		}
		for name, call := range calls {
			if err := call(); !errors.Is(err, context.Canceled) {
				t.Errorf("%s with a cancelled context: error %v, want context.Canceled", name, err)
			}
		}
		_, err := p.ConsumePushedRequest(bg, h)
		must(t, err, "ConsumePushedRequest after a cancelled ConsumePushedRequest")
		_, err = p.GetPushedRequest(bg, fresh)
		wantErr(t, err, store.ErrNotFound, "pushed request saved with a cancelled context")
	})
}

// expiryPushed is the pushed requests' subtest of the Expiry group: a live
// and a consumed request are gone once their expiry has passed. It checks
// nothing of a store without pushed requests.
func expiryPushed(t *testing.T, s store.Store) {
	p, ok := pushedStore(s)
	if !ok {
		t.Log("the store does not implement store.PushedRequestStore: nothing to check")
		return
	}
	h, used := randomHash(), randomHash()
	must(t, p.SavePushedRequest(bg, h, samplePushed("c", now().Add(shortTTL))), "SavePushedRequest")
	must(t, p.SavePushedRequest(bg, used, samplePushed("c", now().Add(shortTTL))), "SavePushedRequest")
	_, err := p.ConsumePushedRequest(bg, used)
	must(t, err, "ConsumePushedRequest before expiry")
	_, err = p.GetPushedRequest(bg, h)
	must(t, err, "GetPushedRequest before expiry")
	time.Sleep(waitExpiry)
	_, err = p.GetPushedRequest(bg, h)
	wantErr(t, err, store.ErrNotFound, "GetPushedRequest of an expired request")
	_, err = p.ConsumePushedRequest(bg, h)
	wantErr(t, err, store.ErrNotFound, "ConsumePushedRequest of an expired request")
	_, err = p.GetPushedRequest(bg, used)
	wantErr(t, err, store.ErrNotFound, "GetPushedRequest of an expired, consumed request")
	_, err = p.ConsumePushedRequest(bg, used)
	wantErr(t, err, store.ErrNotFound, "ConsumePushedRequest of an expired, consumed request")
}

// watchedPushed puts the watchdog of watched on a store's pushed requests.
type watchedPushed struct {
	t *testing.T
	p store.PushedRequestStore
}

// SavePushedRequest implements store.PushedRequestStore.
func (w *watchedPushed) SavePushedRequest(ctx context.Context, h store.TokenHash, r *store.PushedRequest) error {
	w.t.Helper()
	return boundedErr(w.t, "SavePushedRequest", func() error { return w.p.SavePushedRequest(ctx, h, r) })
}

// GetPushedRequest implements store.PushedRequestStore.
func (w *watchedPushed) GetPushedRequest(ctx context.Context, h store.TokenHash) (*store.PushedRequest, error) {
	w.t.Helper()
	return bounded(w.t, "GetPushedRequest", func() (*store.PushedRequest, error) { return w.p.GetPushedRequest(ctx, h) })
}

// ConsumePushedRequest implements store.PushedRequestStore.
func (w *watchedPushed) ConsumePushedRequest(ctx context.Context, h store.TokenHash) (*store.PushedRequest, error) {
	w.t.Helper()
	return bounded(w.t, "ConsumePushedRequest", func() (*store.PushedRequest, error) { return w.p.ConsumePushedRequest(ctx, h) })
}
