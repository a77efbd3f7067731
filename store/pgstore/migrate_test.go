package pgstore

import (
	"bytes"
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"maps"
	"os"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/dpopkit/dpop/store"
	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"
)

// schemaV1 is the schema.sql of the first version of the store, before the
// RFC 8707 columns (clients.resources and introspect, codes.resources,
// audience and claims of the token tables): a deployment created by it must
// be upgraded by Migrate.
const schemaV1 = "testdata/schema_v1.sql"

// schemaV2 is the schema.sql of the second version, before issue 14's
// clients.jwks and jwks_uri columns and the pushed_requests table.
const schemaV2 = "testdata/schema_v2.sql"

// createV1 creates schema with the first version's schema.sql, as that
// version's Migrate did, and drops it when the test ends.
func createV1(t *testing.T, pool *pgxpool.Pool) string {
	t.Helper()
	return createOld(t, pool, schemaV1, "v1")
}

// createOld creates a schema with an earlier version's schema.sql (file),
// named after version, and drops it when the test ends.
func createOld(t *testing.T, pool *pgxpool.Pool, file, version string) string {
	t.Helper()
	ddl, err := os.ReadFile(file)
	if err != nil {
		t.Fatal(err)
	}
	var b [8]byte
	rand.Read(b[:])
	schema := "dpoptest_" + version + "_" + hex.EncodeToString(b[:])
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(bg, 30*time.Second)
		defer cancel()
		if _, err := pool.Exec(ctx, "DROP SCHEMA IF EXISTS "+pgx.Identifier{schema}.Sanitize()+" CASCADE"); err != nil {
			t.Errorf("drop schema %s: %v", schema, err)
		}
	})
	// No arguments: the simple protocol, which runs several statements.
	if _, err := pool.Exec(bg, strings.ReplaceAll(string(ddl), "{schema}", pgx.Identifier{schema}.Sanitize())); err != nil {
		t.Fatalf("creating the schema of %s: %v", file, err)
	}
	return schema
}

// TestMigrateFromV1 upgrades a schema the first version created, with rows
// that version wrote: Migrate adds the new columns, the old rows read back
// with empty resources, audience and claims, and can still be consumed,
// rotated and replaced; new records keep every field.
func TestMigrateFromV1(t *testing.T) {
	pool := testPool(t)
	schema := createV1(t, pool)
	q := func(table string) string { return pgx.Identifier{schema, table}.Sanitize() }
	// Microseconds: what timestamptz keeps.
	exp := time.Now().Add(time.Hour).Truncate(time.Microsecond)
	iat := exp.Add(-time.Hour)
	secret := store.HashSecret("old secret")
	code, access, refresh := store.HashToken("old code"), store.HashToken("old access"), store.HashToken("old refresh")

	// Rows as the first version's statements wrote them: their columns only.
	for _, st := range []struct {
		sql  string
		args []any
	}{
		{`INSERT INTO ` + q("clients") + ` (id, secret_hash, grant_types, redirect_uris, scopes, dpop_bound, access_token_ttl, refresh_token_ttl)
			VALUES ($1, $2, $3, $4, $5, $6, $7, $8)`,
			[]any{"old", secret, []string{store.GrantAuthorizationCode, store.GrantRefreshToken}, []string{"https://app.example/cb"},
				[]string{"read"}, true, int64(time.Minute), int64(time.Hour)}},
		{`INSERT INTO ` + q("codes") + ` (hash, grant_id, client_id, redirect_uri, scope, subject, code_challenge, code_challenge_method, dpop_jkt, expires_at, consumed)
			VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, false)`,
			[]any{code[:], "g-code", "old", "https://app.example/cb", "read", "alice", "challenge", "S256", "jkt", exp}},
		{`INSERT INTO ` + q("access_tokens") + ` (hash, grant_id, client_id, subject, scope, jkt, issued_at, expires_at)
			VALUES ($1, $2, $3, $4, $5, $6, $7, $8)`,
			[]any{access[:], "g-access", "old", "alice", "read", "jkt", iat, exp}},
		{`INSERT INTO ` + q("refresh_tokens") + ` (hash, grant_id, client_id, subject, scope, jkt, issued_at, expires_at, consumed)
			VALUES ($1, $2, $3, $4, $5, $6, $7, $8, false)`,
			[]any{refresh[:], "g-refresh", "old", "alice", "read", "", iat, exp}},
	} {
		if _, err := pool.Exec(bg, st.sql, st.args...); err != nil {
			t.Fatalf("inserting a first-version row: %v", err)
		}
	}

	// The new version's New over the old schema finds its tables, but its
	// statements need the new columns: Migrate first, twice to show the
	// upgrade is idempotent too.
	for i := range 2 {
		if err := Migrate(bg, pool, schema); err != nil {
			t.Fatalf("Migrate %d over the first version's schema: %v", i+1, err)
		}
	}
	s := openStore(t, pool, schema, nil)

	c, err := s.GetClient(bg, "old")
	must(t, err)
	if len(c.Resources) != 0 || c.Introspect || !bytes.Equal(c.SecretHash, secret) || !c.DPoPBound || c.JWKS != nil || c.JWKSURI != "" ||
		!slices.Equal(c.Scopes, []string{"read"}) || c.AccessTokenTTL != time.Minute || c.RefreshTokenTTL != time.Hour {
		t.Errorf("old client read back as %+v", c)
	}
	cd, err := s.GetCode(bg, code)
	must(t, err)
	if len(cd.Resources) != 0 || cd.GrantID != "g-code" || cd.DPoPJKT != "jkt" || !cd.ExpiresAt.Equal(exp) {
		t.Errorf("old code read back as %+v", cd)
	}
	cd, err = s.ConsumeCode(bg, code)
	must(t, err)
	if len(cd.Resources) != 0 || cd.GrantID != "g-code" {
		t.Errorf("old code consumed as %+v", cd)
	}
	at, err := s.GetAccessToken(bg, access)
	must(t, err)
	if len(at.Audience) != 0 || at.Claims != nil || at.Subject != "alice" || !at.IssuedAt.Equal(iat) || !at.ExpiresAt.Equal(exp) {
		t.Errorf("old access token read back as %+v", at)
	}
	rt, err := s.GetRefreshToken(bg, refresh)
	must(t, err)
	if len(rt.Audience) != 0 || rt.Claims != nil || rt.GrantID != "g-refresh" {
		t.Errorf("old refresh token read back as %+v", rt)
	}

	// An old refresh token rotates into a new-style one.
	next := store.HashToken("next refresh")
	nextRec := &store.RefreshToken{GrantID: "g-refresh", ClientID: "old", Subject: "alice", Scope: "read",
		Audience: []string{"https://api.example/"}, Claims: []byte(`{"tenant":"t1"}`), IssuedAt: iat.Add(time.Minute), ExpiresAt: exp}
	prev, err := s.RotateRefreshToken(bg, refresh, next, nextRec)
	must(t, err)
	if prev.GrantID != "g-refresh" || len(prev.Audience) != 0 || prev.Claims != nil {
		t.Errorf("rotation of the old token returned %+v", prev)
	}
	rt, err = s.GetRefreshToken(bg, next)
	must(t, err)
	if !slices.Equal(rt.Audience, nextRec.Audience) || !bytes.Equal(rt.Claims, nextRec.Claims) {
		t.Errorf("rotated token read back as %+v", rt)
	}

	// New-style records, and the old client replaced by one.
	newClient := &store.Client{ID: "old", SecretHash: secret, GrantTypes: []string{store.GrantClientCredentials},
		Resources: []string{"https://api.example/", "urn:example:rs"}, Introspect: true}
	must(t, s.SaveClient(bg, newClient))
	c, err = s.GetClient(bg, "old")
	must(t, err)
	if !slices.Equal(c.Resources, newClient.Resources) || !c.Introspect || !slices.Equal(c.GrantTypes, newClient.GrantTypes) ||
		len(c.Scopes) != 0 || c.DPoPBound {
		t.Errorf("replaced client read back as %+v", c)
	}
	newCode := store.HashToken("new code")
	must(t, s.SaveCode(bg, newCode, &store.AuthorizationCode{GrantID: "g2", ClientID: "old", Resources: []string{"urn:example:rs"}, ExpiresAt: exp}))
	cd, err = s.ConsumeCode(bg, newCode)
	must(t, err)
	if !slices.Equal(cd.Resources, []string{"urn:example:rs"}) {
		t.Errorf("new code consumed as %+v", cd)
	}
	newAccess := store.HashToken("new access")
	claims := []byte(`{"n":1}`)
	must(t, s.SaveAccessToken(bg, newAccess, &store.AccessToken{GrantID: "g2", Audience: []string{"urn:example:rs"}, Claims: claims, IssuedAt: iat, ExpiresAt: exp}))
	at, err = s.GetAccessToken(bg, newAccess)
	must(t, err)
	if !slices.Equal(at.Audience, []string{"urn:example:rs"}) || !bytes.Equal(at.Claims, claims) {
		t.Errorf("new access token read back as %+v", at)
	}
	usePushedAndKeys(t, s, exp)
}

// usePushedAndKeys checks, on a migrated schema, what issue 14 added: a
// pushed request is saved, read and consumed once, and clients keep their
// JWK Set (byte for byte) or jwks_uri.
func usePushedAndKeys(t *testing.T, s *Store, exp time.Time) {
	t.Helper()
	par := store.HashToken("pushed")
	want := store.PushedRequest{ClientID: "old", Params: "response_type=code&scope=read", DPoPJKT: "jkt", ExpiresAt: exp}
	must(t, s.SavePushedRequest(bg, par, &want))
	got, err := s.GetPushedRequest(bg, par)
	must(t, err)
	if got.ClientID != want.ClientID || got.Params != want.Params || got.DPoPJKT != want.DPoPJKT || !got.ExpiresAt.Equal(exp) {
		t.Errorf("pushed request read back as %+v", got)
	}
	_, err = s.ConsumePushedRequest(bg, par)
	must(t, err)
	if got, err = s.ConsumePushedRequest(bg, par); !errors.Is(err, store.ErrConsumed) || got == nil || got.Params != want.Params {
		t.Errorf("second consumption of the pushed request: %+v, %v; want the record and ErrConsumed", got, err)
	}
	jwks := []byte(`{"keys":[ {"kty":"EC","crv":"P-256","x":"f83OJ3D2xF1Bg8vub9tLe1gHMzV76e8Tus9uPHvRVEU","y":"x_FEzRu9m36HLN_tue659LNpXW6pCyStikYjKIWI5a0"} ]}`)
	for _, c := range []*store.Client{
		{ID: "jwt", JWKS: jwks, GrantTypes: []string{store.GrantClientCredentials}},
		{ID: "jwt-uri", JWKSURI: "https://app.example/jwks.json", GrantTypes: []string{store.GrantClientCredentials}},
	} {
		must(t, s.SaveClient(bg, c))
		got, err := s.GetClient(bg, c.ID)
		must(t, err)
		if !bytes.Equal(got.JWKS, c.JWKS) || got.JWKSURI != c.JWKSURI || got.SecretHash != nil || got.Public() {
			t.Errorf("client %s read back as %+v", c.ID, got)
		}
	}
}

// TestMigrateFromV2 upgrades a schema the second version created, with a
// client that version wrote: Migrate adds the key columns and the table of
// pushed requests, the old client reads back without keys, and both new
// features work.
func TestMigrateFromV2(t *testing.T) {
	pool := testPool(t)
	schema := createOld(t, pool, schemaV2, "v2")
	_, err := pool.Exec(bg, `INSERT INTO `+pgx.Identifier{schema, "clients"}.Sanitize()+
		` (id, secret_hash, grant_types, resources, introspect) VALUES ($1, $2, $3, $4, true)`,
		"rs", store.HashSecret("rs"), []string{store.GrantClientCredentials}, []string{"urn:example:rs"})
	must(t, err)
	if _, err := New(bg, Options{Pool: pool, Schema: schema, CleanupInterval: -1}); err == nil {
		t.Error("New over the second version's schema, without pushed_requests, succeeded")
	}
	for i := range 2 {
		if err := Migrate(bg, pool, schema); err != nil {
			t.Fatalf("Migrate %d over the second version's schema: %v", i+1, err)
		}
	}
	s := openStore(t, pool, schema, nil)
	c, err := s.GetClient(bg, "rs")
	must(t, err)
	if c.JWKS != nil || c.JWKSURI != "" || !c.Introspect || !slices.Equal(c.Resources, []string{"urn:example:rs"}) || c.Public() {
		t.Errorf("the second version's client read back as %+v", c)
	}
	usePushedAndKeys(t, s, time.Now().Add(time.Hour).Truncate(time.Microsecond))
}

// TestMigratedColumns: a schema upgraded from the first or the second
// version and one created by the current schema.sql have the same columns, with the same
// types, nullability and defaults: the CREATE TABLE definitions and the
// ALTER TABLE statements at the end of schema.sql agree.
func TestMigratedColumns(t *testing.T) {
	pool := testPool(t)
	fresh := freshSchema(t, pool)
	want := columns(t, pool, fresh)
	if len(want) == 0 {
		t.Fatal("no columns found")
	}
	for _, k := range []string{"clients.resources", "clients.introspect", "codes.resources",
		"access_tokens.audience", "access_tokens.claims", "refresh_tokens.audience", "refresh_tokens.claims",
		"clients.jwks", "clients.jwks_uri", "pushed_requests.hash", "pushed_requests.client_id", "pushed_requests.params",
		"pushed_requests.dpop_jkt", "pushed_requests.expires_at", "pushed_requests.consumed"} {
		if _, ok := want[k]; !ok {
			t.Errorf("column %s missing", k)
		}
	}
	for _, old := range []struct{ file, version string }{{schemaV1, "v1"}, {schemaV2, "v2"}} {
		upgraded := createOld(t, pool, old.file, old.version)
		must(t, Migrate(bg, pool, upgraded))
		got := columns(t, pool, upgraded)
		for _, k := range slices.Sorted(maps.Keys(want)) {
			if got[k] != want[k] {
				t.Errorf("column %s: %q after the upgrade from %s, %q when created", k, got[k], old.version, want[k])
			}
		}
		for _, k := range slices.Sorted(maps.Keys(got)) {
			if _, ok := want[k]; !ok {
				t.Errorf("column %s exists only after the upgrade from %s", k, old.version)
			}
		}
	}
}

// columns describes the columns of schema's tables: "table.column" -> type,
// nullability and default.
func columns(t *testing.T, pool *pgxpool.Pool, schema string) map[string]string {
	t.Helper()
	rows, err := pool.Query(bg, `SELECT table_name::text, column_name::text, udt_name::text, is_nullable::text,
			coalesce(column_default::text, '')
		FROM information_schema.columns WHERE table_schema = $1`, schema)
	must(t, err)
	out := map[string]string{}
	for rows.Next() {
		var table, column, typ, nullable, def string
		must(t, rows.Scan(&table, &column, &typ, &nullable, &def))
		out[table+"."+column] = fmt.Sprintf("%s nullable=%s default=%s", typ, nullable, def)
	}
	must(t, rows.Err())
	return out
}
