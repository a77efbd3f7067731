package redisstore_test

import (
	"context"
	"fmt"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/dpopkit/dpop"
	"github.com/dpopkit/dpop/adaptertest"
	"github.com/dpopkit/dpop/store"
	"github.com/redis/go-redis/v9"
)

// clusterURLEnv names the variable that points the cluster tests at a Redis
// Cluster, in the form of redis.ParseClusterURL: one node's URL, and the
// others as addr parameters. Without it the cluster tests skip; CI starts a
// six-node cluster (.ci/run), sets it and refuses skips.
const clusterURLEnv = "DPOPKIT_REDIS_CLUSTER_URL"

// newClusterClient connects to the test cluster, with the short timeouts
// of redisOptions, checks that every node answers and closes the client
// when the test ends.
func newClusterClient(tb testing.TB) *redis.ClusterClient {
	tb.Helper()
	u := envURL(tb, clusterURLEnv, "a Redis Cluster", "redis://127.0.0.1:30001?addr=127.0.0.1:30002&addr=127.0.0.1:30003")
	opts, err := redis.ParseClusterURL(u)
	if err != nil {
		tb.Fatalf("%s: %v", clusterURLEnv, err)
	}
	shortTimeouts(&opts.ContextTimeoutEnabled, &opts.DialTimeout, &opts.ReadTimeout, &opts.WriteTimeout)
	c := redis.NewClusterClient(opts)
	tb.Cleanup(func() { c.Close() })
	err = c.ForEachShard(bg, func(ctx context.Context, node *redis.Client) error { return node.Ping(ctx).Err() })
	if err != nil {
		tb.Fatalf("Redis Cluster at %s is not reachable: %v", u, err)
	}
	return c
}

// keysByMaster lists the keys that start with prefix (which has no glob
// characters) on each master of the cluster, by the master's address.
func keysByMaster(tb testing.TB, c *redis.ClusterClient, prefix string) map[string][]string {
	tb.Helper()
	var mu sync.Mutex
	byMaster := map[string][]string{}
	err := c.ForEachMaster(bg, func(ctx context.Context, master *redis.Client) error {
		keys, err := scanKeys(ctx, master, prefix)
		mu.Lock()
		defer mu.Unlock()
		byMaster[master.Options().Addr] = keys
		return err
	})
	if err != nil {
		tb.Fatalf("SCAN %s* on the masters: %v", prefix, err)
	}
	return byMaster
}

// TestClusterConformance runs the store contract's conformance suite on a
// Redis Cluster: among others the scripts of ConsumeCode, RotateRefreshToken
// and the token lookups after RevokeGrant, each of which must touch keys of
// one slot only (a CROSSSLOT error fails the subtest).
func TestClusterConformance(t *testing.T) {
	adaptertest.Run(t, suiteStores(newClusterClient(t)))
}

// TestClusterInstances: two instances of a service, each with a cluster
// client of its own, over one prefix act as one service.
func TestClusterInstances(t *testing.T) {
	adaptertest.RunInstances(t, instanceStores(newClusterClient(t), newClusterClient(t)))
}

// TestClusterSpread: a store's keys spread over the masters, as the hash
// tags of the package doc intend: the untagged keys (clients, codes, replay
// entries) over every master, and the access tokens, in 16 tagged groups,
// over more than one.
func TestClusterSpread(t *testing.T) {
	c := newClusterClient(t)
	s, prefix := newStore(t, c)
	const n = 48
	exp := time.Now().Add(10 * time.Minute)
	for i := range n {
		id := fmt.Sprintf("client-%d", i)
		must(t, s.SaveClient(bg, &store.Client{ID: id, Scopes: []string{"read"}}))
		must(t, s.SaveCode(bg, store.HashToken("code-"+id), &store.AuthorizationCode{GrantID: "g", ClientID: id, ExpiresAt: exp}))
		must(t, s.SaveAccessToken(bg, store.HashToken("access-"+id), &store.AccessToken{GrantID: "g", ClientID: id, ExpiresAt: exp}))
		if ok, err := s.Insert(bg, dpop.NewReplayKey("jkt", id), time.Minute); err != nil || !ok {
			t.Fatalf("Insert %d: %v %v", i, ok, err)
		}
	}
	byMaster := keysByMaster(t, c, prefix)
	if len(byMaster) < 2 {
		t.Fatalf("the cluster at %s has %d master(s); the test needs several", c.Options().Addrs, len(byMaster))
	}
	total, withTokens := 0, 0
	for addr, keys := range byMaster {
		total += len(keys)
		tokens := 0
		for _, k := range keys {
			if strings.Contains(k, "}at:") {
				tokens++
			}
		}
		t.Logf("master %s: %d keys, %d of them access tokens", addr, len(keys), tokens)
		if len(keys) == 0 {
			t.Errorf("master %s holds none of the store's keys", addr)
		}
		if tokens > 0 {
			withTokens++
		}
	}
	if total != 4*n {
		t.Errorf("%d keys on the masters, want %d (a client, a code, an access token and a replay entry, %d times)", total, 4*n, n)
	}
	if withTokens < 2 {
		t.Errorf("the access tokens lie on %d master(s), want several", withTokens)
	}
}
