package store_test

import (
	"context"
	"errors"
	"testing"
	"time"

	"github.com/dpopkit/dpop/store"
)

// A full memory store refuses new records with ErrFull and never drops a
// live one to make room; expired ones are reclaimed. (Regression of the
// second review: eviction let one client invalidate the others' tokens.)
func TestMemoryFullRefusesAndKeepsLiveRecords(t *testing.T) {
	now := time.Now()
	m, err := store.NewMemory(store.MemoryOptions{MaxAccessTokens: 2, MaxCodes: 1, Now: func() time.Time { return now }})
	if err != nil {
		t.Fatal(err)
	}
	ctx := context.Background()
	tok := func(ttl time.Duration) *store.AccessToken {
		return &store.AccessToken{ClientID: "c", Subject: "s", IssuedAt: now, ExpiresAt: now.Add(ttl)}
	}
	a, b, c := store.HashToken("a"), store.HashToken("b"), store.HashToken("c")
	if err := m.SaveAccessToken(ctx, a, tok(time.Minute)); err != nil {
		t.Fatal(err)
	}
	if err := m.SaveAccessToken(ctx, b, tok(time.Hour)); err != nil {
		t.Fatal(err)
	}
	if err := m.SaveAccessToken(ctx, c, tok(time.Hour)); !errors.Is(err, store.ErrFull) {
		t.Fatalf("third token in a store of two: %v, want ErrFull", err)
	}
	for _, h := range []store.TokenHash{a, b} {
		if _, err := m.GetAccessToken(ctx, h); err != nil {
			t.Fatalf("a live token was dropped: %v", err)
		}
	}
	now = now.Add(2 * time.Minute) // a has expired: its place is reclaimed
	if err := m.SaveAccessToken(ctx, c, tok(time.Hour)); err != nil {
		t.Fatalf("after expiry: %v", err)
	}
	if err := m.SaveCode(ctx, a, &store.AuthorizationCode{ClientID: "c", ExpiresAt: now.Add(time.Minute)}); err != nil {
		t.Fatal(err)
	}
	if err := m.SaveCode(ctx, b, &store.AuthorizationCode{ClientID: "c", ExpiresAt: now.Add(time.Minute)}); !errors.Is(err, store.ErrFull) {
		t.Fatalf("second code in a store of one: %v", err)
	}
}
