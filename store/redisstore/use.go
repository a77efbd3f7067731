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

var _ store.AccessTokenUser = (*Store)(nil)

// useScript is lookupScript on an access token (KEYS[1]) that, when the
// token is live and bound to the key ARGV[3], records the replay entry
// KEYS[2] for ARGV[4] ms (SET NX PX). It answers {status, record, set}:
// set is 1 when this call recorded the entry. The binding is found in the
// record's JSON as the member "jkt":"ARGV[3]", compared as plain text: a
// record has one member jkt and no nested object, and a quote inside any
// string member is escaped, so the text can appear nowhere else. ARGV[3]
// is a key thumbprint (base64url, RFC 7638), never escaped.
var useScript = redis.NewScript(checkLive + `
if not string.find(rec, '"jkt":"' .. ARGV[3] .. '"', 1, true) then return {'ok', rec, 0} end
if redis.call('SET', KEYS[2], '1', 'PX', ARGV[4], 'NX') then return {'ok', rec, 1} end
return {'ok', rec, 0}
`)

// useReplayKey is the key of a replay entry recorded by UseAccessToken. On
// a single server it is Insert's. On a Cluster it lies beside the token of
// hash h, under its access tag, so that the script's keys share a slot; a
// resource's proofs are then recorded only there (store.AccessTokenUser).
func (s *Store) useReplayKey(h store.TokenHash, k dpop.ReplayKey) string {
	if _, ok := s.c.(*redis.ClusterClient); ok {
		return s.prefix + accessTag(h) + "rp:" + k.String()
	}
	return s.replayKey(k)
}

// UseAccessToken implements [store.AccessTokenUser] (RFC 9449 §7.1,
// §11.1): one script reads the token and its grant's revocation, as
// GetAccessToken does, and, when the token is live and bound to jkt,
// records the proof's replay entry (SET NX with a relative expiry of ttl
// rounded up to the millisecond): one round trip. On a single server (or
// Sentinel: a *redis.Client) the entry is Insert's; on a Cluster it lies
// beside the token (see useReplayKey). With Options.Replicas the script is
// a durable write. Over a Ring or another client, which may send the two
// keys to different servers, it is GetAccessToken then Insert
// (store.UseAccessTokenApart).
func (s *Store) UseAccessToken(ctx context.Context, h store.TokenHash, jkt string, key dpop.ReplayKey, ttl time.Duration) (*store.AccessToken, bool, error) {
	switch s.c.(type) {
	case *redis.Client, *redis.ClusterClient:
	default:
		return store.UseAccessTokenApart(ctx, s, h, jkt, key, ttl)
	}
	now, err := s.beginReplay(ctx, ttl)
	if err != nil {
		return nil, false, err
	}
	if !thumbprintText(jkt) {
		// Not a thumbprint: no token is bound to it (the script's plain
		// text match needs text JSON does not escape).
		t, err := s.GetAccessToken(ctx, h)
		return t, false, err
	}
	keys := []string{s.accessKey(h), s.useReplayKey(h, key)}
	cmd, err := s.durable(ctx, keys[0], scriptWriter(ctx, useScript, keys,
		[]any{s.grantPrefix(accessTag(h)), now.UnixMilli(), jkt, ceilMillis(ttl)}))
	var res []any
	if err == nil {
		res, err = cmd.(*redis.Cmd).Slice()
	}
	switch {
	case errors.Is(err, redis.Nil):
		return nil, false, store.ErrNotFound
	case err != nil:
		return nil, false, fail(ctx, "UseAccessToken", err)
	}
	if len(res) != 2 && len(res) != 3 {
		return nil, false, fail(ctx, "UseAccessToken", fmt.Errorf("unexpected script reply %v", res))
	}
	status, ok1 := res[0].(string)
	rec, ok2 := res[1].(string)
	set := false
	if len(res) == 3 {
		n, _ := res[2].(int64)
		set = n == 1
	}
	if !ok1 || !ok2 || (status == statusOK) != (len(res) == 3) {
		return nil, false, fail(ctx, "UseAccessToken", fmt.Errorf("unexpected script reply %v", res))
	}
	t, err := result(status, rec, s.decoded.access)
	if err != nil {
		return nil, false, err
	}
	return t, set, nil
}

// thumbprintText reports whether jkt is non-empty base64url text, as every
// JWK thumbprint is (RFC 7638 §3, RFC 9449 §6.1).
func thumbprintText(jkt string) bool {
	for i := 0; i < len(jkt); i++ {
		c := jkt[i]
		if !('a' <= c && c <= 'z' || 'A' <= c && c <= 'Z' || '0' <= c && c <= '9' || c == '-' || c == '_') {
			return false
		}
	}
	return jkt != ""
}
