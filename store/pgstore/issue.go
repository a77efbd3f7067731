package pgstore

import (
	"context"
	"time"

	"github.com/dpopkit/dpop"
	"github.com/dpopkit/dpop/store"
)

var _ store.AccessTokenIssuer = (*Store)(nil)

// InsertAndSaveAccessToken implements [store.AccessTokenIssuer]: the token
// endpoint's proof replay entry (RFC 9449 §11.1) and the access token
// issued for it (§6) in one statement, one round trip, within QueryTimeout.
// The replay insert is Insert's (an expired entry is renewed, a live one
// left alone, concurrent inserts of one key serialised on its primary key);
// the token row is written only when the insert returned a row, in the
// same transaction, so that of concurrent calls with one key exactly one
// saves, and a failure saves neither.
func (s *Store) InsertAndSaveAccessToken(ctx context.Context, key dpop.ReplayKey, ttl time.Duration, h store.TokenHash, t *store.AccessToken) (bool, error) {
	ctx, done, err := s.beginReplay(ctx, ttl)
	if err != nil {
		return false, err
	}
	defer done()
	audience, claims, ok := tokenColumns(*t)
	if !ok {
		return false, ErrInvalidText
	}
	now := s.now()
	var inserted bool
	if err := s.pool.QueryRow(ctx, s.q.issueAccess, key[:], now.Add(ttl), now,
		h[:], t.GrantID, t.ClientID, t.Subject, t.Scope, t.JKT, audience, claims, t.IssuedAt, t.ExpiresAt).Scan(&inserted); err != nil {
		return false, fail(ctx, "insert replay entry and save access token", err)
	}
	return inserted, nil
}
