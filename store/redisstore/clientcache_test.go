package redisstore_test

import (
	"testing"
	"time"

	"github.com/dpopkit/dpop/internal/testkit"
	"github.com/dpopkit/dpop/store"
	"github.com/dpopkit/dpop/store/redisstore"
)

// TestClientCache: Options.ClientCacheTTL keeps clients as
// testkit.ClientCache requires.
func TestClientCache(t *testing.T) {
	c := newClient(t)
	prefix := cleanPrefix(t, c)
	testkit.ClientCache(t, func(t *testing.T, ttl time.Duration, now func() time.Time) store.ClientStore {
		s, err := redisstore.New(redisstore.Options{Client: c, Prefix: prefix, ClientCacheTTL: ttl, Now: now})
		must(t, err)
		return s
	})
}
