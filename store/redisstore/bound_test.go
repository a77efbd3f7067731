package redisstore_test

import (
	"net"
	"os/exec"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/dpopkit/dpop/internal/testkit"
	"github.com/dpopkit/dpop/store"
	"github.com/dpopkit/dpop/store/redisstore"
	"github.com/redis/go-redis/v9"
)

// TestConsumedRefreshTokensBound: what adaptertest's ChainBound cannot see
// from outside: after 30 rotations the grant's keys are exactly its live
// token, its 8 consumed ones and one list (the others are deleted, not
// hidden), and the list lives as long as the tokens it names.
func TestConsumedRefreshTokensBound(t *testing.T) {
	c := newClient(t)
	s, prefix := newStore(t, c)
	const n, keep = 30, store.ConsumedRefreshTokensPerGrant
	base := time.Now()
	// Earlier tokens expire later, so that the list's expiry must be the
	// latest expiry, not the last one.
	chain := testkit.RotateChain(t, s, "g", n, func(i int) time.Time { return base.Add(time.Duration(2*n-i) * time.Minute) })
	testkit.RotateChain(t, s, "other", 3, func(int) time.Time { return base.Add(time.Hour) })

	if got, err := s.GetRefreshToken(bg, chain[n]); err != nil || got.GrantID != "g" {
		t.Fatalf("live token: %+v, %v", got, err)
	}

	var tokens, lists []string
	for _, k := range keysUnder(t, c, prefix) {
		switch {
		case strings.Contains(k, "}rt:"):
			tokens = append(tokens, k)
		case strings.Contains(k, "}rc:"):
			lists = append(lists, k)
		default:
			t.Errorf("unexpected key %q", k)
		}
	}
	if len(tokens) != keep+1+4 || len(lists) != 2 {
		t.Fatalf("%d refresh token keys and %d lists, want %d (%d consumed and a live token of g, 4 of other) and 2", len(tokens), len(lists), keep+1+4, keep)
	}
	for _, l := range lists {
		names, err := c.LRange(bg, l, 0, -1).Result()
		must(t, err)
		lttl, err := c.PTTL(bg, l).Result()
		must(t, err)
		for _, k := range names {
			kttl, err := c.PTTL(bg, k).Result()
			must(t, err)
			if kttl > lttl+5*time.Millisecond {
				t.Errorf("list %q expires in %v, before the token %q it names (%v)", l, lttl, k, kttl)
			}
		}
	}
}

// privateRedis starts a redis-server of its own on a free loopback port, so
// that the eviction policy can be changed without touching the server the
// other tests (and other packages' tests, run at the same time) share. It is
// stopped when the test ends.
func privateRedis(t *testing.T) *redis.Client {
	t.Helper()
	bin, err := exec.LookPath("redis-server")
	if err != nil {
		t.Fatalf("redis-server is needed to test eviction policies: %v", err)
	}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	must(t, err)
	port := strconv.Itoa(ln.Addr().(*net.TCPAddr).Port)
	ln.Close()
	cmd := exec.Command(bin, "--port", port, "--bind", "127.0.0.1", "--save", "", "--appendonly", "no", "--dir", t.TempDir())
	must(t, cmd.Start())
	t.Cleanup(func() { cmd.Process.Kill(); cmd.Wait() })
	c := redis.NewClient(&redis.Options{Addr: "127.0.0.1:" + port})
	t.Cleanup(func() { c.Close() })
	for deadline := time.Now().Add(10 * time.Second); ; {
		if err := c.Ping(bg).Err(); err == nil {
			return c
		} else if time.Now().After(deadline) {
			t.Fatalf("private redis-server did not start: %v", err)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// TestNewRefusesEviction: New refuses a Redis that may evict keys, naming
// its policy, unless told to skip the check.
func TestNewRefusesEviction(t *testing.T) {
	c := privateRedis(t)
	if _, err := redisstore.New(redisstore.Options{Client: c, Prefix: freshPrefix()}); err != nil {
		t.Fatalf("New over a noeviction server: %v", err)
	}
	for _, policy := range []string{"allkeys-lru", "volatile-lru", "allkeys-lfu", "volatile-ttl", "allkeys-random"} {
		t.Run(policy, func(t *testing.T) {
			must(t, c.ConfigSet(bg, "maxmemory-policy", policy).Err())
			_, err := redisstore.New(redisstore.Options{Client: c, Prefix: freshPrefix()})
			t.Log(err)
			if err == nil || !strings.Contains(err.Error(), policy) || !strings.Contains(err.Error(), "noeviction") {
				t.Errorf("New over a %s server: %v, want an error naming the policy", policy, err)
			}
			skipped, serr := redisstore.New(redisstore.Options{Client: c, Prefix: freshPrefix(), SkipEvictionCheck: true})
			if serr != nil || skipped == nil {
				t.Errorf("New with SkipEvictionCheck over a %s server: %v", policy, serr)
			}
		})
	}
}

// TestNewFailsClosed: when the policy cannot be read (no server, or one that
// never answers), New fails within its bound and names the option; with
// SkipEvictionCheck it does not contact Redis.
func TestNewFailsClosed(t *testing.T) {
	for _, tc := range []struct{ name, addr string }{
		{"closed port", "127.0.0.1:1"},
		{"silent server", silentServer(t)},
	} {
		t.Run(tc.name, func(t *testing.T) {
			// Long client timeouts: the check bounds itself.
			c := redis.NewClient(&redis.Options{Addr: tc.addr, DialTimeout: 10 * time.Second, ReadTimeout: 10 * time.Second})
			defer c.Close()
			start := time.Now()
			s, err := redisstore.New(redisstore.Options{Client: c})
			if d := time.Since(start); d > 3*time.Second {
				t.Errorf("New took %v", d)
			}
			t.Log(err)
			if err == nil || s != nil || !strings.Contains(err.Error(), "SkipEvictionCheck") || !strings.HasPrefix(err.Error(), "redisstore: ") {
				t.Errorf("New without Redis: %v, want an error that mentions SkipEvictionCheck", err)
			}
			start = time.Now()
			if _, err := redisstore.New(redisstore.Options{Client: c, SkipEvictionCheck: true}); err != nil {
				t.Errorf("New with SkipEvictionCheck: %v", err)
			}
			if d := time.Since(start); d > 100*time.Millisecond {
				t.Errorf("New with SkipEvictionCheck took %v: it contacted Redis", d)
			}
		})
	}
}
