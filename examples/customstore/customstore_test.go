package customstore_test

import (
	"context"
	"errors"
	"testing"
	"time"

	"github.com/dpopkit/dpop"
	"github.com/dpopkit/dpop/adaptertest"
	"github.com/dpopkit/dpop/examples/customstore"
	"github.com/dpopkit/dpop/store"
)

// TestConformance runs the kit's store conformance suite: the one test every
// custom store needs. Each subtest gets a fresh, empty store.
func TestConformance(t *testing.T) {
	adaptertest.Run(t, newStore)
}

// TestInstances runs the several-instances suite: two complete kits over one
// store act as one service. This store lives in the process, so both
// instances share the one value (adaptertest.SameStore); a store over a
// database would give each instance its own connection.
func TestInstances(t *testing.T) {
	adaptertest.RunInstances(t, adaptertest.SameStore(newStore))
}

func newStore(t *testing.T) (store.Store, func()) {
	s := customstore.New(customstore.Options{})
	return s, func() { s.Close() }
}

// The tests below cover what the suite leaves to each store: its limits.

func TestFullStoreRefuses(t *testing.T) {
	ctx := context.Background()
	now := time.Now()
	clock := func() time.Time { return now }
	s := customstore.New(customstore.Options{Limit: 2, Now: clock})
	exp := now.Add(time.Minute)
	tok := func(grant string) *store.AccessToken {
		return &store.AccessToken{GrantID: grant, ClientID: "c", Subject: "s", IssuedAt: now, ExpiresAt: exp}
	}
	a, b, c := store.HashToken("a"), store.HashToken("b"), store.HashToken("c")
	for _, h := range []store.TokenHash{a, b} {
		if err := s.SaveAccessToken(ctx, h, tok("g")); err != nil {
			t.Fatal(err)
		}
	}
	if err := s.SaveAccessToken(ctx, c, tok("g")); !errors.Is(err, store.ErrFull) {
		t.Fatalf("third token in a store of two: %v, want ErrFull", err)
	}
	// Replacing a record needs no room, and nothing live was forgotten.
	if err := s.SaveAccessToken(ctx, a, tok("g2")); err != nil {
		t.Fatalf("replacing a token in a full store: %v", err)
	}
	for _, h := range []store.TokenHash{a, b} {
		if _, err := s.GetAccessToken(ctx, h); err != nil {
			t.Fatalf("a live token was forgotten: %v", err)
		}
	}

	// Replay entries and revocations are refused the same way.
	for i, jti := range []string{"1", "2"} {
		if ok, err := s.Insert(ctx, dpop.NewReplayKey("k", jti), time.Minute); !ok || err != nil {
			t.Fatalf("Insert %d: %v %v", i, ok, err)
		}
	}
	if _, err := s.Insert(ctx, dpop.NewReplayKey("k", "3"), time.Minute); !errors.Is(err, dpop.ErrReplayCacheFull) {
		t.Fatalf("Insert into a full cache: %v, want ErrReplayCacheFull", err)
	}
	for _, g := range []string{"x", "y"} {
		if err := s.RevokeGrant(ctx, g, exp); err != nil {
			t.Fatal(err)
		}
	}
	if err := s.RevokeGrant(ctx, "z", exp); !errors.Is(err, store.ErrFull) {
		t.Fatalf("RevokeGrant in a full store: %v, want ErrFull", err)
	}
	par := &store.PushedRequest{ClientID: "c", Params: "response_type=code", ExpiresAt: exp}
	for _, h := range []store.TokenHash{a, b} {
		if err := s.SavePushedRequest(ctx, h, par); err != nil {
			t.Fatal(err)
		}
	}
	if err := s.SavePushedRequest(ctx, c, par); !errors.Is(err, store.ErrFull) {
		t.Fatalf("third pushed request in a store of two: %v, want ErrFull", err)
	}

	// Once records expire, a full kind makes room by dropping them.
	now = now.Add(2 * time.Minute)
	if err := s.SaveAccessToken(ctx, c, &store.AccessToken{GrantID: "g", ExpiresAt: now.Add(time.Minute)}); err != nil {
		t.Fatalf("saving once the others expired: %v", err)
	}
	if ok, err := s.Insert(ctx, dpop.NewReplayKey("k", "3"), time.Minute); !ok || err != nil {
		t.Fatalf("Insert once the others expired: %v %v", ok, err)
	}
	if err := s.SavePushedRequest(ctx, c, &store.PushedRequest{ClientID: "c", ExpiresAt: now.Add(time.Minute)}); err != nil {
		t.Fatalf("saving a pushed request once the others expired: %v", err)
	}
}

func TestClosed(t *testing.T) {
	s := customstore.New(customstore.Options{})
	s.Close()
	if _, err := s.GetClient(context.Background(), "demo"); !errors.Is(err, store.ErrClosed) {
		t.Fatalf("GetClient after Close: %v, want ErrClosed", err)
	}
}
