package redisstore

import (
	"context"
	"errors"
	"fmt"

	"github.com/redis/go-redis/v9"
)

// The Lua scripts. Each runs atomically on the server; each touches only
// KEYS[1], KEYS[2] and keys that share KEYS[1]'s hash tag (see the package
// documentation), so all of them lie in one slot.
//
// The lookup scripts answer nil (unknown key) or a pair {status, record}:
// status is "ok", "expired", "consumed" or "revoked", and record is the JSON
// record ("" when expired or revoked).

// parseValue splits a stored value into state, expiry (Unix ms), encoded
// grant id and JSON record.
const parseValue = `
local function parse(v)
  local a = string.find(v, ':', 2, true)
  local b = string.find(v, ':', a + 1, true)
  return string.sub(v, 1, 1), tonumber(string.sub(v, 2, a - 1)), string.sub(v, a + 1, b - 1), string.sub(v, b + 1)
end
`

// checkLive reads KEYS[1] and returns its answer unless the record is live;
// ARGV[1] is the grant key prefix of its tag (nil: no grant check) and
// ARGV[2] the time now in Unix ms.
const checkLive = parseValue + `
local now = tonumber(ARGV[2])
local v = redis.call('GET', KEYS[1])
if not v then return false end
local state, exp, grant, rec = parse(v)
if exp <= now then return {'expired', ''} end
if state == 'C' then return {'consumed', rec} end
if ARGV[1] ~= '' and grant ~= '' then
  local untl = redis.call('GET', ARGV[1] .. grant)
  if untl and tonumber(untl) > now then return {'revoked', ''} end
end
`

// lookupScript returns a record without changing it (GetAccessToken,
// GetRefreshToken, and GetCode with ARGV[1] "").
var lookupScript = redis.NewScript(checkLive + `
return {'ok', rec}
`)

// consumeScript redeems a code: ARGV[1] is "" (codes have no grant check).
var consumeScript = redis.NewScript(checkLive + `
redis.call('SETRANGE', KEYS[1], 0, 'C')
return {'ok', rec}
`)

// rotateScript consumes the refresh token KEYS[1] and stores ARGV[3] under
// KEYS[2] until ARGV[4] (Unix ms). It then appends KEYS[1] to the list of
// consumed tokens of its grant (ARGV[5], the list key prefix, followed by
// the encoded grant id of the record) and cuts the list to its ARGV[6] most
// recent entries, deleting the tokens cut off: a grant keeps at most ARGV[6]
// consumed tokens however often it is rotated. A token cut off is deleted
// only if it is still a consumed token of that grant, so a live token (a
// hash saved again since) is never deleted. The list lives until the latest
// expiry of the tokens it names, so that none outlives its entry.
var rotateScript = redis.NewScript(checkLive + `
redis.call('SETRANGE', KEYS[1], 0, 'C')
if tonumber(ARGV[4]) > now then
  redis.call('SET', KEYS[2], ARGV[3], 'PXAT', ARGV[4])
else
  redis.call('DEL', KEYS[2])
end
local list = ARGV[5] .. grant
redis.call('LREM', list, 0, KEYS[1])
redis.call('LREM', list, 0, KEYS[2])
local n = redis.call('RPUSH', list, KEYS[1])
while n > tonumber(ARGV[6]) do
  local k = redis.call('LPOP', list)
  local kv = redis.call('GET', k)
  if kv then
    local kstate, _, kgrant = parse(kv)
    if kstate == 'C' and kgrant == grant then redis.call('DEL', k) end
  end
  n = n - 1
end
local pttl = redis.call('PTTL', list)
local last = exp
if pttl >= 0 then
  local t = redis.call('TIME')
  last = math.max(last, tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000) + pttl)
end
redis.call('PEXPIREAT', list, string.format('%d', last))
return {'ok', rec}
`)

// revokeScript records a grant revocation lasting until ARGV[1] (Unix ms),
// unless one lasting as long or longer is recorded.
var revokeScript = redis.NewScript(`
local cur = redis.call('GET', KEYS[1])
if cur and tonumber(cur) >= tonumber(ARGV[1]) then return 0 end
redis.call('SET', KEYS[1], ARGV[1], 'PXAT', ARGV[1])
return 1
`)

// Script statuses.
const (
	statusOK       = "ok"
	statusExpired  = "expired"
	statusConsumed = "consumed"
	statusRevoked  = "revoked"
)

// runLookup runs a lookup script and returns its status and record;
// status "" means the key does not exist. A script that writes (consumes
// or rotates) runs as a durable write: with Options.Replicas, it is
// acknowledged by the replicas before the answer counts.
func (s *Store) runLookup(ctx context.Context, op string, sc *redis.Script, writes bool, keys []string, args ...any) (status, record string, err error) {
	var res []any
	if writes {
		var cmd redis.Cmder
		cmd, err = s.durable(ctx, keys[0], scriptWriter(ctx, sc, keys, args))
		if err == nil {
			res, err = cmd.(*redis.Cmd).Slice()
		}
	} else {
		res, err = sc.Run(ctx, s.c, keys, args...).Slice()
	}
	switch {
	case errors.Is(err, redis.Nil):
		return "", "", nil
	case err != nil:
		return "", "", fail(ctx, op, err)
	}
	if len(res) != 2 {
		return "", "", fail(ctx, op, fmt.Errorf("unexpected script reply %v", res))
	}
	status, ok1 := res[0].(string)
	record, ok2 := res[1].(string)
	if !ok1 || !ok2 {
		return "", "", fail(ctx, op, fmt.Errorf("unexpected script reply %v", res))
	}
	return status, record, nil
}

// scriptWriter is a durable write running sc on keys with args: by digest,
// or in full when eval is set.
func scriptWriter(ctx context.Context, sc *redis.Script, keys []string, args []any) ackWriter {
	return func(c redis.Cmdable, eval bool) redis.Cmder {
		if eval {
			return sc.Eval(ctx, c, keys, args...)
		}
		return sc.EvalSha(ctx, c, keys, args...)
	}
}

// runEach runs sc once for each key, with the same arguments, in one
// pipeline on c (one round trip per node), followed by the commands then
// queues (nil: none). Scripts the server does not hold are sent again in
// full, with then's commands after them again.
func (s *Store) runEach(ctx context.Context, c redis.Cmdable, sc *redis.Script, keys []string, args []any, then func(redis.Pipeliner)) error {
	cmds := make([]*redis.Cmd, len(keys))
	_, err := c.Pipelined(ctx, func(p redis.Pipeliner) error {
		for i, k := range keys {
			cmds[i] = sc.EvalSha(ctx, p, []string{k}, args...)
		}
		if then != nil {
			then(p)
		}
		return nil
	})
	if err == nil {
		return nil
	}
	var missing []string
	for i, c := range cmds {
		switch err := c.Err(); {
		case err == nil:
		case redis.HasErrorPrefix(err, "NOSCRIPT"):
			missing = append(missing, keys[i])
		default:
			return err
		}
	}
	if len(missing) == 0 {
		return err
	}
	_, err = c.Pipelined(ctx, func(p redis.Pipeliner) error {
		for _, k := range missing {
			sc.Eval(ctx, p, []string{k}, args...)
		}
		if then != nil {
			then(p)
		}
		return nil
	})
	return err
}
