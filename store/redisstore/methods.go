package redisstore

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/dpopkit/dpop"
	"github.com/dpopkit/dpop/store"
	"github.com/redis/go-redis/v9"
)

// GetClient implements [store.ClientStore] (RFC 6749 §2): one GET, unless
// the client is in the store's client cache (Options.ClientCacheTTL).
func (s *Store) GetClient(ctx context.Context, id string) (*store.Client, error) {
	if _, err := s.begin(ctx); err != nil {
		return nil, err
	}
	if c, ok := s.clients.Get(id); ok {
		return c, nil
	}
	gen := s.clients.Generation()
	data, err := s.c.Get(ctx, s.clientKey(id)).Bytes()
	switch {
	case errors.Is(err, redis.Nil):
		return nil, store.ErrNotFound
	case err != nil:
		return nil, fail(ctx, "GetClient", err)
	}
	c, err := decodeClient(data)
	if err != nil {
		return nil, err
	}
	s.clients.PutRead(c, gen)
	return c, nil
}

// SaveClient implements [store.ClientStore]: one SET, without expiry,
// replacing any client with the same id (and its entry in this store's
// client cache). It refuses a client that
// [store.Client.Validate] refuses.
func (s *Store) SaveClient(ctx context.Context, c *store.Client) error {
	if _, err := s.begin(ctx); err != nil {
		return err
	}
	if err := c.Validate(); err != nil {
		return err
	}
	data, err := encodeClient(c)
	if err != nil {
		return fmt.Errorf("redisstore: SaveClient: %w", err)
	}
	if err := s.c.Set(ctx, s.clientKey(c.ID), data, 0).Err(); err != nil {
		s.clients.Forget(c.ID) // the write may have landed
		return fail(ctx, "SaveClient", err)
	}
	s.clients.Put(c)
	return nil
}

// put stores a framed record under key until exp (SET with PXAT); a record
// already expired is not stored, and whatever key held is deleted.
func (s *Store) put(ctx context.Context, op, key string, now, exp time.Time, grant string, record []byte) error {
	expMs := exp.UnixMilli()
	var err error
	if expMs <= now.UnixMilli() {
		err = s.c.Del(ctx, key).Err()
	} else {
		err = s.c.SetArgs(ctx, key, frame(expMs, grant, record), redis.SetArgs{ExpireAt: time.UnixMilli(expMs)}).Err()
	}
	if err != nil {
		return fail(ctx, op, err)
	}
	return nil
}

// SaveCode implements [store.CodeStore] (RFC 6749 §4.1.2): one SET with
// PXAT code.ExpiresAt.
func (s *Store) SaveCode(ctx context.Context, h store.TokenHash, code *store.AuthorizationCode) error {
	now, err := s.begin(ctx)
	if err != nil {
		return err
	}
	data, err := encodeCode(code)
	if err != nil {
		return fmt.Errorf("redisstore: SaveCode: %w", err)
	}
	return s.put(ctx, "SaveCode", s.codeKey(h), now, code.ExpiresAt, "", data)
}

// GetCode implements [store.CodeStore]: the lookup script of ConsumeCode
// without the marking, so it changes nothing. An unknown code is
// store.ErrNotFound, an expired one store.ErrExpired, and a redeemed one is
// returned with store.ErrConsumed.
func (s *Store) GetCode(ctx context.Context, h store.TokenHash) (*store.AuthorizationCode, error) {
	return lookup(ctx, s, "GetCode", lookupScript, s.codeKey(h), "", decodeCode)
}

// ConsumeCode implements [store.CodeStore]: one script reads the code and
// marks it consumed, so of any number of concurrent calls, on any number of
// instances, exactly one gets the record without an error. The consumed
// code stays until it expires; later calls get it with store.ErrConsumed,
// so that the caller can revoke its grant (RFC 6749 §4.1.2).
func (s *Store) ConsumeCode(ctx context.Context, h store.TokenHash) (*store.AuthorizationCode, error) {
	return lookup(ctx, s, "ConsumeCode", consumeScript, s.codeKey(h), "", decodeCode)
}

// SavePushedRequest implements [store.PushedRequestStore] (RFC 9126 §2):
// one SET with PXAT r.ExpiresAt, as SaveCode.
func (s *Store) SavePushedRequest(ctx context.Context, h store.TokenHash, r *store.PushedRequest) error {
	now, err := s.begin(ctx)
	if err != nil {
		return err
	}
	data, err := encodePushed(r)
	if err != nil {
		return fmt.Errorf("redisstore: SavePushedRequest: %w", err)
	}
	return s.put(ctx, "SavePushedRequest", s.pushedKey(h), now, r.ExpiresAt, "", data)
}

// GetPushedRequest implements [store.PushedRequestStore]: the lookup script
// of GetCode, which changes nothing. A consumed request is returned with
// store.ErrConsumed.
func (s *Store) GetPushedRequest(ctx context.Context, h store.TokenHash) (*store.PushedRequest, error) {
	return lookup(ctx, s, "GetPushedRequest", lookupScript, s.pushedKey(h), "", decodePushed)
}

// ConsumePushedRequest implements [store.PushedRequestStore]: the script of
// ConsumeCode reads the request and marks it consumed in one step, so of any
// number of concurrent calls, on any number of instances, exactly one gets
// the record without an error; the others, and later calls until the
// request expires, get it with store.ErrConsumed.
func (s *Store) ConsumePushedRequest(ctx context.Context, h store.TokenHash) (*store.PushedRequest, error) {
	return lookup(ctx, s, "ConsumePushedRequest", consumeScript, s.pushedKey(h), "", decodePushed)
}

// SaveAccessToken implements [store.AccessTokenStore]: one SET with PXAT
// t.ExpiresAt.
func (s *Store) SaveAccessToken(ctx context.Context, h store.TokenHash, t *store.AccessToken) error {
	return s.saveToken(ctx, "SaveAccessToken", s.accessKey(h), t)
}

// saveToken is SaveAccessToken and SaveRefreshToken, whose records have the
// same fields: it stores t under key until t.ExpiresAt.
func (s *Store) saveToken(ctx context.Context, op, key string, t *store.AccessToken) error {
	now, err := s.begin(ctx)
	if err != nil {
		return err
	}
	data, err := encodeToken(*t)
	if err != nil {
		return fmt.Errorf("redisstore: %s: %w", op, err)
	}
	return s.put(ctx, op, key, now, t.ExpiresAt, t.GrantID, data)
}

// GetAccessToken implements [store.AccessTokenStore]: one script reads the
// token and the revocation of its grant together, so that a token is never
// returned after RevokeGrant of its grant has returned.
func (s *Store) GetAccessToken(ctx context.Context, h store.TokenHash) (*store.AccessToken, error) {
	return lookup(ctx, s, "GetAccessToken", lookupScript, s.accessKey(h), s.grantPrefix(accessTag(h)), s.decoded.access)
}

// RevokeAccessToken implements [store.AccessTokenStore] (RFC 7009 §2.1): one
// DEL; an unknown token is not an error (RFC 7009 §2.2).
func (s *Store) RevokeAccessToken(ctx context.Context, h store.TokenHash) error {
	return s.del(ctx, "RevokeAccessToken", s.accessKey(h))
}

// del deletes key, after begin's checks: one DEL, of a key that may not
// exist.
func (s *Store) del(ctx context.Context, op, key string) error {
	if _, err := s.begin(ctx); err != nil {
		return err
	}
	_, err := s.durable(ctx, key, func(c redis.Cmdable, _ bool) redis.Cmder { return c.Del(ctx, key) })
	if err != nil {
		return fail(ctx, op, err)
	}
	return nil
}

// SaveRefreshToken implements [store.RefreshTokenStore]: one SET with PXAT
// t.ExpiresAt.
func (s *Store) SaveRefreshToken(ctx context.Context, h store.TokenHash, t *store.RefreshToken) error {
	return s.saveToken(ctx, "SaveRefreshToken", s.refreshKey(h), (*store.AccessToken)(t))
}

// GetRefreshToken implements [store.RefreshTokenStore]: one script reads the
// token and its grant's revocation together. A rotated token is returned
// with store.ErrConsumed until it expires (RFC 9700 §4.14.2).
func (s *Store) GetRefreshToken(ctx context.Context, h store.TokenHash) (*store.RefreshToken, error) {
	return lookup(ctx, s, "GetRefreshToken", lookupScript, s.refreshKey(h), s.grantPrefix(refreshTag), decodeRefresh)
}

// RotateRefreshToken implements [store.RefreshTokenStore] (RFC 9700
// §4.14.2): one script checks old (expiry, consumed, grant revocation),
// marks it consumed, stores next under h, and records old in its grant's
// list of consumed tokens, deleting the consumed tokens beyond the
// store.ConsumedRefreshTokensPerGrant most recent. Every key it touches
// carries the refresh tag, so the script runs in one slot of a Redis
// Cluster.
func (s *Store) RotateRefreshToken(ctx context.Context, old, h store.TokenHash, next *store.RefreshToken) (*store.RefreshToken, error) {
	now, err := s.begin(ctx)
	if err != nil {
		return nil, err
	}
	if old == h {
		return nil, errors.New("redisstore: a refresh token cannot be rotated into itself")
	}
	data, err := encodeToken(store.AccessToken(*next))
	if err != nil {
		return nil, fmt.Errorf("redisstore: RotateRefreshToken: %w", err)
	}
	expMs := next.ExpiresAt.UnixMilli()
	status, rec, err := s.runLookup(ctx, "RotateRefreshToken", rotateScript, true, []string{s.refreshKey(old), s.refreshKey(h)},
		s.grantPrefix(refreshTag), now.UnixMilli(), frame(expMs, next.GrantID, data), expMs,
		s.consumedPrefix(), store.ConsumedRefreshTokensPerGrant)
	if err != nil {
		return nil, err
	}
	return result(status, rec, decodeRefresh)
}

// RevokeRefreshToken implements [store.RefreshTokenStore] (RFC 7009 §2.1):
// one DEL; an unknown token is not an error (RFC 7009 §2.2).
func (s *Store) RevokeRefreshToken(ctx context.Context, h store.TokenHash) error {
	return s.del(ctx, "RevokeRefreshToken", s.refreshKey(h))
}

// RevokeGrant implements [store.GrantStore] (RFC 6749 §4.1.2, RFC 7009 §2.1,
// RFC 9700 §4.14.2): it records, in one pipeline, a copy of the revocation
// beside each group of access tokens and beside the refresh tokens, each
// expiring at until (rounded up to the millisecond). A revocation recorded
// before that lasts longer is kept. A revocation whose end has passed
// records nothing.
func (s *Store) RevokeGrant(ctx context.Context, grantID string, until time.Time) error {
	now, err := s.begin(ctx)
	if err != nil {
		return err
	}
	untilMs := ceilUnixMilli(until)
	if grantID == "" || untilMs <= now.UnixMilli() {
		// Tokens without a grant are never checked against one.
		return nil
	}
	if err := s.durableEach(ctx, revokeScript, s.grantKeys(grantID), untilMs); err != nil {
		return fail(ctx, "RevokeGrant", err)
	}
	return nil
}

// beginReplay is begin for a call that records a replay entry for ttl,
// which must be positive.
func (s *Store) beginReplay(ctx context.Context, ttl time.Duration) (time.Time, error) {
	if ttl <= 0 {
		return time.Time{}, errors.New("redisstore: replay entry needs a positive ttl")
	}
	return s.begin(ctx)
}

// Insert implements [dpop.ReplayCache] (RFC 9449 §11.1): one SET NX with a
// relative expiry of ttl rounded up to the millisecond, so that of any
// number of concurrent inserts of key, on any number of instances, exactly
// one returns true. The entry is never dropped to make room as long as
// Redis runs with maxmemory-policy noeviction (see the package
// documentation).
func (s *Store) Insert(ctx context.Context, key dpop.ReplayKey, ttl time.Duration) (bool, error) {
	if _, err := s.beginReplay(ctx, ttl); err != nil {
		return false, err
	}
	k, exp := s.replayKey(key), time.Duration(ceilMillis(ttl))*time.Millisecond
	cmd, err := s.durable(ctx, k, func(c redis.Cmdable, _ bool) redis.Cmder {
		return c.SetNX(ctx, k, "1", exp)
	})
	if err != nil {
		return false, fail(ctx, "Insert", err)
	}
	return cmd.(*redis.BoolCmd).Val(), nil
}

func decodeRefresh(rec string) (*store.RefreshToken, error) {
	t, err := decodeToken(rec, "refresh token")
	if err != nil {
		return nil, err
	}
	r := store.RefreshToken(t)
	return &r, nil
}

// lookup runs sc, lookupScript or consumeScript, on key after begin's
// checks, with grants, the prefix of the revocation keys beside the record
// ("" for codes: no grant check), and the time now, and decodes its answer
// as result does. consumeScript, which writes, runs as a durable write
// (Options.Replicas).
func lookup[V any](ctx context.Context, s *Store, op string, sc *redis.Script, key, grants string,
	decode func(string) (*V, error)) (*V, error) {
	now, err := s.begin(ctx)
	if err != nil {
		return nil, err
	}
	status, rec, err := s.runLookup(ctx, op, sc, sc != lookupScript, []string{key}, grants, now.UnixMilli())
	if err != nil {
		return nil, err
	}
	return result(status, rec, decode)
}

// result turns a script's answer into the record and error the store
// contract promises.
func result[V any](status, rec string, decode func(string) (*V, error)) (*V, error) {
	switch status {
	case "":
		return nil, store.ErrNotFound
	case statusExpired:
		return nil, store.ErrExpired
	case statusRevoked:
		return nil, store.ErrRevoked
	case statusOK, statusConsumed:
		v, err := decode(rec)
		if err != nil {
			return nil, err
		}
		if status == statusConsumed {
			return v, store.ErrConsumed
		}
		return v, nil
	}
	return nil, fmt.Errorf("redisstore: unexpected script status %q", status)
}
