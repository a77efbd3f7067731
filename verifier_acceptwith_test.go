package dpop_test

import (
	"context"
	"errors"
	"testing"
	"time"

	"github.com/dpopkit/dpop"
	"github.com/dpopkit/dpop/internal/testkit/dpoptest"
)

// TestAcceptWith: AcceptWith records the proof with the given function
// instead of the replay cache's Insert, with Accept's errors and quota
// refunds (RFC 9449 §11.1).
func TestAcceptWith(t *testing.T) {
	ctx := context.Background()
	cache, err := dpop.NewMemoryReplayCache(dpop.MemoryReplayCacheOptions{Capacity: 1000})
	if err != nil {
		t.Fatal(err)
	}
	v, err := dpop.NewVerifier(dpop.VerifierOptions{BaseURL: "https://as.example", ReplayCache: cache,
		Quota: dpop.Quota{PerClient: 1}})
	if err != nil {
		t.Fatal(err)
	}
	signer := dpoptest.NewSigner(t)
	check := func() *dpop.Proof {
		t.Helper()
		jws, err := signer.Proof("POST", "https://as.example/token", dpop.ProofOptions{})
		if err != nil {
			t.Fatal(err)
		}
		p, err := v.Check(ctx, dpop.Request{Method: "POST", URL: "https://as.example/token", Proofs: []string{jws}, Client: "c"})
		if err != nil {
			t.Fatal(err)
		}
		return p
	}
	var keys []dpop.ReplayKey
	fail := func(err error) dpop.InsertFunc {
		return func(_ context.Context, k dpop.ReplayKey, _ time.Duration) (bool, error) {
			keys = append(keys, k)
			return false, err
		}
	}
	// Refused or failed inserts refund the client's one place each time.
	for _, tc := range []struct {
		insert dpop.InsertFunc
		want   error
	}{
		{fail(nil), dpop.ErrReplay},
		{fail(dpop.ErrReplayCacheFull), dpop.ErrReplayCacheFull},
		{fail(errors.New("down")), dpop.ErrReplayCacheUnavailable},
	} {
		if err := v.AcceptWith(ctx, check(), tc.insert); !errors.Is(err, tc.want) {
			t.Errorf("AcceptWith: %v, want %v", err, tc.want)
		}
	}
	if len(keys) != 3 || cache.Len() != 0 {
		t.Fatalf("insert called %d times, cache holds %d; want 3 and 0", len(keys), cache.Len())
	}
	// Recorded by the function, not the cache; the place is now taken.
	ok := func(context.Context, dpop.ReplayKey, time.Duration) (bool, error) { return true, nil }
	if err := v.AcceptWith(ctx, check(), ok); err != nil {
		t.Fatalf("AcceptWith: %v", err)
	}
	if cache.Len() != 0 {
		t.Error("AcceptWith inserted into the replay cache too")
	}
	if err := v.AcceptWith(ctx, check(), ok); !errors.Is(err, dpop.ErrQuota) {
		t.Errorf("AcceptWith over the quota: %v, want ErrQuota", err)
	}
	// A nil function is the replay cache's Insert.
	v2, _ := dpop.NewVerifier(dpop.VerifierOptions{BaseURL: "https://as.example", ReplayCache: cache})
	jws, _ := signer.Proof("POST", "https://as.example/token", dpop.ProofOptions{})
	p, err := v2.Check(ctx, dpop.Request{Method: "POST", URL: "https://as.example/token", Proofs: []string{jws}})
	if err != nil {
		t.Fatal(err)
	}
	if err := v2.AcceptWith(ctx, p, nil); err != nil || cache.Len() != 1 {
		t.Errorf("AcceptWith(nil): %v, cache holds %d", err, cache.Len())
	}
}
