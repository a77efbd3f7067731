package pgstore

import (
	"testing"
	"time"

	"github.com/dpopkit/dpop/internal/testkit"
	"github.com/dpopkit/dpop/store"
)

// TestClientCache: Options.ClientCacheTTL keeps clients as
// testkit.ClientCache requires.
func TestClientCache(t *testing.T) {
	pool := testPool(t)
	schema := freshSchema(t, pool)
	testkit.ClientCache(t, func(t *testing.T, ttl time.Duration, now func() time.Time) store.ClientStore {
		return openStore(t, pool, schema, func(o *Options) { o.ClientCacheTTL, o.Now = ttl, now })
	})
}
