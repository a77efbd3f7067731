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

// redisOptions returns the client options of the test server, with short
// timeouts so that a broken server fails a test instead of hanging it.
func redisOptions(tb testing.TB) *redis.Options {
	tb.Helper()
	u := os.Getenv(urlEnv)
	if u == "" {
		tb.Skipf("%s is not set: set it to a Redis server the tests may write to, e.g. %s=redis://127.0.0.1:6379/0", urlEnv, urlEnv)
	}
	opts, err := redis.ParseURL(u)
	if err != nil {
		tb.Fatalf("%s: %v", urlEnv, err)
	}
	opts.ContextTimeoutEnabled = true
	opts.DialTimeout = 2 * time.Second
	opts.ReadTimeout = 2 * time.Second
	opts.WriteTimeout = 2 * time.Second
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

// keysUnder lists the keys that start with prefix (which has no glob
// characters).
func keysUnder(tb testing.TB, c redis.UniversalClient, prefix string) []string {
	tb.Helper()
	var keys []string
	iter := c.Scan(bg, 0, prefix+"*", 1000).Iterator()
	for iter.Next(bg) {
		keys = append(keys, iter.Val())
	}
	if err := iter.Err(); err != nil {
		tb.Fatalf("SCAN %s*: %v", prefix, err)
	}
	return keys
}

// deleteUnder deletes every key that starts with prefix.
func deleteUnder(tb testing.TB, c redis.UniversalClient, prefix string) {
	tb.Helper()
	keys := keysUnder(tb, c, prefix)
	for len(keys) > 0 {
		n := min(len(keys), 500)
		if err := c.Unlink(bg, keys[:n]...).Err(); err != nil {
			tb.Errorf("deleting the test keys: %v", err)
			return
		}
		keys = keys[n:]
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
