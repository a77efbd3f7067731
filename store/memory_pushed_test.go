package store_test

import (
	"context"
	"errors"
	"strconv"
	"testing"
	"time"

	"github.com/dpopkit/dpop/store"
)

// Issue 14: pushed authorization requests are bounded like codes: a full
// table refuses (ErrFull) without dropping a live request, reclaims expired
// ones, and one client holds at most its share (ErrShareFull), freed when
// its requests expire.
func TestMemoryPushedRequestBounds(t *testing.T) {
	now := time.Now()
	m, err := store.NewMemory(store.MemoryOptions{MaxPushedRequests: 20, ClientShare: 25, Now: func() time.Time { return now }})
	if err != nil {
		t.Fatal(err)
	}
	ctx := context.Background()
	par := func(client string, ttl time.Duration) *store.PushedRequest {
		return &store.PushedRequest{ClientID: client, Params: "response_type=code&client_id=" + client, ExpiresAt: now.Add(ttl)}
	}
	key := func(client string, i int) store.TokenHash { return store.HashToken(client + "/" + strconv.Itoa(i)) }
	// 25% of 20: five requests per client.
	for i := range 5 {
		if err := m.SavePushedRequest(ctx, key("a", i), par("a", time.Minute)); err != nil {
			t.Fatalf("request %d of client a: %v", i+1, err)
		}
	}
	if err := m.SavePushedRequest(ctx, key("a", 5), par("a", time.Minute)); !errors.Is(err, store.ErrShareFull) {
		t.Fatalf("sixth request of one client at a share of five: %v, want ErrShareFull", err)
	}
	// Replacing one does not count twice; consuming one frees nothing
	// (the consumed request is kept until it expires).
	if err := m.SavePushedRequest(ctx, key("a", 0), par("a", time.Minute)); err != nil {
		t.Fatalf("replacing a request: %v", err)
	}
	if _, err := m.ConsumePushedRequest(ctx, key("a", 1)); err != nil {
		t.Fatal(err)
	}
	if err := m.SavePushedRequest(ctx, key("a", 5), par("a", time.Minute)); !errors.Is(err, store.ErrShareFull) {
		t.Fatalf("a request after consuming one: %v, want ErrShareFull", err)
	}
	// The other clients fill the rest of the table.
	for _, c := range []string{"b", "c", "d"} {
		for i := range 5 {
			if err := m.SavePushedRequest(ctx, key(c, i), par(c, time.Hour)); err != nil {
				t.Fatalf("request %d of client %s: %v", i+1, c, err)
			}
		}
	}
	// The table is sharded; past its capacity it refuses rather than drop
	// a live request.
	saved := 20
	for i := range 20 {
		err := m.SavePushedRequest(ctx, key("e", i), par("e", time.Hour))
		if err == nil {
			saved++
			continue
		}
		if !errors.Is(err, store.ErrFull) {
			t.Fatalf("a request in a full table: %v, want ErrFull", err)
		}
	}
	if saved > 20+5 {
		t.Fatalf("%d requests saved in a table of 20", saved)
	}
	for _, c := range []string{"b", "c", "d"} {
		for i := range 5 {
			if _, err := m.GetPushedRequest(ctx, key(c, i)); err != nil {
				t.Fatalf("a live request of client %s was dropped: %v", c, err)
			}
		}
	}
	// Once a's requests expire, its share and their places are free.
	now = now.Add(2 * time.Minute)
	if _, err := m.GetPushedRequest(ctx, key("a", 2)); !errors.Is(err, store.ErrExpired) {
		t.Fatalf("an expired request: %v, want ErrExpired", err)
	}
	if _, err := m.ConsumePushedRequest(ctx, key("a", 1)); !errors.Is(err, store.ErrNotFound) {
		t.Fatalf("an expired, consumed request: %v, want ErrNotFound", err)
	}
	for i := 10; i < 15; i++ {
		if err := m.SavePushedRequest(ctx, key("a", i), par("a", time.Minute)); err != nil {
			t.Fatalf("request %d of client a after its others expired: %v", i, err)
		}
	}
	if _, err := store.NewMemory(store.MemoryOptions{MaxPushedRequests: -1}); err == nil {
		t.Fatal("a negative MaxPushedRequests was accepted")
	}
}
