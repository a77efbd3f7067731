-- Schema of the dpopkit PostgreSQL store. Migrate runs this file in one
-- transaction, after taking an advisory lock, with the placeholder in braces
-- replaced by the quoted schema name. Every statement is idempotent.
--
-- The CREATE TABLE statements give each table its complete, current shape.
-- Columns added since a table was first released are added again at the end
-- of the file with ALTER TABLE ... ADD COLUMN IF NOT EXISTS, identical to
-- their definition here: those statements do nothing on a schema this file
-- created, and bring a schema created by an earlier version up to date (its
-- rows get the column's default). Keep the two in step; TestMigrate checks
-- that both paths give the same columns.
--
-- Codes and tokens are keyed by the SHA-256 of their value (store.TokenHash),
-- never by the value (RFC 6749 §10.3-10.5). Times are timestamptz (to the
-- microsecond); durations are bigint nanoseconds (time.Duration).

CREATE SCHEMA IF NOT EXISTS {schema};

-- Registered clients (RFC 6749 §2).
CREATE TABLE IF NOT EXISTS {schema}.clients (
    id                text    PRIMARY KEY,
    secret_hash       bytea,                          -- NULL: public client
    jwks              bytea,                          -- JWK Set document, RFC 7517 §5; NULL: none
    jwks_uri          text    NOT NULL DEFAULT '',    -- RFC 7591 §2; '': none
    grant_types       text[]  NOT NULL DEFAULT '{}',
    redirect_uris     text[]  NOT NULL DEFAULT '{}',
    scopes            text[]  NOT NULL DEFAULT '{}',
    resources         text[]  NOT NULL DEFAULT '{}',   -- RFC 8707 §2
    introspect        boolean NOT NULL DEFAULT false,  -- may call RFC 7662 introspection
    dpop_bound        boolean NOT NULL DEFAULT false,  -- RFC 9449 §5.2
    access_token_ttl  bigint  NOT NULL DEFAULT 0,      -- nanoseconds
    refresh_token_ttl bigint  NOT NULL DEFAULT 0       -- nanoseconds
);

-- Authorization codes (RFC 6749 §4.1.2); consumed rows stay until they
-- expire, so that a second redemption is recognised as such.
CREATE TABLE IF NOT EXISTS {schema}.codes (
    hash                  bytea       PRIMARY KEY CHECK (octet_length(hash) = 32),
    grant_id              text        NOT NULL,
    client_id             text        NOT NULL,
    redirect_uri          text        NOT NULL,
    scope                 text        NOT NULL,
    subject               text        NOT NULL,
    code_challenge        text        NOT NULL,        -- RFC 7636 §4.3
    code_challenge_method text        NOT NULL,
    dpop_jkt              text        NOT NULL,        -- RFC 9449 §10
    resources             text[]      NOT NULL DEFAULT '{}', -- RFC 8707 §2.1
    expires_at            timestamptz NOT NULL,
    consumed              boolean     NOT NULL DEFAULT false
);
CREATE INDEX IF NOT EXISTS codes_expires_at ON {schema}.codes (expires_at);

-- Pushed authorization requests (RFC 9126), keyed by the hash of their
-- request_uri; consumed rows stay until they expire, as codes do.
CREATE TABLE IF NOT EXISTS {schema}.pushed_requests (
    hash       bytea       PRIMARY KEY CHECK (octet_length(hash) = 32),
    client_id  text        NOT NULL,
    params     text        NOT NULL,                   -- form-encoded parameters
    dpop_jkt   text        NOT NULL,                   -- RFC 9449 §10.1
    expires_at timestamptz NOT NULL,
    consumed   boolean     NOT NULL DEFAULT false
);
CREATE INDEX IF NOT EXISTS pushed_requests_expires_at ON {schema}.pushed_requests (expires_at);

-- Opaque access tokens.
CREATE TABLE IF NOT EXISTS {schema}.access_tokens (
    hash       bytea       PRIMARY KEY CHECK (octet_length(hash) = 32),
    grant_id   text        NOT NULL,
    client_id  text        NOT NULL,
    subject    text        NOT NULL,
    scope      text        NOT NULL,
    jkt        text        NOT NULL,                   -- cnf.jkt, RFC 9449 §6
    audience   text[]      NOT NULL DEFAULT '{}',      -- aud, RFC 8707, RFC 9068 §2.2
    claims     bytea,                                  -- the host's claims, JSON; NULL: none
    issued_at  timestamptz NOT NULL,
    expires_at timestamptz NOT NULL
);
CREATE INDEX IF NOT EXISTS access_tokens_expires_at ON {schema}.access_tokens (expires_at);

-- Refresh tokens; a rotated token stays, consumed, until it expires, so that
-- its reuse is detected (RFC 9700 §4.14.2).
CREATE TABLE IF NOT EXISTS {schema}.refresh_tokens (
    hash       bytea       PRIMARY KEY CHECK (octet_length(hash) = 32),
    grant_id   text        NOT NULL,
    client_id  text        NOT NULL,
    subject    text        NOT NULL,
    scope      text        NOT NULL,
    jkt        text        NOT NULL,
    audience   text[]      NOT NULL DEFAULT '{}',
    claims     bytea,
    issued_at  timestamptz NOT NULL,
    expires_at timestamptz NOT NULL,
    consumed   boolean     NOT NULL DEFAULT false
);
CREATE INDEX IF NOT EXISTS refresh_tokens_expires_at ON {schema}.refresh_tokens (expires_at);
-- A rotation finds its grant's consumed tokens, most recent first, to keep
-- only store.ConsumedRefreshTokensPerGrant of them.
CREATE INDEX IF NOT EXISTS refresh_tokens_grant_id_issued_at ON {schema}.refresh_tokens (grant_id, issued_at);

-- Revoked grants: every token of grant_id is refused until "until".
CREATE TABLE IF NOT EXISTS {schema}.revoked_grants (
    grant_id text        PRIMARY KEY,
    until    timestamptz NOT NULL
);
CREATE INDEX IF NOT EXISTS revoked_grants_until ON {schema}.revoked_grants (until);

-- DPoP proof replay cache (RFC 9449 §11.1), keyed by dpop.ReplayKey.
CREATE TABLE IF NOT EXISTS {schema}.replay (
    key        bytea       PRIMARY KEY CHECK (octet_length(key) = 32),
    expires_at timestamptz NOT NULL
);
CREATE INDEX IF NOT EXISTS replay_expires_at ON {schema}.replay (expires_at);

-- Columns added since the first release (see the top of the file): RFC 8707
-- resource indicators and audiences, the introspection right, and the
-- host's claims.
ALTER TABLE {schema}.clients        ADD COLUMN IF NOT EXISTS resources  text[]  NOT NULL DEFAULT '{}';
ALTER TABLE {schema}.clients        ADD COLUMN IF NOT EXISTS introspect boolean NOT NULL DEFAULT false;
ALTER TABLE {schema}.codes          ADD COLUMN IF NOT EXISTS resources  text[]  NOT NULL DEFAULT '{}';
ALTER TABLE {schema}.access_tokens  ADD COLUMN IF NOT EXISTS audience   text[]  NOT NULL DEFAULT '{}';
ALTER TABLE {schema}.access_tokens  ADD COLUMN IF NOT EXISTS claims     bytea;
ALTER TABLE {schema}.refresh_tokens ADD COLUMN IF NOT EXISTS audience   text[]  NOT NULL DEFAULT '{}';
ALTER TABLE {schema}.refresh_tokens ADD COLUMN IF NOT EXISTS claims     bytea;
-- private_key_jwt client authentication (RFC 7523 §2.2); the table of
-- pushed requests is created above.
ALTER TABLE {schema}.clients        ADD COLUMN IF NOT EXISTS jwks       bytea;
ALTER TABLE {schema}.clients        ADD COLUMN IF NOT EXISTS jwks_uri   text    NOT NULL DEFAULT '';
