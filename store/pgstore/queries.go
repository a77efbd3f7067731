package pgstore

import (
	"strconv"
	"strings"

	"github.com/dpopkit/dpop/store"
)

// queries are the store's statements with the schema filled in. Each method
// but DeleteExpired sends exactly one of them.
type queries struct {
	getClient, saveClient                       string
	saveCode, getCode, consumeCode              string
	savePushed, getPushed, consumePushed        string
	saveAccess, getAccess, revokeAccess         string
	saveRefresh, getRefresh, rotate, revokeRefr string
	revokeGrant                                 string
	replayInsert, issueAccess                   string
	useAccess                                   string
	cleanup                                     map[string]string // table -> batched DELETE
}

// revokedExpr is true when the grant of the row aliased t was revoked and
// the revocation has not ended at $now. A record without a grant id is never
// revoked, as in store.Memory.
// accessColumns and accessUpsert are the access token upsert's column list
// and conflict clause, shared by saveAccess and issueAccess.
const (
	accessColumns = `(hash, grant_id, client_id, subject, scope, jkt, audience, claims, issued_at, expires_at)`
	accessUpsert  = `ON CONFLICT (hash) DO UPDATE SET grant_id = EXCLUDED.grant_id, client_id = EXCLUDED.client_id,
				subject = EXCLUDED.subject, scope = EXCLUDED.scope, jkt = EXCLUDED.jkt,
				audience = EXCLUDED.audience, claims = EXCLUDED.claims,
				issued_at = EXCLUDED.issued_at, expires_at = EXCLUDED.expires_at`
)

// replayInsertSQL records a replay entry ($1 key, $2 expiry) unless a live
// one holds the key; an expired one is renewed. It returns a row only when
// it recorded the entry.
const replayInsertSQL = `INSERT INTO {s}.replay AS r (key, expires_at) VALUES ($1, $2)
			ON CONFLICT (key) DO UPDATE SET expires_at = EXCLUDED.expires_at
			WHERE r.expires_at <= $now
			RETURNING true`

const revokedExpr = `(t.grant_id <> '' AND EXISTS (SELECT 1 FROM {s}.revoked_grants g WHERE g.grant_id = t.grant_id AND g.until > $now))`

// buildQueries fills the schema and the positional parameter of $now into
// every statement.
func buildQueries(schema string) queries {
	f := func(sql, now string) string {
		sql = strings.ReplaceAll(sql, "{revoked}", revokedExpr)
		// A rotation keeps the token it consumes and the grant's other
		// most recently consumed tokens up to the bound.
		sql = strings.ReplaceAll(sql, "{keepOthers}", strconv.Itoa(store.ConsumedRefreshTokensPerGrant-1))
		sql = strings.ReplaceAll(sql, "$now", now)
		return strings.ReplaceAll(sql, "{s}", schema)
	}
	q := queries{
		getClient: f(`SELECT secret_hash, jwks, jwks_uri, grant_types, redirect_uris, scopes, resources, introspect, dpop_bound,
				access_token_ttl, refresh_token_ttl
			FROM {s}.clients WHERE id = $1`, ""),
		saveClient: f(`INSERT INTO {s}.clients AS c
			(id, secret_hash, grant_types, redirect_uris, scopes, resources, introspect, dpop_bound, access_token_ttl, refresh_token_ttl,
				jwks, jwks_uri)
			VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12)
			ON CONFLICT (id) DO UPDATE SET secret_hash = EXCLUDED.secret_hash, jwks = EXCLUDED.jwks, jwks_uri = EXCLUDED.jwks_uri,
				grant_types = EXCLUDED.grant_types,
				redirect_uris = EXCLUDED.redirect_uris, scopes = EXCLUDED.scopes, resources = EXCLUDED.resources,
				introspect = EXCLUDED.introspect, dpop_bound = EXCLUDED.dpop_bound,
				access_token_ttl = EXCLUDED.access_token_ttl, refresh_token_ttl = EXCLUDED.refresh_token_ttl`, ""),

		// Saving replaces any record under the hash, consumed or not, as
		// store.Memory does.
		saveCode: f(`INSERT INTO {s}.codes
			(hash, grant_id, client_id, redirect_uri, scope, subject, code_challenge, code_challenge_method, dpop_jkt,
				resources, expires_at, consumed)
			VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, false)
			ON CONFLICT (hash) DO UPDATE SET grant_id = EXCLUDED.grant_id, client_id = EXCLUDED.client_id,
				redirect_uri = EXCLUDED.redirect_uri, scope = EXCLUDED.scope, subject = EXCLUDED.subject,
				code_challenge = EXCLUDED.code_challenge, code_challenge_method = EXCLUDED.code_challenge_method,
				dpop_jkt = EXCLUDED.dpop_jkt, resources = EXCLUDED.resources, expires_at = EXCLUDED.expires_at,
				consumed = false`, ""),
		// A plain read, without a lock: the statuses of consumeCode.
		getCode: f(`SELECT grant_id, client_id, redirect_uri, scope, subject, code_challenge, code_challenge_method, dpop_jkt,
				resources, expires_at, consumed, expires_at > $now
			FROM {s}.codes WHERE hash = $1`, "$2"),
		// cur locks the row and reads its latest committed version (a
		// caller that waited for the lock sees the winner's consumed =
		// true); won marks it consumed only if that version is live and
		// unconsumed. won has a row for exactly one caller.
		consumeCode: f(`WITH cur AS MATERIALIZED (
				SELECT t.hash, t.grant_id, t.client_id, t.redirect_uri, t.scope, t.subject, t.code_challenge,
					t.code_challenge_method, t.dpop_jkt, t.resources, t.expires_at, t.consumed, t.expires_at > $now AS live
				FROM {s}.codes t WHERE t.hash = $1 FOR UPDATE
			), won AS (
				UPDATE {s}.codes t SET consumed = true FROM cur
				WHERE t.hash = cur.hash AND cur.live AND NOT cur.consumed
				RETURNING t.hash
			)
			SELECT grant_id, client_id, redirect_uri, scope, subject, code_challenge, code_challenge_method, dpop_jkt,
				resources, expires_at, consumed, live, EXISTS (SELECT 1 FROM won)
			FROM cur`, "$2"),

		// Pushed requests: the statements of codes, over their columns.
		savePushed: f(`INSERT INTO {s}.pushed_requests (hash, client_id, params, dpop_jkt, expires_at, consumed)
			VALUES ($1, $2, $3, $4, $5, false)
			ON CONFLICT (hash) DO UPDATE SET client_id = EXCLUDED.client_id, params = EXCLUDED.params,
				dpop_jkt = EXCLUDED.dpop_jkt, expires_at = EXCLUDED.expires_at, consumed = false`, ""),
		getPushed: f(`SELECT client_id, params, dpop_jkt, expires_at, consumed, expires_at > $now
			FROM {s}.pushed_requests WHERE hash = $1`, "$2"),
		consumePushed: f(`WITH cur AS MATERIALIZED (
				SELECT t.hash, t.client_id, t.params, t.dpop_jkt, t.expires_at, t.consumed, t.expires_at > $now AS live
				FROM {s}.pushed_requests t WHERE t.hash = $1 FOR UPDATE
			), won AS (
				UPDATE {s}.pushed_requests t SET consumed = true FROM cur
				WHERE t.hash = cur.hash AND cur.live AND NOT cur.consumed
				RETURNING t.hash
			)
			SELECT client_id, params, dpop_jkt, expires_at, consumed, live, EXISTS (SELECT 1 FROM won)
			FROM cur`, "$2"),

		saveAccess: f(`INSERT INTO {s}.access_tokens `+accessColumns+`
			VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10) `+accessUpsert, ""),
		// Insert's replay insert ($1 key, $2 expiry, $3 now) and, only when
		// it returned a row, saveAccess's upsert ($4 to $13), in one
		// statement (InsertAndSaveAccessToken).
		issueAccess: f(`WITH r AS (`+replayInsertSQL+`), t AS (
				INSERT INTO {s}.access_tokens `+accessColumns+`
				SELECT $4::bytea, $5::text, $6::text, $7::text, $8::text, $9::text, $10::text[], $11::bytea,
					$12::timestamptz, $13::timestamptz
				WHERE EXISTS (SELECT 1 FROM r) `+accessUpsert+`
			)
			SELECT EXISTS (SELECT 1 FROM r)`, "$3"),
		getAccess: f(`SELECT t.grant_id, t.client_id, t.subject, t.scope, t.jkt, t.audience, t.claims, t.issued_at, t.expires_at,
				t.expires_at > $now, {revoked}
			FROM {s}.access_tokens t WHERE t.hash = $1`, "$2"),
		revokeAccess: f(`DELETE FROM {s}.access_tokens WHERE hash = $1`, ""),

		saveRefresh: f(`INSERT INTO {s}.refresh_tokens
			(hash, grant_id, client_id, subject, scope, jkt, audience, claims, issued_at, expires_at, consumed)
			VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, false)
			ON CONFLICT (hash) DO UPDATE SET grant_id = EXCLUDED.grant_id, client_id = EXCLUDED.client_id,
				subject = EXCLUDED.subject, scope = EXCLUDED.scope, jkt = EXCLUDED.jkt,
				audience = EXCLUDED.audience, claims = EXCLUDED.claims,
				issued_at = EXCLUDED.issued_at, expires_at = EXCLUDED.expires_at, consumed = false`, ""),
		getRefresh: f(`SELECT t.grant_id, t.client_id, t.subject, t.scope, t.jkt, t.audience, t.claims, t.issued_at, t.expires_at,
				t.consumed, t.expires_at > $now, {revoked}
			FROM {s}.refresh_tokens t WHERE t.hash = $1`, "$2"),
		// As consumeCode, with the grant's revocation checked on the locked
		// row, and the new token inserted from won's result: it exists if and
		// only if this statement consumed old. $1 old hash, $2 new hash, $3
		// now, $4.. the new record (in the order of tokenFields).
		//
		// When it consumed old, the statement also forgets the grant's
		// older consumed tokens (store.ConsumedRefreshTokensPerGrant): old,
		// consumed now, is the most recent, so beyond lists the grant's
		// other consumed tokens past the ConsumedRefreshTokensPerGrant-1
		// most recent (by issued_at, then hash), never old or the new
		// token. doomed locks them, skipping rows another transaction holds
		// (a concurrent rotation forgetting the same rows, or a reuse of
		// one being refused), so that no statement waits for another and
		// none can deadlock; a skipped row is forgotten by a later
		// rotation. The lock rechecks the condition on the latest committed
		// version, and the DELETE checks consumed again: a row saved live
		// again is never deleted.
		//
		// All parts see one snapshot: old is not yet consumed there, and a
		// concurrent rotation's consumption is not visible, so concurrent
		// rotations of one grant (of several live tokens) may leave up to
		// one consumed token more than the bound per rotation in flight,
		// until the grant's next rotation.
		rotate: f(`WITH cur AS MATERIALIZED (
				SELECT t.hash, t.grant_id, t.client_id, t.subject, t.scope, t.jkt, t.audience, t.claims, t.issued_at,
					t.expires_at, t.consumed, t.expires_at > $now AS live, {revoked} AS revoked
				FROM {s}.refresh_tokens t WHERE t.hash = $1 FOR UPDATE OF t
			), won AS (
				UPDATE {s}.refresh_tokens t SET consumed = true FROM cur
				WHERE t.hash = cur.hash AND cur.live AND NOT cur.consumed AND NOT cur.revoked
				RETURNING t.hash
			), ins AS (
				INSERT INTO {s}.refresh_tokens
					(hash, grant_id, client_id, subject, scope, jkt, audience, claims, issued_at, expires_at, consumed)
				SELECT $2::bytea, $4::text, $5::text, $6::text, $7::text, $8::text, $9::text[], $10::bytea,
					$11::timestamptz, $12::timestamptz, false
				FROM won
				ON CONFLICT (hash) DO UPDATE SET grant_id = EXCLUDED.grant_id, client_id = EXCLUDED.client_id,
					subject = EXCLUDED.subject, scope = EXCLUDED.scope, jkt = EXCLUDED.jkt,
					audience = EXCLUDED.audience, claims = EXCLUDED.claims,
					issued_at = EXCLUDED.issued_at, expires_at = EXCLUDED.expires_at, consumed = false
			), beyond AS (
				SELECT t.hash FROM {s}.refresh_tokens t
				WHERE EXISTS (SELECT 1 FROM won) AND t.grant_id = (SELECT grant_id FROM cur)
					AND t.consumed AND t.hash <> $1 AND t.hash <> $2
				ORDER BY t.issued_at DESC, t.hash DESC
				OFFSET {keepOthers}
			), doomed AS (
				SELECT t.hash FROM {s}.refresh_tokens t
				WHERE t.hash IN (SELECT hash FROM beyond) AND t.consumed AND t.grant_id = (SELECT grant_id FROM cur)
				FOR UPDATE OF t SKIP LOCKED
			), forgot AS (
				DELETE FROM {s}.refresh_tokens t
				WHERE t.hash IN (SELECT hash FROM doomed) AND t.consumed
			)
			SELECT grant_id, client_id, subject, scope, jkt, audience, claims, issued_at, expires_at, consumed, live,
				revoked, EXISTS (SELECT 1 FROM won)
			FROM cur`, "$3::timestamptz"),
		revokeRefr: f(`DELETE FROM {s}.refresh_tokens WHERE hash = $1`, ""),

		// A revocation only ever grows.
		revokeGrant: f(`INSERT INTO {s}.revoked_grants AS r (grant_id, until) VALUES ($1, $2)
			ON CONFLICT (grant_id) DO UPDATE SET until = GREATEST(r.until, EXCLUDED.until)`, ""),

		// A row comes back when the key was absent (insert) or its entry had
		// expired (renewed); a live entry is left alone and nothing comes
		// back. Concurrent inserts of one key are serialised on the primary
		// key, and the WHERE is evaluated on the latest version of the row.
		replayInsert: f(replayInsertSQL, "$3"),
		useAccess:    f(useAccessSQL, "$2"),

		cleanup: map[string]string{},
	}
	// One batch: lock at most $2 expired rows that nobody else holds (a
	// request in flight, or another instance's cleanup), then delete them by
	// their tuple id; the outer condition is checked again on the row
	// actually deleted.
	for table, col := range map[string]string{
		"codes": "expires_at", "pushed_requests": "expires_at", "access_tokens": "expires_at", "refresh_tokens": "expires_at",
		"revoked_grants": "until", "replay": "expires_at",
	} {
		q.cleanup[table] = f(`WITH doomed AS (
				SELECT ctid FROM {s}.`+table+` WHERE `+col+` <= $now LIMIT $2 FOR UPDATE SKIP LOCKED
			)
			DELETE FROM {s}.`+table+` WHERE ctid = ANY (ARRAY (SELECT ctid FROM doomed)) AND `+col+` <= $now`, "$1")
	}
	return q
}
