package redisstore_test

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"fmt"
	"log"
	"os"
	"strings"
	"testing"
	"time"

	"github.com/dpopkit/dpop/adaptertest"
	"github.com/dpopkit/dpop/internal/testkit"
	"github.com/dpopkit/dpop/store"
	"github.com/dpopkit/dpop/store/redisstore"
	"github.com/redis/go-redis/v9"
)

// urlEnv names the variable that points the tests at a Redis server, such
// as redis://127.0.0.1:6379/0. Without it every test that needs Redis
// skips; CI sets it and refuses skips.
const urlEnv = "DPOPKIT_REDIS_URL"

var bg = context.Background()

// TestMain keeps go-redis from logging the dial failures that the fault
// tests cause on purpose; its other messages are printed.
func TestMain(m *testing.M) {
	redis.SetLogger(quietLogger{})
	os.Exit(m.Run())
}

type quietLogger struct{}

func (quietLogger) Printf(_ context.Context, format string, v ...any) {
	msg := fmt.Sprintf(format, v...)
	if strings.Contains(msg, "failed to dial") || strings.Contains(msg, "connection refused") {
		return
	}
	log.Print(msg)
}

// envURL returns the value of the variable env, the URL of what (a Redis
// server, a Redis Cluster), and skips the test when it is not set.
func envURL(tb testing.TB, env, what, example string) string {
	tb.Helper()
	u := os.Getenv(env)
	if u == "" {
		tb.Skipf("%s is not set: set it to %s the tests may write to, e.g. %s=%s", env, what, env, example)
	}
	return u
}

// shortTimeouts sets the fields of a client's options (a server's or a
// cluster's) that make a broken server fail a test instead of hanging it.
func shortTimeouts(contextTimeout *bool, dial, read, write *time.Duration) {
	*contextTimeout = true
	*dial, *read, *write = 2*time.Second, 2*time.Second, 2*time.Second
}

// redisOptions returns the client options of the test server, with short
// timeouts so that a broken server fails a test instead of hanging it.
func redisOptions(tb testing.TB) *redis.Options {
	tb.Helper()
	opts, err := redis.ParseURL(envURL(tb, urlEnv, "a Redis server", "redis://127.0.0.1:6379/0"))
	if err != nil {
		tb.Fatalf("%s: %v", urlEnv, err)
	}
	shortTimeouts(&opts.ContextTimeoutEnabled, &opts.DialTimeout, &opts.ReadTimeout, &opts.WriteTimeout)
	return opts
}

// newClient connects to the test server and closes the client when the
// test ends.
func newClient(tb testing.TB) *redis.Client {
	tb.Helper()
	c := redis.NewClient(redisOptions(tb))
	tb.Cleanup(func() { c.Close() })
	if err := c.Ping(bg).Err(); err != nil {
		tb.Fatalf("Redis at %s is not reachable: %v", os.Getenv(urlEnv), err)
	}
	return c
}

// freshPrefix is a key prefix no other test uses.
func freshPrefix() string {
	var b [8]byte
	rand.Read(b[:])
	return "dpoptest:" + hex.EncodeToString(b[:]) + ":"
}

// cleanPrefix is a fresh prefix whose keys on c are deleted when the test
// ends.
func cleanPrefix(t testing.TB, c redis.UniversalClient) string {
	t.Helper()
	prefix := freshPrefix()
	t.Cleanup(func() { deleteUnder(t, c, prefix) })
	return prefix
}

// keysUnder lists the keys that start with prefix (which has no glob
// characters): on a Redis Cluster, those of every master (keysByMaster).
func keysUnder(tb testing.TB, c redis.UniversalClient, prefix string) []string {
	tb.Helper()
	if cc, ok := c.(*redis.ClusterClient); ok {
		var keys []string
		for _, k := range keysByMaster(tb, cc, prefix) {
			keys = append(keys, k...)
		}
		return keys
	}
	keys, err := scanKeys(bg, c, prefix)
	if err != nil {
		tb.Fatalf("SCAN %s*: %v", prefix, err)
	}
	return keys
}

// scanKeys lists the keys of one server that start with prefix.
func scanKeys(ctx context.Context, c redis.Cmdable, prefix string) ([]string, error) {
	var keys []string
	iter := c.Scan(ctx, 0, prefix+"*", 1000).Iterator()
	for iter.Next(ctx) {
		keys = append(keys, iter.Val())
	}
	return keys, iter.Err()
}

// deleteUnder deletes every key that starts with prefix, with one UNLINK
// a key in a pipeline: a Redis Cluster refuses one command over keys of
// several slots.
func deleteUnder(tb testing.TB, c redis.UniversalClient, prefix string) {
	tb.Helper()
	keys := keysUnder(tb, c, prefix)
	_, err := c.Pipelined(bg, func(p redis.Pipeliner) error {
		for _, k := range keys {
			p.Unlink(bg, k)
		}
		return nil
	})
	if err != nil {
		tb.Errorf("deleting the test keys: %v", err)
	}
}

// newStore returns a store over c under a fresh prefix, whose keys are
// deleted when the test ends.
func newStore(tb testing.TB, c redis.UniversalClient) (*redisstore.Store, string) {
	tb.Helper()
	prefix := freshPrefix()
	s, err := redisstore.New(redisstore.Options{Client: c, Prefix: prefix})
	if err != nil {
		tb.Fatal(err)
	}
	tb.Cleanup(func() {
		s.Close()
		deleteUnder(tb, c, prefix)
	})
	return s, prefix
}

// suiteStores is the constructor the adaptertest suites get: each subtest
// gets a store over c under its own prefix, whose keys are deleted, and
// checked gone, when the subtest ends.
func suiteStores(c redis.UniversalClient) adaptertest.NewStore {
	return func(t *testing.T) (store.Store, func()) {
		prefix := freshPrefix()
		s, err := redisstore.New(redisstore.Options{Client: c, Prefix: prefix})
		if err != nil {
			t.Fatal(err)
		}
		return s, func() {
			s.Close()
			deleteUnder(t, c, prefix)
			if left := keysUnder(t, c, prefix); len(left) > 0 {
				t.Errorf("%d keys left after cleanup", len(left))
			}
		}
	}
}

// instanceStores is the constructor adaptertest.RunInstances gets: two
// stores over one fresh prefix, one over ca and one over cb (a client each,
// as two processes would have), whose keys are deleted when the subtest
// ends.
func instanceStores(ca, cb redis.UniversalClient) adaptertest.NewStores {
	return func(t *testing.T) (store.Store, store.Store, func()) {
		prefix := freshPrefix()
		a, b, closeBoth := testkit.StorePair(t, ca, cb, func(c redis.UniversalClient) (*redisstore.Store, error) {
			return redisstore.New(redisstore.Options{Client: c, Prefix: prefix})
		})
		return a, b, func() {
			closeBoth()
			deleteUnder(t, ca, prefix)
		}
	}
}
