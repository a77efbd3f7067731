package testkit

import (
	"context"
	"errors"
	"sync"
	"testing"
	"time"

	"github.com/dpopkit/dpop/store"
)

// ClientCache checks the client cache of a store out of process
// (store.ClientCache behind GetClient): open returns a fresh store over
// shared data (the same for every call within one run of ClientCache),
// with ttl as its client cache TTL (negative: none) and now as its clock.
// A store keeps the clients it read for the TTL: another instance's update
// is seen once the entry ends, its own at once, and a client unknown when
// first asked for is seen as soon as another instance registers it.
func ClientCache(t *testing.T, open func(t *testing.T, ttl time.Duration, now func() time.Time) store.ClientStore) {
	t.Helper()
	var mu sync.Mutex
	now := time.Now()
	clock := func() time.Time { mu.Lock(); defer mu.Unlock(); return now }
	a := open(t, time.Second, clock)
	b := open(t, 0, nil)
	direct := open(t, -1, nil)
	ctx := context.Background()
	client := func(uri string) *store.Client {
		return &store.Client{ID: "cached", RedirectURIs: []string{uri}, GrantTypes: []string{"authorization_code"}}
	}
	must := func(err error) {
		t.Helper()
		if err != nil {
			t.Fatal(err)
		}
	}
	redirect := func(s store.ClientStore) string {
		t.Helper()
		got, err := s.GetClient(ctx, "cached")
		must(err)
		return got.RedirectURIs[0]
	}

	if _, err := a.GetClient(ctx, "cached"); !errors.Is(err, store.ErrNotFound) {
		t.Fatalf("GetClient of an unknown client = %v", err)
	}
	must(b.SaveClient(ctx, client("https://one.example/cb")))
	if got := redirect(a); got != "https://one.example/cb" {
		t.Errorf("a client registered elsewhere after a miss: %s", got)
	}
	must(b.SaveClient(ctx, client("https://two.example/cb")))
	if got := redirect(a); got != "https://one.example/cb" {
		t.Errorf("within the TTL, the cached registration is %s; want the one read", got)
	}
	if got := redirect(direct); got != "https://two.example/cb" {
		t.Errorf("without a cache: %s", got)
	}
	mu.Lock()
	now = now.Add(time.Second)
	mu.Unlock()
	if got := redirect(a); got != "https://two.example/cb" {
		t.Errorf("after the TTL: %s; want the update", got)
	}
	must(a.SaveClient(ctx, client("https://three.example/cb")))
	if got := redirect(a); got != "https://three.example/cb" {
		t.Errorf("after its own SaveClient: %s", got)
	}
}
