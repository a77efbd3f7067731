package pgstore

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/dpopkit/dpop"
	"github.com/dpopkit/dpop/store"
	"github.com/jackc/pgx/v5"
)

// GetClient implements [store.ClientStore]: one SELECT by id, unless the
// client is in the store's client cache (Options.ClientCacheTTL).
func (s *Store) GetClient(ctx context.Context, id string) (*store.Client, error) {
	ctx, done, err := s.begin(ctx)
	if err != nil {
		return nil, err
	}
	defer done()
	if !validText(id) {
		return nil, store.ErrNotFound // SaveClient refuses such ids
	}
	if c, ok := s.clients.Get(id); ok {
		return c, nil
	}
	gen := s.clients.Generation()
	c := &store.Client{ID: id}
	var access, refresh int64
	err = s.pool.QueryRow(ctx, s.q.getClient, id).Scan(
		&c.SecretHash, &c.JWKS, &c.JWKSURI, &c.GrantTypes, &c.RedirectURIs, &c.Scopes, &c.Resources, &c.Introspect, &c.DPoPBound, &access, &refresh)
	if errors.Is(err, pgx.ErrNoRows) {
		return nil, store.ErrNotFound
	}
	if err != nil {
		return nil, fail(ctx, "get client", err)
	}
	c.AccessTokenTTL, c.RefreshTokenTTL = time.Duration(access), time.Duration(refresh)
	s.clients.PutRead(c, gen)
	return c, nil
}

// SaveClient implements [store.ClientStore]: one upsert by id (replacing
// the client's entry in this store's client cache). It refuses a
// client that [store.Client.Validate] refuses, and one with text PostgreSQL
// cannot hold (ErrInvalidText).
func (s *Store) SaveClient(ctx context.Context, c *store.Client) error {
	ctx, done, err := s.begin(ctx)
	if err != nil {
		return err
	}
	defer done()
	if err := c.Validate(); err != nil {
		return err
	}
	grants, ok1 := textArray(c.GrantTypes)
	uris, ok2 := textArray(c.RedirectURIs)
	scopes, ok3 := textArray(c.Scopes)
	resources, ok4 := textArray(c.Resources)
	if !ok1 || !ok2 || !ok3 || !ok4 || !validText(c.ID, c.JWKSURI) {
		return ErrInvalidText
	}
	// NULL for none; the JWK Set is bytea, so its bytes come back exactly
	// as given (a jsonb column would rewrite them).
	var secret, jwks []byte
	if len(c.SecretHash) > 0 {
		secret = c.SecretHash
	}
	if len(c.JWKS) > 0 {
		jwks = c.JWKS
	}
	_, err = s.pool.Exec(ctx, s.q.saveClient, c.ID, secret, grants, uris, scopes, resources, c.Introspect, c.DPoPBound,
		int64(c.AccessTokenTTL), int64(c.RefreshTokenTTL), jwks, c.JWKSURI)
	if err != nil {
		s.clients.Forget(c.ID) // the write may have landed
		return fail(ctx, "save client", err)
	}
	s.clients.Put(c)
	return nil
}

// SaveCode implements [store.CodeStore]: one upsert by hash.
func (s *Store) SaveCode(ctx context.Context, h store.TokenHash, code *store.AuthorizationCode) error {
	ctx, done, err := s.begin(ctx)
	if err != nil {
		return err
	}
	defer done()
	c := code
	resources, ok := textArray(c.Resources)
	if !ok || !validText(c.GrantID, c.ClientID, c.RedirectURI, c.Scope, c.Subject, c.CodeChallenge, c.CodeChallengeMethod, c.DPoPJKT) {
		return ErrInvalidText
	}
	_, err = s.pool.Exec(ctx, s.q.saveCode, h[:], c.GrantID, c.ClientID, c.RedirectURI, c.Scope, c.Subject,
		c.CodeChallenge, c.CodeChallengeMethod, c.DPoPJKT, resources, c.ExpiresAt)
	if err != nil {
		return fail(ctx, "save code", err)
	}
	return nil
}

// GetCode implements [store.CodeStore]: one SELECT by hash, without a lock,
// that changes nothing. It answers as ConsumeCode would: store.ErrNotFound
// for an unknown code, store.ErrExpired for an expired one, and the record
// with store.ErrConsumed once it was redeemed.
func (s *Store) GetCode(ctx context.Context, h store.TokenHash) (*store.AuthorizationCode, error) {
	return lookup(ctx, s, "get code", s.q.getCode, h, func(c *store.AuthorizationCode, st *rowState) []any {
		return append(codeFields(c), &st.consumed, &st.live)
	}, nil)
}

// ConsumeCode implements [store.CodeStore]: a code is redeemed once
// (RFC 6749 §4.1.2). One statement locks the code's row and marks it
// consumed only when the locked version is live and unconsumed, so of any
// number of concurrent callers exactly one gets the record without an error;
// the others, and later callers until the code expires, get the record with
// store.ErrConsumed. An expired code is store.ErrExpired, an unknown one
// store.ErrNotFound.
func (s *Store) ConsumeCode(ctx context.Context, h store.TokenHash) (*store.AuthorizationCode, error) {
	return lookup(ctx, s, "consume code", s.q.consumeCode, h, func(c *store.AuthorizationCode, st *rowState) []any {
		return append(codeFields(c), &st.consumed, &st.live, &st.won)
	}, errCodeNotConsumed)
}

// SavePushedRequest implements [store.PushedRequestStore] (RFC 9126 §2):
// one upsert by hash, which replaces any request under it, consumed or not.
// Text PostgreSQL cannot hold is refused with ErrInvalidText.
func (s *Store) SavePushedRequest(ctx context.Context, h store.TokenHash, r *store.PushedRequest) error {
	return s.exec(ctx, "save pushed request", validText(r.ClientID, r.Params, r.DPoPJKT), s.q.savePushed,
		h[:], r.ClientID, r.Params, r.DPoPJKT, r.ExpiresAt)
}

// GetPushedRequest implements [store.PushedRequestStore]: one SELECT by
// hash, without a lock, that changes nothing, with the answers of
// ConsumePushedRequest.
func (s *Store) GetPushedRequest(ctx context.Context, h store.TokenHash) (*store.PushedRequest, error) {
	return lookup(ctx, s, "get pushed request", s.q.getPushed, h, func(r *store.PushedRequest, st *rowState) []any {
		return append(pushedFields(r), &st.consumed, &st.live)
	}, nil)
}

// ConsumePushedRequest implements [store.PushedRequestStore] as
// ConsumeCode: one statement locks the row and marks it consumed only when
// the locked version is live and unconsumed, so of any number of concurrent
// callers exactly one gets the record without an error; the others, and
// later callers until it expires, get the record with store.ErrConsumed.
func (s *Store) ConsumePushedRequest(ctx context.Context, h store.TokenHash) (*store.PushedRequest, error) {
	return lookup(ctx, s, "consume pushed request", s.q.consumePushed, h, func(r *store.PushedRequest, st *rowState) []any {
		return append(pushedFields(r), &st.consumed, &st.live, &st.won)
	}, errPushedNotConsumed)
}

// SaveAccessToken implements [store.AccessTokenStore]: one upsert by hash.
func (s *Store) SaveAccessToken(ctx context.Context, h store.TokenHash, t *store.AccessToken) error {
	return s.saveToken(ctx, s.q.saveAccess, "save access token", h, *t)
}

// saveToken runs the upsert query of one token table; access and refresh
// token records have the same fields.
func (s *Store) saveToken(ctx context.Context, query, what string, h store.TokenHash, t store.AccessToken) error {
	audience, claims, ok := tokenColumns(t)
	return s.exec(ctx, what, ok, query, h[:], t.GrantID, t.ClientID, t.Subject, t.Scope, t.JKT, audience, claims,
		t.IssuedAt, t.ExpiresAt)
}

// tokenColumns checks the text of a token record and returns its audience
// and claims as the statements send them: the audience as a non-nil text[]
// (the column is NOT NULL), the claims as they are, or nil (NULL) when there
// are none. ok is false when a string cannot be stored (ErrInvalidText).
func tokenColumns(t store.AccessToken) (audience []string, claims []byte, ok bool) {
	audience, ok = textArray(t.Audience)
	if !ok || !validText(t.GrantID, t.ClientID, t.Subject, t.Scope, t.JKT) {
		return nil, nil, false
	}
	if len(t.Claims) > 0 {
		claims = t.Claims
	}
	return audience, claims, true
}

// GetAccessToken implements [store.AccessTokenStore]: one SELECT that also
// looks up the grant's revocation. It returns store.ErrNotFound for an
// unknown or revoked token, store.ErrExpired for an expired one and
// store.ErrRevoked when its grant was revoked.
func (s *Store) GetAccessToken(ctx context.Context, h store.TokenHash) (*store.AccessToken, error) {
	return lookup(ctx, s, "get access token", s.q.getAccess, h, func(t *store.AccessToken, st *rowState) []any {
		return append(tokenFields(t), &st.live, &st.revoked)
	}, nil)
}

// RevokeAccessToken implements [store.AccessTokenStore]: one DELETE;
// revoking an unknown token is not an error (RFC 7009 §2.2).
func (s *Store) RevokeAccessToken(ctx context.Context, h store.TokenHash) error {
	return s.exec(ctx, "revoke access token", true, s.q.revokeAccess, h[:])
}

// SaveRefreshToken implements [store.RefreshTokenStore]: one upsert by hash.
func (s *Store) SaveRefreshToken(ctx context.Context, h store.TokenHash, t *store.RefreshToken) error {
	return s.saveToken(ctx, s.q.saveRefresh, "save refresh token", h, store.AccessToken(*t))
}

// GetRefreshToken implements [store.RefreshTokenStore]: one SELECT that also
// looks up the grant's revocation, with the errors of GetAccessToken, and
// store.ErrConsumed with the record once the token was rotated, so that the
// caller can revoke the grant (RFC 9700 §4.14.2).
func (s *Store) GetRefreshToken(ctx context.Context, h store.TokenHash) (*store.RefreshToken, error) {
	return lookup(ctx, s, "get refresh token", s.q.getRefresh, h, func(t *store.RefreshToken, st *rowState) []any {
		return append(tokenFields((*store.AccessToken)(t)), &st.consumed, &st.live, &st.revoked)
	}, nil)
}

// RotateRefreshToken implements [store.RefreshTokenStore]: refresh token
// rotation (RFC 9700 §4.14.2) in one statement that locks old's row,
// consumes it only when the locked version is live, unconsumed and of a
// grant not revoked, and inserts next under h only if it did. Of any number
// of concurrent rotations of old exactly one succeeds and returns old's
// record; the others get old's record with store.ErrConsumed. An unknown,
// expired or revoked old gets the error GetRefreshToken would give, and
// nothing is stored.
//
// The same statement, when it consumed old, deletes the consumed tokens of
// old's grant beyond the store.ConsumedRefreshTokensPerGrant most recent
// (old itself, then the others by issued_at and hash), never an unconsumed
// one; they become unknown (store.ErrNotFound).
func (s *Store) RotateRefreshToken(ctx context.Context, old, h store.TokenHash, next *store.RefreshToken) (*store.RefreshToken, error) {
	ctx, done, err := s.begin(ctx)
	if err != nil {
		return nil, err
	}
	defer done()
	if old == h {
		return nil, errors.New("pgstore: a refresh token cannot be rotated into itself")
	}
	n := next
	audience, claims, ok := tokenColumns(store.AccessToken(*n))
	if !ok {
		return nil, ErrInvalidText
	}
	var (
		t  store.RefreshToken
		st rowState
	)
	err = s.pool.QueryRow(ctx, s.q.rotate, old[:], h[:], s.now(),
		n.GrantID, n.ClientID, n.Subject, n.Scope, n.JKT, audience, claims, n.IssuedAt, n.ExpiresAt).Scan(
		append(tokenFields((*store.AccessToken)(&t)), &st.consumed, &st.live, &st.revoked, &st.won)...)
	return answer(ctx, "rotate refresh token", err, &t, st, errTokenNotConsumed)
}

// RevokeRefreshToken implements [store.RefreshTokenStore]: one DELETE;
// revoking an unknown token is not an error (RFC 7009 §2.2).
func (s *Store) RevokeRefreshToken(ctx context.Context, h store.TokenHash) error {
	return s.exec(ctx, "revoke refresh token", true, s.q.revokeRefr, h[:])
}

// RevokeGrant implements [store.GrantStore] (RFC 6749 §4.1.2, RFC 9700
// §4.14.2, RFC 7009 §2.1): one upsert into revoked_grants that keeps the
// later of the old and new ends. Token lookups and rotations check that
// table in their own statement, so tokens saved before or after the call are
// refused with store.ErrRevoked until the revocation ends.
func (s *Store) RevokeGrant(ctx context.Context, grantID string, until time.Time) error {
	return s.exec(ctx, "revoke grant", validText(grantID), s.q.revokeGrant, grantID, until)
}

// beginReplay is begin for a call that records a replay entry for ttl,
// which must be positive.
func (s *Store) beginReplay(ctx context.Context, ttl time.Duration) (context.Context, func(), error) {
	if ttl <= 0 {
		return ctx, nil, errors.New("pgstore: replay entry needs a positive ttl")
	}
	return s.begin(ctx)
}

// Insert implements [dpop.ReplayCache] (RFC 9449 §11.1) with one INSERT ...
// ON CONFLICT DO UPDATE that renews only an expired entry: it reports true
// exactly when a row came back. The entry lives until Now()+ttl.
func (s *Store) Insert(ctx context.Context, key dpop.ReplayKey, ttl time.Duration) (bool, error) {
	ctx, done, err := s.beginReplay(ctx, ttl)
	if err != nil {
		return false, err
	}
	defer done()
	now := s.now()
	var inserted bool
	err = s.pool.QueryRow(ctx, s.q.replayInsert, key[:], now.Add(ttl), now).Scan(&inserted)
	switch {
	case errors.Is(err, pgx.ErrNoRows):
		return false, nil
	case err != nil:
		return false, fail(ctx, "insert replay entry", err)
	}
	return inserted, nil
}

// exec sends one statement that returns no rows, after begin's checks, and
// wraps its error as op's. valid is false when an argument holds text
// PostgreSQL cannot store: the call then fails with ErrInvalidText, after
// the checks of the store and the context as in every method, and sends
// nothing.
func (s *Store) exec(ctx context.Context, op string, valid bool, query string, args ...any) error {
	ctx, done, err := s.begin(ctx)
	if err != nil {
		return err
	}
	defer done()
	if !valid {
		return ErrInvalidText
	}
	if _, err := s.pool.Exec(ctx, query, args...); err != nil {
		return fail(ctx, op, err)
	}
	return nil
}

// lookup sends query, after begin's checks, with h and the time now: one of
// the statements that read, and perhaps consume, the row of a code or token
// by its hash. dest gives the scan destinations of the statement's columns,
// the record's and then the state's, and answer turns what was read into
// the method's result (op names the call in errors; notConsumed as for
// answer).
func lookup[T any](ctx context.Context, s *Store, op, query string, h store.TokenHash,
	dest func(rec *T, st *rowState) []any, notConsumed error) (*T, error) {
	ctx, done, err := s.begin(ctx)
	if err != nil {
		return nil, err
	}
	defer done()
	var (
		rec T
		st  rowState
	)
	err = s.pool.QueryRow(ctx, query, h[:], s.now()).Scan(dest(&rec, &st)...)
	return answer(ctx, op, err, &rec, st, notConsumed)
}

// rowState is what a statement reads besides a code's or token's record:
// whether the row is live (unexpired at Now), consumed, of a revoked grant,
// and whether the statement itself consumed it (ConsumeCode,
// RotateRefreshToken). What a statement does not read stays false.
type rowState struct {
	live, consumed, revoked, won bool
}

// The errors of a consuming statement that found a live, unconsumed row of a
// grant not revoked and yet did not consume it, which its SQL rules out.
var (
	errCodeNotConsumed   = errors.New("pgstore: consume code: a live code was not consumed")
	errTokenNotConsumed  = errors.New("pgstore: rotate refresh token: a live token was not consumed")
	errPushedNotConsumed = errors.New("pgstore: consume pushed request: a live request was not consumed")
)

// answer turns what a statement read of one code or token row into the
// record and error the store contract promises: err is the error of
// QueryRow's Scan (wrapped as op's), rec the record scanned and st the row's
// state. No row is store.ErrNotFound; a row the statement consumed is the
// record; otherwise an expired row is store.ErrExpired, a consumed one the
// record with store.ErrConsumed, one of a revoked grant store.ErrRevoked.
// notConsumed is nil for a plain lookup, which answers the record for any
// other row; for a consuming statement it is the error for a row it should
// have consumed.
func answer[T any](ctx context.Context, op string, err error, rec *T, st rowState, notConsumed error) (*T, error) {
	switch {
	case errors.Is(err, pgx.ErrNoRows):
		return nil, store.ErrNotFound
	case err != nil:
		return nil, fail(ctx, op, err)
	case st.won:
		return rec, nil
	case !st.live:
		return nil, store.ErrExpired
	case st.consumed:
		return rec, store.ErrConsumed
	case st.revoked:
		return nil, store.ErrRevoked
	case notConsumed != nil:
		return nil, notConsumed
	}
	return rec, nil
}

// codeFields are the scan destinations of a code's columns, in the order
// the code statements select them.
func codeFields(c *store.AuthorizationCode) []any {
	return []any{&c.GrantID, &c.ClientID, &c.RedirectURI, &c.Scope, &c.Subject, &c.CodeChallenge,
		&c.CodeChallengeMethod, &c.DPoPJKT, &c.Resources, &c.ExpiresAt}
}

// pushedFields are the scan destinations of a pushed request's columns, in
// the order its statements select them.
func pushedFields(r *store.PushedRequest) []any {
	return []any{&r.ClientID, &r.Params, &r.DPoPJKT, &r.ExpiresAt}
}

// tokenFields are the scan destinations of a token's columns, in the order
// the token statements select them; access and refresh tokens have the same
// fields.
func tokenFields(t *store.AccessToken) []any {
	return []any{&t.GrantID, &t.ClientID, &t.Subject, &t.Scope, &t.JKT, &t.Audience, &t.Claims, &t.IssuedAt, &t.ExpiresAt}
}

// DeleteExpired deletes every expired row (codes, pushed requests, tokens,
// ended grant revocations, replay entries) in statements of at most Options.CleanupBatch
// rows, up to 100 statements per table, and returns how many rows it
// deleted. The background cleanup calls it; run it yourself when
// Options.CleanupInterval is negative.
func (s *Store) DeleteExpired(ctx context.Context) (int64, error) {
	_, done, err := s.begin(ctx)
	if err != nil {
		return 0, err
	}
	done()
	return s.deleteExpired(ctx, ctx)
}

// deleteExpired is DeleteExpired without the closed check, for the
// background loop, which Close stops through ctx. QueryTimeout bounds each
// statement rather than the whole run.
// Statements run under stmtCtx and are checked for between under ctx: the
// cleanup loop lets a statement it has sent finish (bounded by QueryTimeout)
// when the store is closed, since a statement cancelled on the client side
// may still run on the server after Close returned.
func (s *Store) deleteExpired(ctx, stmtCtx context.Context) (int64, error) {
	now := s.now()
	var total int64
	for _, table := range []string{"replay", "access_tokens", "codes", "pushed_requests", "refresh_tokens", "revoked_grants"} {
		for range maxBatchesPerRun {
			if err := ctx.Err(); err != nil {
				return total, fmt.Errorf("pgstore: delete expired: %w", err)
			}
			sctx, done := s.statementContext(stmtCtx)
			tag, err := s.pool.Exec(sctx, s.q.cleanup[table], now, s.batch)
			done()
			if err != nil {
				return total, fail(sctx, "delete expired "+table, err)
			}
			total += tag.RowsAffected()
			if tag.RowsAffected() < int64(s.batch) {
				break
			}
		}
	}
	return total, nil
}

// maxCleanupRun bounds one run of the cleanup loop, which Close waits for.
const maxCleanupRun = 30 * time.Second

// cleanupLoop runs DeleteExpired every interval until ctx ends.
func (s *Store) cleanupLoop(ctx context.Context, interval time.Duration) {
	defer close(s.done)
	t := time.NewTicker(interval)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
		// Close waits for a statement in flight rather than cancel it;
		// without QueryTimeout, a run is bounded here instead.
		stmtCtx, cancel := context.WithTimeout(context.WithoutCancel(ctx), maxCleanupRun)
		n, err := s.deleteExpired(ctx, stmtCtx)
		cancel()
		if err != nil && ctx.Err() == nil {
			s.log.Warn("pgstore: deleting expired rows failed", "schema", s.schema, "deleted", n, "error", err)
		}
		s.runs.Add(1)
	}
}
