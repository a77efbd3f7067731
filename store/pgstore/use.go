package pgstore

import (
	"context"
	"time"

	"github.com/dpopkit/dpop"
	"github.com/dpopkit/dpop/store"
)

var _ store.AccessTokenUser = (*Store)(nil)

// useAccessSQL reads an access token as getAccess does ($1 its hash, $2
// now) and, when it is live, of a grant not revoked, and bound to $5,
// records the replay entry $3 until $4 as replayInsert does; the last
// column tells whether this statement recorded it.
const useAccessSQL = `WITH t AS MATERIALIZED (
		SELECT t.grant_id, t.client_id, t.subject, t.scope, t.jkt, t.audience, t.claims, t.issued_at, t.expires_at,
			t.expires_at > $now AS live, {revoked} AS revoked
		FROM {s}.access_tokens t WHERE t.hash = $1
	), ins AS (
		INSERT INTO {s}.replay AS r (key, expires_at)
		SELECT $3, $4 FROM t WHERE t.live AND NOT t.revoked AND t.jkt = $5::text
		ON CONFLICT (key) DO UPDATE SET expires_at = EXCLUDED.expires_at
		WHERE r.expires_at <= $now
		RETURNING true
	)
	SELECT grant_id, client_id, subject, scope, jkt, audience, claims, issued_at, expires_at, live, revoked,
		EXISTS (SELECT 1 FROM ins)
	FROM t`

// UseAccessToken implements [store.AccessTokenUser] (RFC 9449 §7.1,
// §11.1): one statement reads the token and its grant's revocation, as
// GetAccessToken does, and, when the token is live and bound to jkt,
// inserts the proof's replay entry as Insert does: one round trip.
func (s *Store) UseAccessToken(ctx context.Context, h store.TokenHash, jkt string, key dpop.ReplayKey, ttl time.Duration) (*store.AccessToken, bool, error) {
	ctx, done, err := s.beginReplay(ctx, ttl)
	if err != nil {
		return nil, false, err
	}
	defer done()
	now := s.now()
	var (
		t  store.AccessToken
		st rowState
	)
	err = s.pool.QueryRow(ctx, s.q.useAccess, h[:], now, key[:], now.Add(ttl), jkt).
		Scan(append(tokenFields(&t), &st.live, &st.revoked, &st.won)...)
	rec, err := answer(ctx, "use access token", err, &t, st, nil)
	if err != nil {
		return nil, false, err
	}
	return rec, st.won, nil
}
