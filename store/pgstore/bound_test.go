package pgstore

import (
	"fmt"
	"sync"
	"testing"
	"time"

	"github.com/dpopkit/dpop/internal/testkit"
	"github.com/dpopkit/dpop/store"
	"github.com/jackc/pgx/v5"
)

// consumedOf counts the consumed and the live refresh tokens of grant.
func consumedOf(t *testing.T, s *Store, grant string) (consumed, live int) {
	t.Helper()
	err := s.pool.QueryRow(bg, "SELECT count(*) FILTER (WHERE consumed), count(*) FILTER (WHERE NOT consumed) FROM "+
		pgx.Identifier{s.schema, "refresh_tokens"}.Sanitize()+" WHERE grant_id = $1", grant).Scan(&consumed, &live)
	must(t, err)
	return consumed, live
}

// TestConsumedRefreshTokensBound: what adaptertest's ChainBound cannot see
// from outside: after 30 rotations of one grant its rows are exactly its 8
// consumed tokens and its live one (the others are deleted, not hidden), and
// the rotation finds them by an index.
func TestConsumedRefreshTokensBound(t *testing.T) {
	pool := testPool(t)
	schema := freshSchema(t, pool)
	s := openStore(t, pool, schema, nil)
	const n, keep = 30, store.ConsumedRefreshTokensPerGrant
	exp := func(int) time.Time { return time.Now().Add(time.Hour) }
	chain := testkit.RotateChain(t, s, "g", n, exp)
	testkit.RotateChain(t, s, "other", 3, exp)

	if got, err := s.GetRefreshToken(bg, chain[n]); err != nil || got.GrantID != "g" {
		t.Fatalf("live token: %+v, %v", got, err)
	}
	if c, l := consumedOf(t, s, "g"); c != keep || l != 1 {
		t.Fatalf("grant g holds %d consumed and %d live tokens, want %d and 1", c, l, keep)
	}
	if got := countRows(t, pool, schema, "refresh_tokens"); got != keep+1+4 {
		t.Fatalf("%d refresh tokens, want %d", got, keep+1+4)
	}

	// The rotation finds the grant's tokens by an index.
	var idx int
	must(t, pool.QueryRow(bg, `SELECT count(*) FROM pg_indexes WHERE schemaname = $1 AND tablename = 'refresh_tokens'
		AND indexdef LIKE '%(grant_id, issued_at)%'`, schema).Scan(&idx))
	if idx != 1 {
		t.Errorf("%d indexes on refresh_tokens (grant_id, issued_at), want 1", idx)
	}
}

// TestConsumedBoundConcurrent: rotations of several tokens of one grant at
// once (each chain on its own goroutine, two instances) all succeed, none
// waits for another forever, no live token is lost, and the grant's next
// rotation brings it back to the bound.
func TestConsumedBoundConcurrent(t *testing.T) {
	rawURL := databaseURL(t)
	schema := freshSchema(t, testPool(t))
	stores := []*Store{
		openStore(t, newPool(t, rawURL, nil), schema, nil),
		openStore(t, newPool(t, rawURL, nil), schema, nil),
	}
	const chains, rounds = 6, 12
	base := time.Now()
	tok := func(i int) *store.RefreshToken {
		return &store.RefreshToken{GrantID: "g", ClientID: "c", IssuedAt: base.Add(time.Duration(i) * time.Millisecond), ExpiresAt: base.Add(time.Hour)}
	}
	heads := make([]store.TokenHash, chains)
	for c := range heads {
		heads[c] = store.HashToken(fmt.Sprint("head", c))
		must(t, stores[0].SaveRefreshToken(bg, heads[c], tok(0)))
	}
	var wg sync.WaitGroup
	errs := make(chan error, chains*rounds)
	for c := range chains {
		wg.Go(func() {
			s := stores[c%2]
			for r := 1; r <= rounds; r++ {
				next := store.HashToken(fmt.Sprint("c", c, "r", r))
				if _, err := s.RotateRefreshToken(bg, heads[c], next, tok(r*chains+c)); err != nil {
					errs <- fmt.Errorf("chain %d, round %d: %w", c, r, err)
					return
				}
				heads[c] = next
			}
		})
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Error(err)
	}
	for c, h := range heads {
		if _, err := stores[1].GetRefreshToken(bg, h); err != nil {
			t.Errorf("live token of chain %d: %v", c, err)
		}
	}
	consumed, live := consumedOf(t, stores[0], "g")
	if live != chains || consumed < store.ConsumedRefreshTokensPerGrant || consumed > store.ConsumedRefreshTokensPerGrant+chains-1 {
		t.Fatalf("after concurrent rotations: %d consumed and %d live, want %d live and %d to %d consumed",
			consumed, live, chains, store.ConsumedRefreshTokensPerGrant, store.ConsumedRefreshTokensPerGrant+chains-1)
	}
	_, err := stores[0].RotateRefreshToken(bg, heads[0], store.HashToken("last"), tok(chains*rounds+chains))
	must(t, err)
	if consumed, live := consumedOf(t, stores[0], "g"); consumed != store.ConsumedRefreshTokensPerGrant || live != chains {
		t.Fatalf("after one more rotation: %d consumed and %d live, want %d and %d", consumed, live, store.ConsumedRefreshTokensPerGrant, chains)
	}
}
