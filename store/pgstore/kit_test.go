package pgstore

import (
	"testing"
	"time"

	"github.com/dpopkit/dpop"
	"github.com/dpopkit/dpop/adaptertest"
	"github.com/dpopkit/dpop/internal/testkit"
	"github.com/dpopkit/dpop/internal/testkit/dpoptest"
	"github.com/dpopkit/dpop/store"
	"github.com/jackc/pgx/v5/pgxpool"
)

// TestInstances: two instances of a service over one schema (a fresh one
// for each subtest) act as one service. Each instance has a pool of its
// own, as two processes would.
func TestInstances(t *testing.T) {
	pa, pb := testPool(t), testPool(t)
	adaptertest.RunInstances(t, func(t *testing.T) (store.Store, store.Store, func()) {
		schema := freshSchema(t, pa)
		return testkit.StorePair(t, pa, pb, func(pool *pgxpool.Pool) (*Store, error) {
			return New(bg, Options{Pool: pool, Schema: schema})
		})
	})
}

// TestKitOutage takes the database away from a running instance: the token
// endpoint and the API answer 503 server_error within a bounded time, never
// 200 or 401, and the same store serves again once the database is back.
func TestKitOutage(t *testing.T) {
	rawURL := databaseURL(t)
	schema := freshSchema(t, testPool(t))
	p, proxied := newProxy(t, rawURL)
	const timeout = time.Second
	st := openStore(t, newPool(t, proxied, nil), schema, func(o *Options) { o.QueryTimeout = timeout })
	testkit.RegisterClients(t, st)
	k := testkit.New(t, st, testkit.Options{})
	signer := dpoptest.NewSigner(t)
	r := k.ClientCredentials(t, signer)
	testkit.WantStatus(t, "token request", r, 200, "")
	tok := r.Str("access_token")
	testkit.WantStatus(t, "API call", k.APIWith(t, signer, tok), 200, "")

	for _, tc := range []struct {
		name  string
		mode  proxyMode
		bound time.Duration
	}{
		{"ClosedPort", portClosed, 3 * time.Second},
		{"Refused", refuse, 3 * time.Second},
		{"Partition", blackhole, timeout + 2*time.Second},
	} {
		t.Run(tc.name, func(t *testing.T) {
			must(t, p.set(tc.mode))
			for _, r := range []testkit.Reply{k.ClientCredentials(t, signer), k.APIWith(t, signer, tok)} {
				testkit.WantStatus(t, "request with the database unreachable", r, 503, string(dpop.CodeServerError))
				if r.Took > tc.bound {
					t.Errorf("the refusal took %v, more than %v", r.Took, tc.bound)
				}
			}
			must(t, p.set(forward))
			var again testkit.Reply
			waitFor(t, 10*time.Second, func() bool {
				again = k.ClientCredentials(t, signer)
				return again.Status == 200
			}, "the token endpoint answers again")
			testkit.WantStatus(t, "API call with a new token", k.APIWith(t, signer, again.Str("access_token")), 200, "")
			testkit.WantStatus(t, "API call with the token from before the outage", k.APIWith(t, signer, tok), 200, "")
		})
	}
}
