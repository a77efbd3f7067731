package pgstore

import (
	"context"
	"errors"
	"strings"
	"sync"
	"time"

	"github.com/dpopkit/dpop"
	"github.com/dpopkit/dpop/store"
)

var _ store.AccessTokenIssuer = (*Store)(nil)

// saveAccessValues is the VALUES list of the access token upsert, which the
// combined statement replaces by a SELECT that yields a row only when the
// replay entry was inserted; its parameters move up by three, after those
// of the replay insert ($1 key, $2 expiry, $3 now).
const (
	saveAccessValues = "VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10)"
	saveAccessAfter  = `SELECT $4::bytea, $5::text, $6::text, $7::text, $8::text, $9::text, $10::text[], $11::bytea,
				$12::timestamptz, $13::timestamptz
			WHERE EXISTS (SELECT 1 FROM r)`
)

// issueQueries caches, by the statements they are built from, the combined
// statements of InsertAndSaveAccessToken ("" when they cannot be built).
var issueQueries sync.Map // [2]string{replayInsert, saveAccess} -> string

// issueQuery returns the one statement that inserts the replay entry as
// Insert does and, only when a row came back, upserts the access token as
// SaveAccessToken does: two data-modifying CTEs, the second reading the
// first's RETURNING. It is built from the store's own two statements, so
// that it keeps their semantics; "" when their text is not the expected
// one (the method then sends them one after the other).
func (s *Store) issueQuery() string {
	k := [2]string{s.q.replayInsert, s.q.saveAccess}
	if q, ok := issueQueries.Load(k); ok {
		return q.(string)
	}
	q := ""
	if strings.Count(k[1], saveAccessValues) == 1 && strings.HasSuffix(strings.TrimSpace(k[0]), "RETURNING true") {
		q = "WITH r AS (" + k[0] + "), t AS (" + strings.Replace(k[1], saveAccessValues, saveAccessAfter, 1) +
			") SELECT EXISTS (SELECT 1 FROM r)"
	}
	issueQueries.Store(k, q)
	return q
}

// InsertAndSaveAccessToken implements [store.AccessTokenIssuer]: the token
// endpoint's proof replay entry (RFC 9449 §11.1) and the access token
// issued for it (§6) in one statement, one round trip, within QueryTimeout.
// The replay insert is Insert's (an expired entry is renewed, a live one
// left alone, concurrent inserts of one key serialised on its primary key);
// the token row is written only when the insert returned a row, in the
// same transaction, so that of concurrent calls with one key exactly one
// saves, and a failure saves neither.
func (s *Store) InsertAndSaveAccessToken(ctx context.Context, key dpop.ReplayKey, ttl time.Duration, h store.TokenHash, t *store.AccessToken) (bool, error) {
	query := s.issueQuery()
	if query == "" {
		ok, err := s.Insert(ctx, key, ttl)
		if err != nil || !ok {
			return false, err
		}
		return true, s.SaveAccessToken(ctx, h, t)
	}
	ctx, done, err := s.begin(ctx)
	if err != nil {
		return false, err
	}
	defer done()
	if ttl <= 0 {
		return false, errors.New("pgstore: replay entry needs a positive ttl")
	}
	audience, claims, ok := tokenColumns(*t)
	if !ok {
		return false, ErrInvalidText
	}
	now := s.now()
	var inserted bool
	if err := s.pool.QueryRow(ctx, query, key[:], now.Add(ttl), now,
		h[:], t.GrantID, t.ClientID, t.Subject, t.Scope, t.JKT, audience, claims, t.IssuedAt, t.ExpiresAt).Scan(&inserted); err != nil {
		return false, fail(ctx, "insert replay entry and save access token", err)
	}
	return inserted, nil
}
