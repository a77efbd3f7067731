package pgstore

import (
	"errors"
	"fmt"
	"sync"
	"testing"
	"time"

	"github.com/dpopkit/dpop/store"
	"github.com/jackc/pgx/v5"
)

// TestGetCode: GetCode answers as ConsumeCode would, and consumes nothing.
func TestGetCode(t *testing.T) {
	pool := testPool(t)
	schema := freshSchema(t, pool)
	s := openStore(t, pool, schema, nil)
	late := openStore(t, pool, schema, func(o *Options) { o.Now = func() time.Time { return time.Now().Add(2 * time.Hour) } })
	exp := time.Now().Add(time.Hour).Truncate(time.Microsecond)
	h := store.HashToken("code")
	want := &store.AuthorizationCode{GrantID: "g", ClientID: "c", RedirectURI: "https://app.example/cb",
		CodeChallenge: "ch", CodeChallengeMethod: "S256", DPoPJKT: "jkt", ExpiresAt: exp}
	must(t, s.SaveCode(bg, h, want))

	for range 3 {
		got, err := s.GetCode(bg, h)
		if err != nil || got == nil || *got != (store.AuthorizationCode{GrantID: "g", ClientID: "c", RedirectURI: "https://app.example/cb",
			CodeChallenge: "ch", CodeChallengeMethod: "S256", DPoPJKT: "jkt", ExpiresAt: got.ExpiresAt}) || !got.ExpiresAt.Equal(exp) {
			t.Fatalf("GetCode of a live code: %+v, %v", got, err)
		}
	}
	if got, err := s.ConsumeCode(bg, h); err != nil || got == nil || got.GrantID != "g" {
		t.Fatalf("ConsumeCode after GetCode: %+v, %v (GetCode consumed the code)", got, err)
	}
	got, err := s.GetCode(bg, h)
	if !errors.Is(err, store.ErrConsumed) || got == nil || got.GrantID != "g" {
		t.Fatalf("GetCode of a redeemed code: %+v, %v, want the record and ErrConsumed", got, err)
	}
	if _, err := late.GetCode(bg, h); !errors.Is(err, store.ErrExpired) {
		t.Fatalf("GetCode of an expired code: %v, want ErrExpired", err)
	}
	if _, err := s.GetCode(bg, store.HashToken("unknown")); !errors.Is(err, store.ErrNotFound) {
		t.Fatalf("GetCode of an unknown code: %v, want ErrNotFound", err)
	}

	// An unconsumed code past its expiry is ErrExpired, and stays
	// unconsumed for a clock that finds it live.
	h2 := store.HashToken("code-2")
	must(t, s.SaveCode(bg, h2, want))
	if _, err := late.GetCode(bg, h2); !errors.Is(err, store.ErrExpired) {
		t.Fatalf("GetCode of an expired code: %v, want ErrExpired", err)
	}
	if _, err := s.ConsumeCode(bg, h2); err != nil {
		t.Fatalf("ConsumeCode after GetCode: %v", err)
	}
}

// rotateChain saves a refresh token of grant and rotates it n times; it
// returns the n+1 hashes, oldest first. Token i is issued i seconds after
// the first, as the handlers issue them.
func rotateChain(t *testing.T, s *Store, grant string, n int) []store.TokenHash {
	t.Helper()
	base := time.Now().Truncate(time.Microsecond)
	tok := func(i int) *store.RefreshToken {
		return &store.RefreshToken{GrantID: grant, ClientID: "c", Subject: "s",
			IssuedAt: base.Add(time.Duration(i) * time.Second), ExpiresAt: base.Add(time.Hour)}
	}
	hs := make([]store.TokenHash, n+1)
	for i := range hs {
		hs[i] = store.HashToken(fmt.Sprint(grant, "-", i))
	}
	must(t, s.SaveRefreshToken(bg, hs[0], tok(0)))
	for i := 1; i <= n; i++ {
		prev, err := s.RotateRefreshToken(bg, hs[i-1], hs[i], tok(i))
		if err != nil || prev == nil || prev.GrantID != grant {
			t.Fatalf("rotation %d: %+v, %v", i, prev, err)
		}
	}
	return hs
}

// consumedOf counts the consumed and the live refresh tokens of grant.
func consumedOf(t *testing.T, s *Store, grant string) (consumed, live int) {
	t.Helper()
	err := s.pool.QueryRow(bg, "SELECT count(*) FILTER (WHERE consumed), count(*) FILTER (WHERE NOT consumed) FROM "+
		pgx.Identifier{s.schema, "refresh_tokens"}.Sanitize()+" WHERE grant_id = $1", grant).Scan(&consumed, &live)
	must(t, err)
	return consumed, live
}

// TestConsumedRefreshTokensBound: rotating one grant 30 times keeps its 8
// most recently consumed tokens (ErrConsumed with the record), forgets the
// older ones (ErrNotFound, also for rotation) and leaves the live one
// working; another grant's consumed tokens are its own.
func TestConsumedRefreshTokensBound(t *testing.T) {
	pool := testPool(t)
	schema := freshSchema(t, pool)
	s := openStore(t, pool, schema, nil)
	const n, keep = 30, store.ConsumedRefreshTokensPerGrant
	chain := rotateChain(t, s, "g", n)
	other := rotateChain(t, s, "other", 3)

	for i, h := range chain[:n] {
		got, err := s.GetRefreshToken(bg, h)
		if i >= n-keep {
			if !errors.Is(err, store.ErrConsumed) || got == nil || got.GrantID != "g" {
				t.Errorf("consumed token %d of %d: %+v, %v, want its record and ErrConsumed", i, n, got, err)
			}
			continue
		}
		if !errors.Is(err, store.ErrNotFound) {
			t.Errorf("consumed token %d of %d: %v, want ErrNotFound (forgotten)", i, n, err)
		}
		next := store.HashToken("reuse")
		if _, err := s.RotateRefreshToken(bg, h, next, &store.RefreshToken{GrantID: "g", ExpiresAt: time.Now().Add(time.Hour)}); !errors.Is(err, store.ErrNotFound) {
			t.Errorf("rotating forgotten token %d: %v, want ErrNotFound", i, err)
		}
		if _, err := s.GetRefreshToken(bg, next); !errors.Is(err, store.ErrNotFound) {
			t.Errorf("rotating forgotten token %d stored a token: %v", i, err)
		}
	}
	for i, h := range other[:3] {
		if _, err := s.GetRefreshToken(bg, h); !errors.Is(err, store.ErrConsumed) {
			t.Errorf("consumed token %d of another grant: %v, want ErrConsumed", i, err)
		}
	}
	if got, err := s.GetRefreshToken(bg, chain[n]); err != nil || got.GrantID != "g" {
		t.Fatalf("live token: %+v, %v", got, err)
	}
	if c, l := consumedOf(t, s, "g"); c != keep || l != 1 {
		t.Fatalf("grant g holds %d consumed and %d live tokens, want %d and 1", c, l, keep)
	}
	if got := countRows(t, pool, schema, "refresh_tokens"); got != keep+1+4 {
		t.Fatalf("%d refresh tokens, want %d", got, keep+1+4)
	}

	// The live token goes on rotating, and the window moves with it.
	next := store.HashToken("g-next")
	if _, err := s.RotateRefreshToken(bg, chain[n], next, &store.RefreshToken{GrantID: "g", IssuedAt: time.Now().Add(time.Hour), ExpiresAt: time.Now().Add(time.Hour)}); err != nil {
		t.Fatalf("rotating the live token: %v", err)
	}
	if _, err := s.GetRefreshToken(bg, chain[n-keep]); !errors.Is(err, store.ErrNotFound) {
		t.Errorf("the oldest kept token after one more rotation: %v, want ErrNotFound", err)
	}
	if _, err := s.GetRefreshToken(bg, chain[n]); !errors.Is(err, store.ErrConsumed) {
		t.Errorf("the token just rotated: %v, want ErrConsumed", err)
	}

	// The rotation finds the grant's tokens by an index.
	var idx int
	must(t, pool.QueryRow(bg, `SELECT count(*) FROM pg_indexes WHERE schemaname = $1 AND tablename = 'refresh_tokens'
		AND indexdef LIKE '%(grant_id, issued_at)%'`, schema).Scan(&idx))
	if idx != 1 {
		t.Errorf("%d indexes on refresh_tokens (grant_id, issued_at), want 1", idx)
	}
}

// TestConsumedBoundSparesLiveTokens: a consumed token saved again (live
// once more) is never deleted by the bound, even when it is the grant's
// oldest.
func TestConsumedBoundSparesLiveTokens(t *testing.T) {
	pool := testPool(t)
	s := openStore(t, pool, freshSchema(t, pool), nil)
	base := time.Now()
	tok := func(i int) *store.RefreshToken {
		return &store.RefreshToken{GrantID: "g", ClientID: "c", IssuedAt: base.Add(time.Duration(i) * time.Second), ExpiresAt: base.Add(time.Hour)}
	}
	first := store.HashToken("first")
	must(t, s.SaveRefreshToken(bg, first, tok(0)))
	prev := first
	for i := range 2 * store.ConsumedRefreshTokensPerGrant {
		next := store.HashToken(fmt.Sprint("t", i))
		_, err := s.RotateRefreshToken(bg, prev, next, tok(i+1))
		must(t, err)
		if i == 0 {
			must(t, s.SaveRefreshToken(bg, first, tok(0))) // live again
		}
		prev = next
	}
	if _, err := s.GetRefreshToken(bg, first); err != nil {
		t.Fatalf("a live token was deleted by the bound on consumed tokens: %v", err)
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
