package store_test

import (
	"context"
	"errors"
	"testing"
	"time"

	"github.com/dpopkit/dpop/store"
)

// Item: a memory store full of clients refuses a new one with ErrFull and
// keeps every registered client; replacing a registered client still works.
func TestMemoryClientsFull(t *testing.T) {
	ctx := context.Background()
	m, err := store.NewMemory(store.MemoryOptions{MaxClients: 2})
	if err != nil {
		t.Fatal(err)
	}
	defer m.Close()
	client := func(id string, scopes ...string) *store.Client {
		return &store.Client{ID: id, GrantTypes: []string{store.GrantAuthorizationCode}, RedirectURIs: []string{"https://app.example/cb"}, Scopes: scopes}
	}
	for _, id := range []string{"a", "b"} {
		if err := m.SaveClient(ctx, client(id, "read")); err != nil {
			t.Fatalf("client %s of 2: %v", id, err)
		}
	}
	if err := m.SaveClient(ctx, client("c", "read")); !errors.Is(err, store.ErrFull) {
		t.Fatalf("a third client in a store of two: %v, want ErrFull", err)
	}
	if _, err := m.GetClient(ctx, "c"); !errors.Is(err, store.ErrNotFound) {
		t.Fatalf("the refused client: %v, want ErrNotFound", err)
	}
	// A registered client is replaced in place: no new room needed.
	if err := m.SaveClient(ctx, client("a", "read", "write")); err != nil {
		t.Fatalf("replacing a registered client in a full store: %v", err)
	}
	got, err := m.GetClient(ctx, "a")
	if err != nil || len(got.Scopes) != 2 {
		t.Fatalf("replaced client %+v, %v", got, err)
	}
	if _, err := m.GetClient(ctx, "b"); err != nil {
		t.Fatalf("a registered client was dropped: %v", err)
	}
	if err := m.SaveClient(ctx, client("d", "read")); !errors.Is(err, store.ErrFull) {
		t.Fatalf("after a replacement, a new client: %v, want ErrFull", err)
	}
}

// Item: a memory store full of live grant revocations refuses a new one
// with ErrFull rather than forget one that is still in force; extending a
// remembered revocation needs no room, and a revocation that has ended
// makes room.
func TestMemoryRevokedGrantsFull(t *testing.T) {
	ctx := context.Background()
	now := time.Unix(1_800_000_000, 0)
	m, err := store.NewMemory(store.MemoryOptions{MaxRevokedGrants: 2, Now: func() time.Time { return now }})
	if err != nil {
		t.Fatal(err)
	}
	defer m.Close()
	// One token per grant, to see each revocation in force.
	tokens := map[string]store.TokenHash{}
	for _, g := range []string{"g1", "g2", "g3"} {
		h := store.HashToken("token of " + g)
		tokens[g] = h
		if err := m.SaveAccessToken(ctx, h, &store.AccessToken{GrantID: g, ClientID: "c", Subject: "s", IssuedAt: now, ExpiresAt: now.Add(24 * time.Hour)}); err != nil {
			t.Fatal(err)
		}
	}
	revokedUntil := func(g string) bool {
		t.Helper()
		_, err := m.GetAccessToken(ctx, tokens[g])
		if err != nil && !errors.Is(err, store.ErrRevoked) {
			t.Fatalf("token of %s: %v", g, err)
		}
		return errors.Is(err, store.ErrRevoked)
	}
	if err := m.RevokeGrant(ctx, "g1", now.Add(time.Hour)); err != nil {
		t.Fatal(err)
	}
	if err := m.RevokeGrant(ctx, "g2", now.Add(2*time.Hour)); err != nil {
		t.Fatal(err)
	}
	if err := m.RevokeGrant(ctx, "g3", now.Add(time.Hour)); !errors.Is(err, store.ErrFull) {
		t.Fatalf("a third live revocation in a store of two: %v, want ErrFull", err)
	}
	if !revokedUntil("g1") || !revokedUntil("g2") {
		t.Fatal("a live revocation was forgotten to make room")
	}
	if revokedUntil("g3") {
		t.Fatal("the refused revocation is in force")
	}
	// Extending a remembered revocation takes no new room.
	if err := m.RevokeGrant(ctx, "g1", now.Add(3*time.Hour)); err != nil {
		t.Fatalf("extending a remembered revocation in a full store: %v", err)
	}
	// Once g2's revocation has ended (g1's was extended), its place is free.
	now = now.Add(2*time.Hour + time.Second)
	if err := m.RevokeGrant(ctx, "g3", now.Add(time.Hour)); err != nil {
		t.Fatalf("after a revocation ended: %v", err)
	}
	if !revokedUntil("g1") || !revokedUntil("g3") {
		t.Fatal("a live revocation is not in force")
	}
	if err := m.RevokeGrant(ctx, "g2", now.Add(time.Hour)); !errors.Is(err, store.ErrFull) {
		t.Fatalf("a third live revocation, later: %v, want ErrFull", err)
	}
}
