package dpop

import (
	"errors"
	"math"
	"sync"
	"sync/atomic"
	"testing"
	"time"
)

// clock is a settable test clock.
type clock struct {
	mu sync.Mutex
	t  time.Time
}

func (c *clock) now() time.Time { c.mu.Lock(); defer c.mu.Unlock(); return c.t }
func (c *clock) add(d time.Duration) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.t = c.t.Add(d)
}

// quotaVerifier is a verifier with the given budgets on a settable clock
// (proofs are signed at testNow and stay fresh for a minute).
func quotaVerifier(t *testing.T, q Quota) (*Verifier, *clock) {
	t.Helper()
	return quotaVerifierWith(t, q, nil)
}

// quotaVerifierWith is quotaVerifier with its options edited by edit.
func quotaVerifierWith(t *testing.T, q Quota, edit func(*VerifierOptions)) (*Verifier, *clock) {
	t.Helper()
	c := &clock{t: testNow}
	return newTestVerifier(t, func(o *VerifierOptions) {
		o.Quota, o.Now = q, c.now
		if edit != nil {
			edit(o)
		}
	}), c
}

// charged is a token-endpoint request charged to client and grant.
func charged(proof, client, grant string) Request {
	r := tokenRequest(proof)
	r.Client, r.Grant = client, grant
	return r
}

func wantQuota(t *testing.T, p *Proof, err error) *Error {
	t.Helper()
	wantRefused(t, p, err, CodeTemporarilyUnavailable, ErrQuota)
	e := err.(*Error)
	if e.RetryAfter <= 0 {
		t.Errorf("RetryAfter = %v, want a positive delay", e.RetryAfter)
	}
	return e
}

// A party's budget: its proofs pass until the budget is spent, then are
// refused with a delay, and room comes back at the budget's rate.
func TestQuotaBudget(t *testing.T) {
	es := newTestKey(t, ES256)
	t.Run("client budget spent, then refilled", func(t *testing.T) {
		v, clk := quotaVerifier(t, Quota{PerClient: 3, PerGrant: -1})
		for i := range 3 {
			if _, err := v.Verify(bg, charged(es.proof(t, nil), "a", "")); err != nil {
				t.Fatalf("proof %d: %v", i, err)
			}
		}
		p, err := v.Verify(bg, charged(es.proof(t, nil), "a", ""))
		e := wantQuota(t, p, err)
		// One entry's worth of room comes back in a third of the entry life.
		if max := v.replay / 3; e.RetryAfter > max+time.Millisecond {
			t.Errorf("RetryAfter = %v, want at most %v", e.RetryAfter, max)
		}
		clk.add(e.RetryAfter)
		if _, err := v.Verify(bg, charged(es.proof(t, nil), "a", "")); err != nil {
			t.Fatalf("after RetryAfter: %v", err)
		}
	})
	t.Run("another client keeps its budget", func(t *testing.T) {
		v, _ := quotaVerifier(t, Quota{PerClient: 2, PerGrant: -1})
		for range 2 {
			if _, err := v.Verify(bg, charged(es.proof(t, nil), "attacker", "")); err != nil {
				t.Fatal(err)
			}
		}
		p, err := v.Verify(bg, charged(es.proof(t, nil), "attacker", ""))
		wantQuota(t, p, err)
		if _, err := v.Verify(bg, charged(es.proof(t, nil), "victim", "")); err != nil {
			t.Fatalf("victim refused: %v", err)
		}
	})
	t.Run("a grant over its budget gives the client charge back", func(t *testing.T) {
		v, _ := quotaVerifier(t, Quota{PerClient: 5, PerGrant: 2})
		for range 2 {
			if _, err := v.Verify(bg, charged(es.proof(t, nil), "c", "g1")); err != nil {
				t.Fatal(err)
			}
		}
		for range 3 { // refused by g1's budget: the client is not charged
			p, err := v.Verify(bg, charged(es.proof(t, nil), "c", "g1"))
			wantQuota(t, p, err)
		}
		// The client has 3 left: g2 and g3 use them.
		for _, g := range []string{"g2", "g2", "g3"} {
			if _, err := v.Verify(bg, charged(es.proof(t, nil), "c", g)); err != nil {
				t.Fatalf("grant %s: %v", g, err)
			}
		}
		p, err := v.Verify(bg, charged(es.proof(t, nil), "c", "g4"))
		wantQuota(t, p, err)
	})
	t.Run("grants of different clients are different parties", func(t *testing.T) {
		v, _ := quotaVerifier(t, Quota{PerClient: -1, PerGrant: 1})
		for _, c := range []string{"c1", "c2"} {
			if _, err := v.Verify(bg, charged(es.proof(t, nil), c, "same-grant")); err != nil {
				t.Fatalf("%s: %v", c, err)
			}
		}
	})
	t.Run("no party named, no charge", func(t *testing.T) {
		v, _ := quotaVerifier(t, Quota{PerClient: 1, PerGrant: 1})
		for range 5 {
			if _, err := v.Verify(bg, tokenRequest(es.proof(t, nil))); err != nil {
				t.Fatal(err)
			}
		}
	})
	t.Run("a huge budget does not wrap", func(t *testing.T) {
		v, clk := quotaVerifier(t, Quota{PerClient: math.MaxInt, PerGrant: math.MaxInt})
		for range 5 {
			if _, err := v.Verify(bg, charged(es.proof(t, nil), "c", "g")); err != nil {
				t.Fatal(err)
			}
			clk.add(time.Millisecond) // the refill must not wrap either
		}
	})
	t.Run("a budget smaller than one nonce proof still admits one", func(t *testing.T) {
		nonces := newTestNonces(t)
		v, c := quotaVerifierWith(t, Quota{PerClient: 1, PerGrant: -1}, func(o *VerifierOptions) { o.Nonces = nonces })
		nonce, _ := v.Nonce(bg)
		proof := func() string { return es.proof(t, func(m map[string]any) { m["nonce"] = nonce }) }
		if _, err := v.Verify(bg, charged(proof(), "c", "")); err != nil {
			t.Fatalf("first nonce proof with a budget of 1 entry: %v", err)
		}
		p, err := v.Verify(bg, charged(proof(), "c", ""))
		e := wantQuota(t, p, err)
		if e.RetryAfter > v.replay {
			t.Errorf("RetryAfter %v: room for one proof comes back within %v", e.RetryAfter, v.replay)
		}
		c.add(e.RetryAfter)
		if _, err := v.Verify(bg, charged(proof(), "c", "")); err != nil {
			t.Fatalf("after RetryAfter: %v", err)
		}
	})
	t.Run("replays of a captured proof do not spend its owner's share", func(t *testing.T) {
		v, _ := quotaVerifier(t, Quota{PerClient: 2, PerGrant: 2})
		captured := es.proof(t, nil)
		if _, err := v.Verify(bg, charged(captured, "victim", "g")); err != nil {
			t.Fatal(err)
		}
		for range 50 {
			p, err := v.Verify(bg, charged(captured, "victim", "g"))
			wantRefused(t, p, err, CodeInvalidProof, ErrReplay)
		}
		if _, err := v.Verify(bg, charged(es.proof(t, nil), "victim", "g")); err != nil {
			t.Fatalf("the owner's next proof after 50 replays: %v", err)
		}
	})
	t.Run("a cache that fails gives the charge back", func(t *testing.T) {
		v, _ := quotaVerifierWith(t, Quota{PerClient: 1, PerGrant: -1}, func(o *VerifierOptions) { o.ReplayCache = failingCache{} })
		for range 3 {
			p, err := v.Verify(bg, charged(es.proof(t, nil), "c", ""))
			wantRefused(t, p, err, CodeServerError, ErrReplayCacheUnavailable)
		}
	})
	t.Run("budgets off", func(t *testing.T) {
		v, _ := quotaVerifier(t, Quota{PerClient: -1, PerGrant: -1})
		for range 20 {
			if _, err := v.Verify(bg, charged(es.proof(t, nil), "c", "g")); err != nil {
				t.Fatal(err)
			}
		}
	})
	t.Run("with nonces a proof costs its longer entry life", func(t *testing.T) {
		nonces := newTestNonces(t)
		v, _ := quotaVerifierWith(t, Quota{PerClient: 20, PerGrant: -1}, func(o *VerifierOptions) { o.Nonces = nonces })
		nonce, err := v.Nonce(bg)
		if err != nil {
			t.Fatal(err)
		}
		accepted := 0
		for range 20 {
			if _, err := v.Verify(bg, charged(es.proof(t, func(m map[string]any) { m["nonce"] = nonce }), "c", "")); err == nil {
				accepted++
			} else if !errors.Is(err, ErrQuota) {
				t.Fatal(err)
			}
		}
		// An entry lives as long as its nonce (minutes), several times the
		// unit the budget counts in, so far fewer than 20 pass.
		if accepted == 0 || accepted > 10 {
			t.Errorf("%d of 20 nonce proofs accepted with a budget of 20 entries, want 1 to 10", accepted)
		}
	})
	t.Run("concurrent charges never exceed the budget", func(t *testing.T) {
		v, _ := quotaVerifier(t, Quota{PerClient: 10, PerGrant: -1})
		proofs := make([]string, 40)
		for i := range proofs {
			proofs[i] = es.proof(t, nil)
		}
		var ok atomic.Int32
		var wg sync.WaitGroup
		for _, p := range proofs {
			wg.Go(func() {
				if _, err := v.Verify(bg, charged(p, "c", "")); err == nil {
					ok.Add(1)
				} else if !errors.Is(err, ErrQuota) {
					t.Error(err)
				}
			})
		}
		wg.Wait()
		if ok.Load() != 10 {
			t.Errorf("%d accepted, want exactly the budget, 10", ok.Load())
		}
	})
}

// Quota defaults follow the replay cache's capacity when it tells it.
func TestQuotaDefaults(t *testing.T) {
	small := mustMemoryCache(t, 4000)
	cases := []struct {
		name          string
		cache         ReplayCache
		q             Quota
		client, grant int
	}{
		{"memory cache of 4000", small, Quota{}, 400, 200},
		{"default memory cache", nil, Quota{}, DefaultClientQuota, DefaultTokenQuota},
		{"cache without capacity", &recordingCache{}, Quota{}, DefaultClientQuota, DefaultTokenQuota},
		{"explicit values kept", small, Quota{PerClient: 7, PerGrant: -1}, 7, -1},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			v := newTestVerifier(t, func(o *VerifierOptions) { o.ReplayCache, o.Quota = c.cache, c.q })
			if got := v.opts.Quota; got.PerClient != c.client || got.PerGrant != c.grant || got.MaxParties != DefaultQuotaParties {
				t.Errorf("quota = %+v, want client %d grant %d parties %d", got, c.client, c.grant, DefaultQuotaParties)
			}
		})
	}
	if _, err := NewVerifier(VerifierOptions{BaseURL: testBase, Quota: Quota{MaxParties: -1}}); err == nil {
		t.Error("negative MaxParties accepted")
	}
}

// Check records nothing; Accept records once, and only proofs its own
// verifier checked.
func TestCheckThenAccept(t *testing.T) {
	es := newTestKey(t, ES256)
	cache := mustMemoryCache(t, 10)
	v := newTestVerifier(t, func(o *VerifierOptions) { o.ReplayCache = cache })
	proof := es.proof(t, nil)
	var checked []*Proof
	for range 3 {
		p, err := v.Check(bg, tokenRequest(proof))
		if err != nil {
			t.Fatal(err)
		}
		checked = append(checked, p)
	}
	if n := cache.Len(); n != 0 {
		t.Fatalf("Check recorded %d entries", n)
	}
	if err := v.Accept(bg, checked[0]); err != nil {
		t.Fatal(err)
	}
	wantRefused(t, nil, v.Accept(bg, checked[1]), CodeInvalidProof, ErrReplay)
	other := newTestVerifier(t, nil)
	wantRefused(t, nil, other.Accept(bg, checked[2]), CodeInvalidProof, ErrNotChecked)
	wantRefused(t, nil, v.Accept(bg, nil), CodeInvalidProof, ErrNotChecked)
	wantRefused(t, nil, v.Accept(bg, &Proof{JKT: checked[2].JKT}), CodeInvalidProof, ErrNotChecked)
}

func TestRetryAfterSeconds(t *testing.T) {
	for _, c := range []struct {
		d    time.Duration
		want string
	}{{0, "1"}, {time.Millisecond, "1"}, {time.Second, "1"}, {1001 * time.Millisecond, "2"}, {71 * time.Second, "71"}} {
		if got := RetryAfterSeconds(c.d); got != c.want {
			t.Errorf("RetryAfterSeconds(%v) = %s, want %s", c.d, got, c.want)
		}
	}
}
