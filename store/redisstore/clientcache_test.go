package redisstore_test

import (
	"context"
	"errors"
	"sync"
	"testing"
	"time"

	"github.com/dpopkit/dpop/store"
	"github.com/dpopkit/dpop/store/redisstore"
)

// TestClientCache: a store keeps the clients it read for ClientCacheTTL,
// by its clock: another instance's update is seen once the entry ends, its
// own at once, and a client unknown when first asked for is seen as soon
// as another instance registers it. A negative TTL reads Redis every time.
func TestClientCache(t *testing.T) {
	c := newClient(t)
	prefix := freshPrefix()
	t.Cleanup(func() { deleteUnder(t, c, prefix) })
	var mu sync.Mutex
	now := time.Now()
	clock := func() time.Time { mu.Lock(); defer mu.Unlock(); return now }
	advance := func(d time.Duration) { mu.Lock(); now = now.Add(d); mu.Unlock() }
	a, err := redisstore.New(redisstore.Options{Client: c, Prefix: prefix, ClientCacheTTL: time.Second, Now: clock})
	must(t, err)
	b, err := redisstore.New(redisstore.Options{Client: c, Prefix: prefix})
	must(t, err)
	direct, err := redisstore.New(redisstore.Options{Client: c, Prefix: prefix, ClientCacheTTL: -1})
	must(t, err)
	ctx := context.Background()
	client := func(uri string) *store.Client {
		return &store.Client{ID: "cached", RedirectURIs: []string{uri}, GrantTypes: []string{"authorization_code"}}
	}
	redirect := func(s *redisstore.Store) string {
		t.Helper()
		got, err := s.GetClient(ctx, "cached")
		must(t, err)
		return got.RedirectURIs[0]
	}

	if _, err := a.GetClient(ctx, "cached"); !errors.Is(err, store.ErrNotFound) {
		t.Fatalf("GetClient of an unknown client = %v", err)
	}
	must(t, b.SaveClient(ctx, client("https://one.example/cb")))
	if got := redirect(a); got != "https://one.example/cb" {
		t.Errorf("a client registered elsewhere after a miss: %s", got)
	}
	must(t, b.SaveClient(ctx, client("https://two.example/cb")))
	if got := redirect(a); got != "https://one.example/cb" {
		t.Errorf("within the TTL, the cached registration is %s; want the one read", got)
	}
	if got := redirect(direct); got != "https://two.example/cb" {
		t.Errorf("without a cache: %s", got)
	}
	advance(time.Second)
	if got := redirect(a); got != "https://two.example/cb" {
		t.Errorf("after the TTL: %s; want the update", got)
	}
	must(t, a.SaveClient(ctx, client("https://three.example/cb")))
	if got := redirect(a); got != "https://three.example/cb" {
		t.Errorf("after its own SaveClient: %s", got)
	}
}
