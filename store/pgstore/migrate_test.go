package pgstore

import (
	"bytes"
	"context"
	"crypto/rand"
	"encoding/hex"
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

// createV1 creates schema with the first version's schema.sql, as that
// version's Migrate did, and drops it when the test ends.
func createV1(t *testing.T, pool *pgxpool.Pool) string {
	t.Helper()
	ddl, err := os.ReadFile(schemaV1)
	if err != nil {
		t.Fatal(err)
	}
	var b [8]byte
	rand.Read(b[:])
	schema := "dpoptest_v1_" + hex.EncodeToString(b[:])
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(bg, 30*time.Second)
		defer cancel()
		if _, err := pool.Exec(ctx, "DROP SCHEMA IF EXISTS "+pgx.Identifier{schema}.Sanitize()+" CASCADE"); err != nil {
			t.Errorf("drop schema %s: %v", schema, err)
		}
	})
	// No arguments: the simple protocol, which runs several statements.
	if _, err := pool.Exec(bg, strings.ReplaceAll(string(ddl), "{schema}", pgx.Identifier{schema}.Sanitize())); err != nil {
		t.Fatalf("creating the first version's schema: %v", err)
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
	if len(c.Resources) != 0 || c.Introspect || !bytes.Equal(c.SecretHash, secret) || !c.DPoPBound ||
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
}

// TestMigratedColumns: a schema upgraded from the first version and one
// created by the current schema.sql have the same columns, with the same
// types, nullability and defaults: the CREATE TABLE definitions and the
// ALTER TABLE statements at the end of schema.sql agree.
func TestMigratedColumns(t *testing.T) {
	pool := testPool(t)
	upgraded := createV1(t, pool)
	must(t, Migrate(bg, pool, upgraded))
	fresh := freshSchema(t, pool)
	want, got := columns(t, pool, fresh), columns(t, pool, upgraded)
	if len(want) == 0 {
		t.Fatal("no columns found")
	}
	for _, k := range slices.Sorted(maps.Keys(want)) {
		if got[k] != want[k] {
			t.Errorf("column %s: %q after the upgrade, %q when created", k, got[k], want[k])
		}
	}
	for _, k := range slices.Sorted(maps.Keys(got)) {
		if _, ok := want[k]; !ok {
			t.Errorf("column %s exists only after the upgrade", k)
		}
	}
	for _, k := range []string{"clients.resources", "clients.introspect", "codes.resources",
		"access_tokens.audience", "access_tokens.claims", "refresh_tokens.audience", "refresh_tokens.claims"} {
		if _, ok := want[k]; !ok {
			t.Errorf("column %s missing", k)
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
