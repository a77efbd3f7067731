// Package adaptertest is the conformance suite for implementations of
// store.Store, in the manner of golang.org/x/net/nettest.TestConn: one call
// runs every behaviour the DPoP kit relies on as a subtest.
//
// A custom store's test calls Run with a constructor that returns a fresh,
// empty store and a function that releases it:
//
//	func TestConformance(t *testing.T) {
//		adaptertest.Run(t, func(t *testing.T) (store.Store, func()) {
//			s := mystore.New(...) // isolated: its own database, schema or key prefix
//			return s, func() { s.Close() }
//		})
//	}
//
// Each subtest gets a fresh store of its own. Run checks:
//
//   - round trips of every record, field by field, under keys that break
//     stores which treat keys as text (NUL bytes, invalid UTF-8, keys one
//     bit apart), and copies that neither side can change for the other
//     (the caller that saved a record, one that read it, a rotation's);
//     the lists of resources and audiences, and a token's claims, which
//     must come back byte for byte as saved (never parsed and re-encoded),
//     through saves, lookups, redemptions and rotations; an empty one may
//     come back nil;
//   - clients: SaveClient refuses every client that store.Client.Validate
//     refuses (no id, an unknown grant type, a public client with
//     client_credentials, a redirect URI that is relative, has a fragment
//     or is not a URI, a resource indicator that is not an absolute URI,
//     has a fragment, is too long or holds a space or control character,
//     Introspect without resources or for a public client, a negative
//     lifetime, more than one of a secret, a JWK Set and a jwks_uri, a JWK
//     Set that is not one or holds too many keys, an http jwks_uri off
//     loopback) with an error wrapping store.ErrInvalidClientMetadata, and
//     changes nothing; it accepts the valid clients near those edges (a
//     native app's custom-scheme redirect URI, an IPv6 loopback one,
//     resources of store.MaxResourceLen bytes, a JWK Set of
//     store.MaxClientKeys keys kept byte for byte, a loopback http
//     jwks_uri);
//   - codes: ConsumeCode redeems once and then answers ErrConsumed with the
//     record; GetCode answers as ConsumeCode would, record included, and
//     redeems nothing;
//   - pushed authorization requests, when the store implements
//     store.PushedRequestStore (for a store that does not, the
//     PushedRequests group runs no subtest and passes): round trips,
//     GetPushedRequest consumes nothing, ConsumePushedRequest consumes once
//     and then answers ErrConsumed with the record, as GetPushedRequest does,
//     a request is no code under the same key, copies, odd keys, cancelled
//     contexts and expiry;
//   - refresh tokens: a rotation consumes the old token and stores the new
//     one as one step, and a grant keeps exactly its
//     store.ConsumedRefreshTokensPerGrant most recently consumed tokens
//     (ErrConsumed with their own record), forgets older ones (ErrNotFound),
//     never its live token, and never another grant's;
//   - grant revocation, and the replay cache of dpop;
//   - the replay entry and access token of one token request, when the
//     store implements store.AccessTokenIssuer (for a store that does not,
//     the Issue group has no subtests): saved together for a new key,
//     nothing saved for a recorded one, exactly one of 48 concurrent calls
//     with one key saving, over 20 rounds, a cancelled context saving
//     nothing, and the entry and the token expiring as Insert's and
//     SaveAccessToken's do;
//   - the access token lookup and replay entry of one resource request,
//     when the store implements store.AccessTokenUser (for a store that
//     does not, the Use group has no subtests): the token read and the
//     proof recorded once for a live token bound to the proof's key,
//     nothing recorded for a token bound to another key, unknown, revoked,
//     of a revoked grant or expired (each with GetAccessToken's error),
//     exactly one of 48 concurrent uses of one proof recorded, over 20
//     rounds, and a cancelled context recording nothing;
//   - atomicity: ConsumeCode, RotateRefreshToken, Insert and
//     ConsumePushedRequest (when implemented) each race 48
//     goroutines, released together from a barrier, for one record, over
//     20 rounds; exactly one may win each round. A store whose check and
//     update are separate steps is caught even when the window between them
//     is a single scheduling point;
//   - that a cancelled context stops every method, having done nothing;
//   - lifetimes, in real time: records are gone after their expiry; a
//     replay entry refuses its key for its whole ttl and no longer; a grant
//     revocation lasts until its until, which a later call may extend but
//     never shorten; expiries keep sub-second precision (records saved to
//     expire on a half second are probed 300 ms either side of it, so
//     expiries truncated or rounded to whole seconds fail).
//
// Every store call Run makes, and the release of each store, is bounded by
// CallTimeout: a call that does not return fails its subtest with "store
// call ... did not return within ..." instead of hanging the test binary.
//
// The timed subtests (the Expiry group) run concurrently, whatever
// -test.parallel is, and none waits more than about three seconds, so a
// run against the in-memory store takes about three seconds, a few more
// against a database, where most of the rest goes to the races' 5,000
// calls. A store that keeps time by its server's clock (now() in SQL) needs
// that clock within about 200 ms of the test's.
//
// A store meant to be shared by several instances of a service (processes
// behind one load balancer) should also pass RunInstances. Its constructor
// returns two stores over the same data, each with its own connection, as
// two processes would have:
//
//	func TestInstances(t *testing.T) {
//		adaptertest.RunInstances(t, func(t *testing.T) (a, b store.Store, cleanup func()) {
//			ns := freshNamespace()            // one fresh database, schema or prefix
//			a, b = mystore.New(conn1, ns), mystore.New(conn2, ns)
//			return a, b, func() { a.Close(); b.Close() }
//		})
//	}
//
// A store that lives in the process passes adaptertest.SameStore(newStore).
// Each subtest starts two complete instances, the authorization server of
// package handlers and an API behind package middleware, on loopback
// listeners of their own, A over the first store and B over the second, and
// checks over HTTP that they act as one service: replayed proofs, tokens,
// concurrent code redemptions, server nonces and revocations across
// instances. State a store keeps in its own memory (a local cache, say) is
// caught because A and B have separate store values, as long as the
// constructor gives them separate ones.
//
// The package imports only the standard library and the kit's packages.
package adaptertest

import (
	"crypto/rand"
	"testing"
	"time"

	"github.com/dpopkit/dpop/store"
)

// NewStore returns a fresh, empty store for one subtest, and a function that
// releases it (called when the subtest ends).
type NewStore func(t *testing.T) (s store.Store, cleanup func())

// shortTTL is the lifetime of records in expiry subtests; waitExpiry is how
// long those subtests wait for them to expire.
const (
	shortTTL   = time.Second
	waitExpiry = shortTTL + 300*time.Millisecond
	// racers is how many goroutines contend in each round of an atomicity
	// subtest, and raceRounds how many rounds it runs, each over a fresh
	// record.
	racers     = 48
	raceRounds = 20
)

// Run runs the whole suite against the stores newStore returns.
func Run(t *testing.T, newStore NewStore) {
	t.Run("Clients", func(t *testing.T) { testClients(t, newStore) })
	t.Run("Codes", func(t *testing.T) { testCodes(t, newStore) })
	t.Run("AccessTokens", func(t *testing.T) { testAccessTokens(t, newStore) })
	t.Run("RefreshTokens", func(t *testing.T) { testRefreshTokens(t, newStore) })
	t.Run("Grants", func(t *testing.T) { testGrants(t, newStore) })
	t.Run("Replay", func(t *testing.T) { testReplay(t, newStore) })
	t.Run("PushedRequests", func(t *testing.T) { testPushedRequests(t, newStore) })
	t.Run("Issue", func(t *testing.T) { testIssue(t, newStore) })
	t.Run("Use", func(t *testing.T) { testUse(t, newStore) })
	t.Run("Context", func(t *testing.T) { testContext(t, newStore) })
	t.Run("Expiry", func(t *testing.T) { testExpiry(t, newStore) })
}

// open makes a store for the current subtest and releases it at its end.
// The subtest sees it through the watchdog: each call, and the release,
// fails the subtest when it does not return within CallTimeout.
func open(t *testing.T, newStore NewStore) store.Store {
	t.Helper()
	s, cleanup := newStore(t)
	if s == nil {
		t.Fatal("constructor returned a nil store")
	}
	if cleanup != nil {
		t.Cleanup(func() { release(t, cleanup) })
	}
	return &watched{t: t, s: s}
}

// randomHash is a fresh token hash.
func randomHash() store.TokenHash {
	var h store.TokenHash
	rand.Read(h[:])
	return h
}

// oddHashes are keys that break stores which treat keys as text: zeros,
// 0xff, bytes that are NUL, newline, quote or invalid UTF-8, and two keys
// that differ in one bit.
func oddHashes() []store.TokenHash {
	var zero, ones, mixed, flipped store.TokenHash
	for i := range ones {
		ones[i] = 0xff
		const odd = "\x00\n\"'\\\xc3\x28%*?{}"
		mixed[i] = odd[i%len(odd)]
	}
	flipped = mixed
	flipped[31] ^= 1
	return []store.TokenHash{zero, ones, mixed, flipped}
}

// now is the current time at millisecond precision, the precision stores
// must keep.
func now() time.Time { return time.Now().Truncate(time.Millisecond) }

// unicodeID is a client id with multi-byte characters, spaces and symbols.
const unicodeID = "клиент 🔑 démo/?#&=+%20 \"quoted\""
