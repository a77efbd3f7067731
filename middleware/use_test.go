package middleware

import (
	"context"
	"net/http"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/dpopkit/dpop"
	"github.com/dpopkit/dpop/store"
)

// countingStore counts the store calls the middleware makes; its
// UseAccessToken is the memory store's two steps, uncounted.
type countingStore struct {
	*store.Memory
	gets, uses, inserts atomic.Int32
}

func (c *countingStore) GetAccessToken(ctx context.Context, h store.TokenHash) (*store.AccessToken, error) {
	c.gets.Add(1)
	return c.Memory.GetAccessToken(ctx, h)
}

func (c *countingStore) UseAccessToken(ctx context.Context, h store.TokenHash, jkt string, k dpop.ReplayKey, ttl time.Duration) (*store.AccessToken, bool, error) {
	c.uses.Add(1)
	return store.UseAccessTokenApart(ctx, c.Memory, h, jkt, k, ttl)
}

func (c *countingStore) Insert(ctx context.Context, k dpop.ReplayKey, ttl time.Duration) (bool, error) {
	c.inserts.Add(1)
	return c.Memory.Insert(ctx, k, ttl)
}

// newCountingRS is newRS with a counting store as the validator's store
// and, when replay is set, as the replay cache too.
func newCountingRS(t *testing.T, replay bool, edit func(*Options)) (*rs, *countingStore) {
	t.Helper()
	m, err := store.NewMemory(store.MemoryOptions{})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { m.Close() })
	cs := &countingStore{Memory: m}
	r := newRS(t, func(o *Options) {
		o.Validator = StoreValidator{Store: cs, OneRoundTrip: true}
		if replay {
			o.DPoP.ReplayCache = cs
		}
		if edit != nil {
			edit(o)
		}
	})
	r.store = m
	r.token = r.saveToken(r.signer.JKT(), "read write")
	return r, cs
}

// counts is what the store was asked: GetAccessToken, UseAccessToken and
// Insert calls.
func counts(cs *countingStore) [3]int32 {
	return [3]int32{cs.gets.Load(), cs.uses.Load(), cs.inserts.Load()}
}

// TestResourceOneRoundTrip: with a StoreValidator whose store is the replay
// cache and implements store.AccessTokenUser, a token's first request is
// looked up, then its proof recorded with UseAccessToken; later requests
// make only the UseAccessToken call, with the principal read by it. A
// replay is refused; a token revoked since is refused by that call (401
// invalid_token, nothing recorded) and forgotten, so that the next request
// is looked up again; a proof by another key is refused before the store
// is asked.
func TestResourceOneRoundTrip(t *testing.T) {
	var checked, refused atomic.Int32
	hooks := &dpop.Hooks{
		ProofChecked:    func(e dpop.ProofEvent) { checked.Add(1) },
		ResourceRefused: func(dpop.ResourceEvent) { refused.Add(1) },
	}
	r, cs := newCountingRS(t, true, func(o *Options) { o.Hooks = hooks })
	want := func(what string, c [3]int32) {
		t.Helper()
		if got := counts(cs); got != c {
			t.Fatalf("%s: store calls (get, use, insert) %v, want %v", what, got, c)
		}
	}
	ok := func(what string, h map[string][]string) {
		t.Helper()
		got := r.get(apiPath, h)
		if got.status != http.StatusOK || !strings.Contains(got.body, `"sub":"alice"`) || !strings.Contains(got.body, `"scope":"read write"`) {
			t.Fatalf("%s: %d %s", what, got.status, got.body)
		}
	}
	ok("first request", r.dpopHeaders(apiPath))
	want("first request", [3]int32{1, 1, 0})
	ok("second request", r.dpopHeaders(apiPath))
	h := r.dpopHeaders(apiPath)
	ok("third request", h)
	want("known token", [3]int32{1, 3, 0})
	if n := checked.Load(); n != 3 {
		t.Errorf("ProofChecked fired %d times for 3 proofs", n)
	}

	wantChallenge(t, r.get(apiPath, h), http.StatusUnauthorized, dpop.CodeInvalidProof)
	want("replay", [3]int32{1, 4, 0})

	other := newSigner(t)
	wantChallenge(t, r.get(apiPath, map[string][]string{"Authorization": {"DPoP " + r.token},
		"DPoP": {r.proof(other, "GET", apiPath, r.token, "")}}), http.StatusUnauthorized, dpop.CodeInvalidToken)
	want("a proof by another key", [3]int32{1, 4, 0})

	if err := r.store.RevokeAccessToken(bg, store.HashToken(r.token)); err != nil {
		t.Fatal(err)
	}
	before := checked.Load()
	wantChallenge(t, r.get(apiPath, r.dpopHeaders(apiPath)), http.StatusUnauthorized, dpop.CodeInvalidToken)
	want("revoked, known token", [3]int32{1, 5, 0})
	if checked.Load() != before {
		t.Error("ProofChecked fired for a proof neither accepted nor refused (its token was revoked)")
	}
	wantChallenge(t, r.get(apiPath, r.dpopHeaders(apiPath)), http.StatusUnauthorized, dpop.CodeInvalidToken)
	want("revoked token, forgotten", [3]int32{2, 5, 0})
	if n := refused.Load(); n != 4 {
		t.Errorf("ResourceRefused fired %d times for 4 refusals", n)
	}
	// Nothing was recorded for the revoked token's proofs: the entries are
	// free once a token is live again under that hash.
	if entries := r.store.ReplayEntries(); entries != 3 {
		t.Errorf("replay cache holds %d entries; want the 3 accepted proofs", entries)
	}
}

// TestResourceOneRoundTripOff: without OneRoundTrip, or with a store that
// is not the replay cache, every request is looked up, and the proofs go to
// the replay cache.
func TestResourceOneRoundTripOff(t *testing.T) {
	for name, c := range map[string]struct {
		replay bool
		edit   func(*Options)
	}{
		"another replay cache": {false, nil},
		"not asked for": {true, func(o *Options) {
			v := o.Validator.(StoreValidator)
			v.OneRoundTrip = false
			o.Validator = v
		}},
	} {
		t.Run(name, func(t *testing.T) {
			r, cs := newCountingRS(t, c.replay, c.edit)
			for i := range 3 {
				if got := r.get(apiPath, r.dpopHeaders(apiPath)); got.status != http.StatusOK {
					t.Fatalf("request %d: %d %s", i, got.status, got.body)
				}
			}
			want := [3]int32{3, 0, 0} // the proofs went to another cache
			if c.replay {
				want = [3]int32{3, 0, 3}
			}
			if got := counts(cs); got != want {
				t.Fatalf("store calls (get, use, insert) %v, want %v", got, want)
			}
		})
	}
}

// TestResourceOneRoundTripExpiry: a binding ends with its token: a request
// after the token's expiry is looked up again, and refused as expired.
func TestResourceOneRoundTripExpiry(t *testing.T) {
	r, cs := newCountingRS(t, true, nil)
	tok := randomToken()
	err := r.store.SaveAccessToken(bg, store.HashToken(tok), &store.AccessToken{
		ClientID: "demo", Subject: "alice", Scope: "read", JKT: r.signer.JKT(), Audience: []string{r.ts.URL},
		IssuedAt: time.Now(), ExpiresAt: time.Now().Add(time.Second)})
	if err != nil {
		t.Fatal(err)
	}
	headers := func() map[string][]string {
		return map[string][]string{"Authorization": {"DPoP " + tok}, "DPoP": {r.proof(r.signer, "GET", apiPath, tok, "")}}
	}
	if got := r.get(apiPath, headers()); got.status != http.StatusOK {
		t.Fatalf("%d %s", got.status, got.body)
	}
	time.Sleep(1100 * time.Millisecond)
	wantChallenge(t, r.get(apiPath, headers()), http.StatusUnauthorized, dpop.CodeInvalidToken)
	if got := counts(cs); got != [3]int32{2, 1, 0} {
		t.Fatalf("store calls (get, use, insert) %v: want the expired token looked up again, not its binding used", got)
	}
}
