package store_test

import (
	"context"
	"errors"
	"strconv"
	"testing"
	"time"

	"github.com/dpopkit/dpop/store"
)

// A full memory store refuses new records with ErrFull and never drops a
// live one to make room; expired ones are reclaimed. (Regression of the
// second review: eviction let one client invalidate the others' tokens.)
func TestMemoryFullRefusesAndKeepsLiveRecords(t *testing.T) {
	now := time.Now()
	m, err := store.NewMemory(store.MemoryOptions{MaxAccessTokens: 2, MaxCodes: 1, ClientShare: 100, Now: func() time.Time { return now }})
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

// Issue 11: one client holds at most its share of a table (ClientShare), so
// that it cannot fill the table for the others; its records free their
// places when removed or expired.
func TestMemoryClientShare(t *testing.T) {
	now := time.Now()
	m, err := store.NewMemory(store.MemoryOptions{MaxAccessTokens: 100, MaxRefreshTokens: 100, MaxCodes: 100, ClientShare: 10, Now: func() time.Time { return now }})
	if err != nil {
		t.Fatal(err)
	}
	ctx := context.Background()
	tok := func(client string, ttl time.Duration) *store.AccessToken {
		return &store.AccessToken{ClientID: client, Subject: "s", IssuedAt: now, ExpiresAt: now.Add(ttl)}
	}
	var mine []store.TokenHash
	for i := range 10 {
		h := store.HashToken("attacker" + string(rune('a'+i)))
		if err := m.SaveAccessToken(ctx, h, tok("attacker", time.Minute)); err != nil {
			t.Fatalf("token %d of 10: %v", i, err)
		}
		mine = append(mine, h)
	}
	if err := m.SaveAccessToken(ctx, store.HashToken("one more"), tok("attacker", time.Hour)); !errors.Is(err, store.ErrShareFull) || !errors.Is(err, store.ErrFull) {
		t.Fatalf("11th token of one client in a table of 100 at 10%%: %v, want ErrFull", err)
	}
	// Replacing a record under the same hash does not count twice.
	if err := m.SaveAccessToken(ctx, mine[0], tok("attacker", time.Minute)); err != nil {
		t.Fatalf("replacing a record: %v", err)
	}
	// Two other clients fill their own shares.
	for i := range 20 {
		if err := m.SaveAccessToken(ctx, store.HashToken("victim"+strconv.Itoa(i)), tok("victim"+strconv.Itoa(i%2), time.Hour)); err != nil {
			t.Fatalf("another client's token %d: %v", i, err)
		}
	}
	// A revoked record frees its place.
	if err := m.RevokeAccessToken(ctx, mine[1]); err != nil {
		t.Fatal(err)
	}
	if err := m.SaveAccessToken(ctx, store.HashToken("after revoke"), tok("attacker", time.Minute)); err != nil {
		t.Fatalf("after a revocation: %v", err)
	}
	// Expired records stop counting (within a minute of their expiry), even
	// the one saved after the other clients' longer-lived records, which the
	// table has not reclaimed yet.
	now = now.Add(2*time.Minute + time.Second)
	for i := range 10 {
		if err := m.SaveAccessToken(ctx, store.HashToken("later"+string(rune('a'+i))), tok("attacker", time.Minute)); err != nil {
			t.Fatalf("after expiry, token %d: %v", i, err)
		}
	}
	if _, err := store.NewMemory(store.MemoryOptions{ClientShare: 101}); err == nil {
		t.Error("ClientShare 101 accepted")
	}
	if _, err := store.NewMemory(store.MemoryOptions{ClientShare: -1}); err == nil {
		t.Error("ClientShare -1 accepted")
	}
}

// Issue 11: one grant rotating its refresh token many times holds a bounded
// number of records: its live token and ConsumedRefreshTokensPerGrant
// rotated ones.
func TestMemoryRotationChainBounded(t *testing.T) {
	m, err := store.NewMemory(store.MemoryOptions{MaxRefreshTokens: 1000})
	if err != nil {
		t.Fatal(err)
	}
	ctx := context.Background()
	rec := func() *store.RefreshToken {
		return &store.RefreshToken{GrantID: "g", ClientID: "c", Subject: "s", IssuedAt: time.Now(), ExpiresAt: time.Now().Add(time.Hour)}
	}
	cur := store.HashToken("0")
	if err := m.SaveRefreshToken(ctx, cur, rec()); err != nil {
		t.Fatal(err)
	}
	var chain []store.TokenHash
	for i := range 5000 { // far more than the table holds
		next := store.HashToken(strconv.Itoa(i + 1))
		if _, err := m.RotateRefreshToken(ctx, cur, next, rec()); err != nil {
			t.Fatalf("rotation %d: %v", i, err)
		}
		chain = append(chain, cur)
		cur = next
	}
	kept := 0
	for i, h := range chain {
		_, err := m.GetRefreshToken(ctx, h)
		switch {
		case errors.Is(err, store.ErrConsumed):
			kept++
			if i < len(chain)-store.ConsumedRefreshTokensPerGrant {
				t.Errorf("rotated token %d of %d still kept", i, len(chain))
			}
		case !errors.Is(err, store.ErrNotFound):
			t.Fatalf("rotated token %d: %v", i, err)
		}
	}
	if kept != store.ConsumedRefreshTokensPerGrant {
		t.Errorf("%d rotated tokens kept, want %d", kept, store.ConsumedRefreshTokensPerGrant)
	}
	if _, err := m.GetRefreshToken(ctx, cur); err != nil {
		t.Fatalf("live token: %v", err)
	}
}
