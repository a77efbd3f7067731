// Package pgstore is a PostgreSQL implementation of store.Store for the DPoP
// kit: registered clients, authorization codes, pushed authorization
// requests (RFC 9126, [store.PushedRequestStore]), opaque access tokens,
// refresh tokens, grant revocations and the DPoP proof replay cache (RFC 9449
// §11.1), shared by every instance of a service that points at the same
// schema.
//
// # Setup
//
// The caller owns the connection pool (pgx v5, github.com/jackc/pgx/v5/pgxpool).
// Create the tables once with [Migrate], which is idempotent and safe to run
// from several instances at the same time, then open the store with [New]:
//
//	pool, err := pgxpool.New(ctx, os.Getenv("DATABASE_URL"))
//	...
//	if err := pgstore.Migrate(ctx, pool, "dpop"); err != nil { ... }
//	st, err := pgstore.New(ctx, pgstore.Options{Pool: pool})
//	...
//	defer st.Close() // stops the cleanup; the pool stays open
//
// New never changes the database: it checks that the schema exists (and that
// the database encoding is UTF8) and fails otherwise, so that a missing
// migration or an unreachable database shows at startup. Run Migrate from the
// service itself or from a deployment step, with a role that may create the
// schema (CREATE on the database, checked even when the schema exists) and
// its tables; the service's own role needs only USAGE on the schema and
// SELECT, INSERT, UPDATE and DELETE on its tables.
//
// Migrate also upgrades a schema an earlier version of the package created:
// it adds the columns that version lacks (ALTER TABLE ... ADD COLUMN IF NOT
// EXISTS) and the tables it lacks (pushed_requests), and the rows already
// there get the columns' defaults (no resources or audience, no claims, no
// JWK Set or jwks_uri). Run the new version's Migrate before
// its instances start: New does not check columns, and a statement naming a
// missing column fails.
//
// # Hashes, never values
//
// Codes and tokens are stored under their [store.TokenHash] (bytea, 32
// bytes), replay entries under their [dpop.ReplayKey]; the tables never hold
// a value that could be presented to the server (RFC 6749 §10.3-10.5). Client
// secrets are stored as [store.HashSecret] output.
//
// # Atomicity
//
// Every method but DeleteExpired sends exactly one SQL statement: one round
// trip, once pgx has prepared the statement on the connection (its default
// QueryExecMode; the statements work in every mode, simple_protocol
// included). With the handlers' and the middleware's OneRoundTrip, a token
// request of the client credentials grant costs one statement
// (InsertAndSaveAccessToken: the client is read from the store's client
// cache, Options.ClientCacheTTL, after the first request), an API request
// with a token seen before one (UseAccessToken), its first request two
// (GetAccessToken, UseAccessToken). Each operation the store contract
// requires to be atomic is settled by PostgreSQL's row locks inside its one
// statement:
//
//   - Insert (replay) is INSERT ... ON CONFLICT (key) DO UPDATE ... WHERE the
//     existing entry has expired, RETURNING a row. Concurrent inserts of one
//     key are serialised on the key's unique index; the first creates (or
//     renews an expired) row, the others find a live row, update nothing and
//     get no row back: exactly one true.
//   - ConsumeCode locks the code's row (SELECT ... FOR UPDATE in a CTE), then
//     marks it consumed only if the locked version is live and unconsumed.
//     A concurrent caller waits for the lock and reads the version the winner
//     committed, already consumed: exactly one gets the record without
//     ErrConsumed, and the others get it with ErrConsumed.
//     ConsumePushedRequest is the same statement over the row of a pushed
//     request.
//   - RotateRefreshToken does the same for the old token, checking expiry,
//     consumption and grant revocation on the locked version, and inserts
//     the new token from the UPDATE's result in the same statement, so that
//     the new token exists if and only if the old one was consumed by this
//     call. Only then does that statement also delete the grant's consumed
//     tokens beyond the store.ConsumedRefreshTokensPerGrant most recent
//     (the old one, then the others by issued_at), locking them with SKIP
//     LOCKED so that it never waits for, or deadlocks with, another
//     rotation, and checking that each is still consumed: a live token is
//     never deleted. Rotations of several tokens of one grant at the same
//     moment may miss each other's consumption and leave a token more than
//     the bound for each, which the grant's next rotation removes.
//   - GetCode is a plain SELECT without a lock; it changes nothing.
//   - InsertAndSaveAccessToken (store.AccessTokenIssuer) is Insert's
//     statement as a CTE, and the access token upsert reading its RETURNING:
//     the token row is written only when the replay entry was, in the same
//     transaction.
//   - UseAccessToken (store.AccessTokenUser) reads the token and its
//     grant's revocation in a CTE, and inserts the replay entry as Insert
//     does only when that row is live, not revoked and bound to the
//     proof's key.
//
// # Clock
//
// Every decision about expiry compares with Options.Now (default time.Now)
// of the calling instance, sent with the statement; the database clock is
// never used. That is the clock that set the records' ExpiresAt (the
// handlers' Config.Now) and that checks proof freshness, so one clock decides
// everything. Keep the instances' clocks synchronised (NTP): with clocks
// that differ, a record stops working on one instance up to the difference
// earlier than on another. Times are kept to the microsecond.
//
// # Failures
//
// A database error (unreachable, timeout, missing table) is returned wrapped,
// never as store.ErrNotFound, so that the kit refuses the request with 503
// instead of treating a token as unknown. Options.QueryTimeout bounds every
// call, so that a database that stops answering fails requests quickly
// rather than holding them. A context that is already done
// stops a call before any statement is sent, with an error wrapping the
// context's error; a context cancelled during a statement makes pgx abandon
// it, and PostgreSQL rolls the statement back unless it had already
// committed.
//
// # Text
//
// PostgreSQL text cannot hold NUL bytes or invalid UTF-8, so saving a record
// with such a string fails with [ErrInvalidText], and GetClient of such an id
// is store.ErrNotFound (no such client can have been saved).
//
// # Cleanup
//
// Expired rows are not returned, and a background goroutine deletes them
// every Options.CleanupInterval, in statements of at most
// Options.CleanupBatch rows each, so that no statement holds many locks or
// runs long. Several instances may clean the same schema at once: rows
// another instance is deleting, or a request is using, are skipped (FOR
// UPDATE SKIP LOCKED) and left for a later run.
//
// # Requirements
//
// PostgreSQL 12 or later (tested with 15) with UTF8 encoding, and pgx v5.
package pgstore
