package redisstore

import (
	"context"
	"fmt"
	"time"

	"github.com/dpopkit/dpop"
	"github.com/dpopkit/dpop/store"
	"github.com/redis/go-redis/v9"
)

var _ store.AccessTokenIssuer = (*Store)(nil)

// insertAndSaveScript records the replay entry KEYS[1] for ARGV[1] ms (SET
// NX PX, as Insert) and, only when it was new, stores the framed access
// token ARGV[2] under KEYS[2] until ARGV[3] (Unix ms; "0": already expired,
// whatever KEYS[2] held is deleted, as put does). It returns 1 when the
// entry was new, 0 when it was there.
var insertAndSaveScript = redis.NewScript(`
if not redis.call('SET', KEYS[1], '1', 'NX', 'PX', ARGV[1]) then return 0 end
if ARGV[3] == '0' then
  redis.call('DEL', KEYS[2])
else
  redis.call('SET', KEYS[2], ARGV[2], 'PXAT', ARGV[3])
end
return 1
`)

// InsertAndSaveAccessToken implements [store.AccessTokenIssuer]: the token
// endpoint's proof replay entry (RFC 9449 §11.1) and the access token
// issued for it (§6) in one round trip. On a single server (or Sentinel:
// a *redis.Client) one script sets the entry with NX and, when it was new,
// the token, as Insert and SaveAccessToken do; with Options.Replicas it is
// followed by WAIT as Insert is, and a write too few replicas acknowledged
// fails with ErrNotReplicated (the entry and the token may then be on the
// master: the proof stays spent, the token is never returned). On a
// Cluster the entry and the token lie in different slots, and a Ring or
// another client may send them to different servers, so there the two are
// Insert then, for a new entry, SaveAccessToken: still exactly one of
// concurrent calls with one key saves, but a failed save after the insert
// returns true with the error.
func (s *Store) InsertAndSaveAccessToken(ctx context.Context, key dpop.ReplayKey, ttl time.Duration, h store.TokenHash, t *store.AccessToken) (bool, error) {
	if _, ok := s.c.(*redis.Client); !ok {
		inserted, err := s.Insert(ctx, key, ttl)
		if err != nil || !inserted {
			return false, err
		}
		return true, s.SaveAccessToken(ctx, h, t)
	}
	now, err := s.beginReplay(ctx, ttl)
	if err != nil {
		return false, err
	}
	data, err := encodeToken(*t)
	if err != nil {
		return false, fmt.Errorf("redisstore: InsertAndSaveAccessToken: %w", err)
	}
	expMs := t.ExpiresAt.UnixMilli()
	var record string
	if expMs <= now.UnixMilli() {
		expMs = 0
	} else {
		record = frame(expMs, t.GrantID, data)
	}
	rk := s.replayKey(key)
	keys := []string{rk, s.accessKey(h)}
	cmd, err := s.durable(ctx, rk, scriptWriter(ctx, insertAndSaveScript, keys, []any{ceilMillis(ttl), record, expMs}))
	if err != nil {
		return false, fail(ctx, "InsertAndSaveAccessToken", err)
	}
	n, err := cmd.(*redis.Cmd).Int64()
	if err != nil {
		return false, fail(ctx, "InsertAndSaveAccessToken", err)
	}
	return n == 1, nil
}
