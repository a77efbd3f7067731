// Package redisstore is a [store.Store] on Redis, for several instances of an
// authorization server and of resource servers that must share what the kit
// remembers: registered clients, authorization codes, opaque access tokens,
// refresh tokens, grant revocations, pushed authorization requests
// (RFC 9126, [store.PushedRequestStore]) and the DPoP proof replay cache
// (RFC 9449 §11.1). It implements the contract of package store and passes the
// conformance suite of package adaptertest.
//
// The caller owns the Redis client: any [redis.UniversalClient] (a single
// server, Sentinel or Cluster) works. Build it with ContextTimeoutEnabled so
// that request deadlines bound the calls to Redis, and with DialTimeout,
// ReadTimeout, WriteTimeout, DialerRetries (go-redis dials 5 times, 100 ms
// apart, by default) and MaxRetries small enough for a request to fail fast
// when Redis is away: the kit then answers 503 and never lets a request
// through on a guess. Errors of Redis are returned wrapped, never as
// store.ErrNotFound; when the context ended during a call, the error wraps
// its context.Canceled or context.DeadlineExceeded as well.
// Redis 6.2 or later is needed (SET with PXAT).
//
// Redis must keep what it is given until it expires: run it with
// maxmemory-policy noeviction (the default). Under an evicting policy a
// flood of writes makes Redis drop replay entries, consumed codes and
// refresh tokens, and clients: a captured proof is accepted again, a code
// redeemed twice, a refresh token replay goes unnoticed. [New] therefore
// reads the policy (CONFIG GET maxmemory-policy, of every node of a Cluster)
// and refuses to start unless it is noeviction, or when it cannot read it.
// A managed Redis that disables CONFIG needs Options.SkipEvictionCheck, and
// its operator then guarantees noeviction. With noeviction a full Redis
// refuses writes, the store returns the error, and the kit refuses the
// request.
// Persistence (RDB or AOF) decides what survives a restart of Redis: without
// it, a restart forgets every token, and clients must authorize again.
//
// # Atomicity
//
// Every operation is one Redis command or one Lua script, so it is atomic on
// the server without locks or retries:
//
//   - Insert (the replay cache) is SET NX with a relative expiry: the call
//     that creates the key wins.
//   - ConsumeCode reads the code and overwrites its first byte with a
//     consumed marker in one script; the marked record stays until the code
//     expires, so a second redemption gets ErrConsumed and the record, whose
//     grant the handlers then revoke (RFC 6749 §4.1.2).
//   - GetCode reads a code with the lookup script of ConsumeCode, without
//     marking it.
//   - ConsumePushedRequest and GetPushedRequest run the scripts of
//     ConsumeCode and GetCode on a pushed request: it is consumed once, and
//     the consumed record stays until it expires.
//   - GetAccessToken and GetRefreshToken read the token and its grant's
//     revocation in one script.
//   - RotateRefreshToken checks the old token (expiry, consumed, grant
//     revocation), marks it consumed, stores the new one, appends the old
//     one to its grant's list of consumed tokens and deletes the consumed
//     tokens that list no longer keeps, all in one script (RFC 9700
//     §4.14.2). A grant therefore holds at most
//     store.ConsumedRefreshTokensPerGrant consumed tokens, the most recently
//     rotated, at every moment; older ones are unknown (ErrNotFound).
//   - RevokeGrant records the end of the revocation and never shortens one
//     already recorded.
//   - UseAccessToken (store.AccessTokenUser) reads an access token and its
//     grant's revocation, as GetAccessToken does, and records the proof's
//     replay entry (SET NX) only when the token is live and its record's
//     jkt is the proof's key, in one script: a resource's one round trip.
//     On a single server the entry is Insert's; on a Cluster it lies
//     beside the token, under its tag, so that both keys share a slot, and
//     the middleware (with OneRoundTrip) records every resource proof
//     this way, so these entries need not meet Insert's.
//   - InsertAndSaveAccessToken (store.AccessTokenIssuer) records a token
//     request's replay entry and, only if it was new, saves the access
//     token, in one script on a single server; on a Cluster, whose keys
//     lie in different slots, it is Insert then SaveAccessToken.
//
// Scripts run with EVALSHA and fall back to EVAL when the server has no copy
// (after a restart or SCRIPT FLUSH).
//
// # Keys
//
// Every key starts with Options.Prefix (default "dpop:"). Codes and tokens
// are keyed by [store.TokenHash.String], never by their value (RFC 6749
// §10.3-§10.5); client and grant ids, which may be any string, by their
// unpadded base64url encoding. With P the prefix, H a token hash, I an
// encoded id and X the low four bits of H's first byte as one hex digit:
//
//	P cl:I          client, JSON; no expiry
//	P c:H           authorization code; expires at ExpiresAt
//	P par:H         pushed authorization request, keyed by the hash of its
//	                request_uri; expires at ExpiresAt
//	P rp:K          replay entry for ReplayKey K; expires after the ttl
//	P {aX}at:H      access token; expires at ExpiresAt
//	P {aX}g:I       revocation of grant I, one copy per access tag X
//	P {aX}rp:K      on a Cluster, replay entry of a proof sent to a
//	                resource with an access token of tag X
//	                (UseAccessToken), beside it
//	P {r}rt:H       refresh token; expires at ExpiresAt
//	P {r}rc:I       consumed refresh tokens of grant I: a list of their
//	                keys, oldest first, at most ConsumedRefreshTokensPerGrant;
//	                expires with the longest-lived of them
//	P {r}g:I        revocation of grant I for refresh tokens
//
// Expiring records use native TTLs (PXAT, from ExpiresAt): Redis deletes
// them, no sweeper runs. A record saved already expired is not stored (any
// record under its key is deleted). Lookups also compare the expiry kept in
// the record with Options.Now, so a record is never returned past its
// ExpiresAt even if the Redis clock runs behind.
//
// Records are JSON (times in RFC 3339 with nanoseconds, durations in integer
// nanoseconds), after a short header the scripts read: a state byte (L live,
// C consumed), the expiry in Unix milliseconds and the encoded grant id.
// Members that are empty are left out, so records written by an earlier
// version, without the members added since (resources, introspect, aud,
// claims, jwks, jwks_uri), read as records with those fields empty; a
// token's claims and a client's JWK Set are kept as base64 of the bytes
// given, never parsed.
//
// # Redis Cluster
//
// A script may only touch keys of one hash slot. Keys of single-key
// operations (clients, codes, pushed requests, replay entries) carry no hash
// tag, so they spread over the whole cluster; the replay entry, written on
// every request, is the hottest of them.
//
// A token lookup must read the token and its grant's revocation atomically,
// and the grant is only known once the token is read. Access tokens are
// therefore split into 16 groups by their hash, each with its own hash tag
// ({a0} to {af}), and RevokeGrant writes one copy of the revocation into
// every group and one beside the refresh tokens: 17 keys, sent in one
// pipeline. Lookups (the resource servers' hot path) spread over 16 slots;
// a revocation, which is rare, costs 17 small writes. The lookup script
// derives the grant key from the record it read; that key always has the
// tag of the declared token key, so it lies in the same slot, as Redis
// Cluster requires.
//
// Rotation touches the old and the new refresh token, whose hashes are
// unrelated, and the list of consumed tokens of the old one's grant, so
// every refresh token, and every such list, shares the one tag {r}: all
// refresh tokens of a store live in one slot, on one node. The rotation
// script derives the list key from the record it read, with that tag. Refresh tokens are used
// only at the token endpoint, far less often than access tokens; this is the
// price of single-script rotation. The tags do not include the prefix:
// stores with different prefixes on one cluster share these 17 slots. The
// prefix may therefore contain no braces, which would change the tags.
//
// A store on a Cluster needs nothing of the caller but a
// *redis.ClusterClient (or any UniversalClient) as Options.Client.
//
// # Failover
//
// Redis replicates asynchronously: a master answers a write before its
// replicas have it. If the master dies in that moment and a replica takes
// over (Redis Cluster or Sentinel failover), the write is gone, and with it
// what the kit relied on it for:
//
//   - a replay entry: the captured proof is accepted again (RFC 9449 §11.1);
//   - a consumed code or pushed request: it is redeemed again;
//   - a rotated refresh token: it is accepted again instead of revoking its
//     grant (RFC 9700 §4.14.2);
//   - a revoked access or refresh token, or grant revocation: it is usable
//     again until it expires.
//
// The window is short (the replication delay, usually under a millisecond
// on a local network, more under load or when a replica lags), but an
// attacker who can make a master fail can aim at it. Saves (codes, tokens,
// clients) lost this way only make the kit refuse what it no longer knows.
//
// Options.Replicas closes the window: each of those writes is followed, on
// its connection to the master holding the key, by WAIT for that many
// replicas, and a write fewer replicas acknowledged within
// Options.ReplicaTimeout fails with ErrNotReplicated (the kit answers 503).
// A replica that acknowledged has the write, and Redis Cluster promotes a
// replica that has it. The cost is one wait for the replicas per such
// write; writes fail while a shard has fewer live replicas than asked
// (after a failover, until the old master rejoins as a replica), which is
// the price of never accepting on a guess. The write may have reached the
// master when it fails: a replay entry then refuses the proof's replays,
// and a consumed code stays consumed. TestFailover kills masters of a real
// cluster right after such writes and checks that none is lost with the
// option, and that without it unreplicated writes are.
//
// A revocation written to 17 keys is not one atomic step: should the
// pipeline fail half-way, RevokeGrant returns the error and some groups
// already refuse the grant's tokens (a refusal, never an acceptance); the
// caller retries or refuses its request.
package redisstore
