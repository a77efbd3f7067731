package adaptertest

import (
	"bytes"
	"fmt"
	"reflect"
	"slices"
	"strings"
	"time"
	"unicode/utf8"

	"github.com/dpopkit/dpop/store"
)

// Sample records with every field set to a distinct, non-empty value, so
// that a field lost or swapped in a round trip shows.

// The host's claims of the sample tokens: JSON objects, kept as bytes. Their
// members are out of order, with spacing, an escape and a number that a
// parser would rewrite (as a jsonb column or a decode and re-encode does), so
// that a store that does not keep the bytes exactly as given shows.
const (
	accessClaims  = `{"tenant":"t-1", "roles":["admin",null,true],"n":1.50,"e":"\u00e9 ünï"}`
	refreshClaims = `{"z":{},"a":[]}`
)

func sampleClient(id string) *store.Client {
	return &store.Client{
		ID:              id,
		SecretHash:      store.HashSecret("secret of " + id),
		GrantTypes:      []string{"authorization_code", "client_credentials", "refresh_token"},
		RedirectURIs:    []string{"https://app.example/callback", "http://127.0.0.1:8765/cb?x=1"},
		Scopes:          []string{"read", "write", "ünïcode"},
		Resources:       []string{"https://api.example/v1?tenant=a&x=1", "urn:example:resource-server"},
		Introspect:      true,
		DPoPBound:       true,
		AccessTokenTTL:  17 * time.Minute,
		RefreshTokenTTL: 29 * time.Hour,
	}
}

// clientJWKS is the JWK Set of the sample private_key_jwt client: a
// document with members out of order, spacing, an escape and a member
// beside "keys", which a store that parses and re-encodes it (a jsonb
// column) would rewrite. Stores keep it byte for byte.
const clientJWKS = `{ "keys": [
  {"kty":"EC", "crv":"P-256", "kid":"k\u00e9-1", "use":"sig",
   "x":"f83OJ3D2xF1Bg8vub9tLe1gHMzV76e8Tus9uPHvRVEU", "y":"x_FEzRu9m36HLN_tue659LNpXW6pCyStikYjKIWI5a0"},
  {"crv":"Ed25519","kty":"OKP","x":"11qYAYKxCrfVS_7TyWQHOg7hcvPapiMlrwIaaPcHURo"}
 ], "x-note" : 1.50 }`

// sampleKeyClient is a private_key_jwt client with its JWK Set (clientJWKS);
// with uri, one that publishes it at a jwks_uri instead.
func sampleKeyClient(id string, uri bool) *store.Client {
	c := sampleClient(id)
	c.SecretHash = nil
	if uri {
		c.JWKSURI = "https://app.example/.well-known/jwks.json?tenant=a&v=2"
	} else {
		c.JWKS = []byte(clientJWKS)
	}
	return c
}

func sampleCode(grant string, exp time.Time) *store.AuthorizationCode {
	return &store.AuthorizationCode{
		GrantID:             grant,
		ClientID:            unicodeID,
		RedirectURI:         "https://app.example/callback?a=b&c=d",
		Scope:               "read write",
		Subject:             "alice@example.com",
		CodeChallenge:       "E9Melhoa2OwvFrEMTJguCHaoeK1t8URWbuGJSstw-cM",
		CodeChallengeMethod: "S256",
		DPoPJKT:             "0ZcOCORZNYy-DWpqq30jZyJGHTN0d2HglBV3uiguA4I",
		Resources:           []string{"https://api.example/v1?tenant=a&x=1", "urn:example:resource-server"},
		ExpiresAt:           exp,
	}
}

func sampleAccess(grant string, exp time.Time) *store.AccessToken {
	return &store.AccessToken{
		GrantID:   grant,
		ClientID:  unicodeID,
		Subject:   "alice",
		Scope:     "read",
		JKT:       "NzbLsXh8uDCcd-6MNwXF4W_7noWXFZAfHkxZsRGC9Xs",
		Audience:  []string{"https://api.example/v1?tenant=a&x=1", "urn:example:resource-server"},
		Claims:    []byte(accessClaims),
		IssuedAt:  exp.Add(-time.Hour),
		ExpiresAt: exp,
	}
}

func sampleRefresh(grant string, exp time.Time) *store.RefreshToken {
	return &store.RefreshToken{
		GrantID:   grant,
		ClientID:  "public-client",
		Subject:   "bob",
		Scope:     "read write offline",
		JKT:       "0ZcOCORZNYy-DWpqq30jZyJGHTN0d2HglBV3uiguA4I",
		Audience:  []string{"urn:example:resource-server"},
		Claims:    []byte(refreshClaims),
		IssuedAt:  exp.Add(-2 * time.Hour),
		ExpiresAt: exp,
	}
}

// diff describes how two records differ ("" when equal), field by field:
// got and want are pointers to records of one type (store.Client,
// store.AuthorizationCode, store.AccessToken or store.RefreshToken), and
// every exported field of the record is compared. Times are compared as instants;
// nil and empty slices are the same (a store may answer nil for an empty
// list, or for absent claims), while any other difference in a []string or
// []byte, order and bytes included, is one.
func diff(got, want any) string {
	g, w := reflect.ValueOf(got), reflect.ValueOf(want)
	if g.Type() != w.Type() || g.Kind() != reflect.Pointer || g.Type().Elem().Kind() != reflect.Struct {
		return fmt.Sprintf("cannot compare %T with %T", got, want)
	}
	if g.IsNil() || w.IsNil() {
		if g.IsNil() == w.IsNil() {
			return ""
		}
		return fmt.Sprintf("got %v, want %v", got, want)
	}
	g, w = g.Elem(), w.Elem()
	var d []string
	for i := range g.NumField() {
		if !g.Type().Field(i).IsExported() {
			continue
		}
		name, gf, wf := g.Type().Field(i).Name, g.Field(i).Interface(), w.Field(i).Interface()
		switch gv := gf.(type) {
		case time.Time:
			if !gv.Equal(wf.(time.Time)) {
				d = append(d, fmt.Sprintf("%s = %v, want %v", name, gv, wf))
			}
		case []string:
			if !slices.Equal(gv, wf.([]string)) {
				d = append(d, fmt.Sprintf("%s = %q, want %q", name, gv, wf))
			}
		case []byte:
			if w := wf.([]byte); !bytes.Equal(gv, w) {
				// Text (claims) is shown as text, other bytes in hex.
				format := "%s = %x, want %x"
				if utf8.Valid(gv) && utf8.Valid(w) {
					format = "%s = %q, want %q"
				}
				d = append(d, fmt.Sprintf(format, name, gv, w))
			}
		default:
			if gf != wf {
				d = append(d, fmt.Sprintf("%s = %#v, want %#v", name, gf, wf))
			}
		}
	}
	return strings.Join(d, "; ")
}
