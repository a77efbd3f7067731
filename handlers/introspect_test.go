package handlers

import (
	"github.com/dpopkit/dpop"

	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"encoding/base64"
	"encoding/json"
	"errors"
	"net/http"
	"net/http/httptest"
	"net/url"
	"reflect"
	"strings"
	"testing"
	"time"

	"github.com/dpopkit/dpop/store"
	"github.com/lestrrat-go/jwx/v2/jwa"
	"github.com/lestrrat-go/jwx/v2/jwk"
)

func (h *harness) ixPost(form url.Values, basic string) response {
	h.t.Helper()
	return h.postBasic(h.srv.cfg.Paths.Introspect, form, basic)
}

// ixWantInactive asserts the one inactive answer: {"active":false} and
// nothing else (RFC 7662 §2.2).
func ixWantInactive(t *testing.T, r response) {
	t.Helper()
	if r.status != http.StatusOK || strings.TrimSpace(r.raw) != `{"active":false}` {
		t.Fatalf("got %d %s, want 200 {\"active\":false}", r.status, r.raw)
	}
	if cc := r.header.Get("Cache-Control"); cc != "no-store" {
		t.Errorf("Cache-Control %q", cc)
	}
}

// ixWantActive asserts an active answer with exactly the members of want.
func ixWantActive(t *testing.T, r response, want map[string]any) {
	t.Helper()
	if r.status != http.StatusOK {
		t.Fatalf("got %d %s", r.status, r.raw)
	}
	if !reflect.DeepEqual(r.body, want) {
		t.Errorf("got  %s\nwant %v", r.raw, want)
	}
	if ct, cc := r.header.Get("Content-Type"), r.header.Get("Cache-Control"); ct != "application/json" || cc != "no-store" {
		t.Errorf("Content-Type %q, Cache-Control %q", ct, cc)
	}
}

// ixDescription is the active introspection answer for a record's fields.
func ixDescription(h *harness, client, sub, scope, jkt, tokenType string, iat, exp time.Time) map[string]any {
	m := map[string]any{
		"active": true, "client_id": client, "scope": scope, "iss": h.ts.URL,
		"iat": float64(iat.Unix()), "exp": float64(exp.Unix()), "aud": []any{rvAudience},
	}
	if sub != "" {
		m["sub"] = sub
	}
	if tokenType != "" {
		m["token_type"] = tokenType
	}
	if jkt != "" {
		m["cnf"] = map[string]any{"jkt": jkt}
	}
	return m
}

func TestIntrospection(t *testing.T) {
	tests := []struct {
		name  string
		seed  func(t *testing.T, h *harness) any // returns the record to describe, or nil
		token string
		hint  string
		basic string
		tt    string // expected token_type
	}{{
		name: "DPoP-bound access token",
		seed: func(t *testing.T, h *harness) any {
			rec := rvAccess(confID, rvGrant, h.signer.JKT())
			rvSave(t, h.store, "tok", rec)
			return rec
		},
		tt: "DPoP",
	}, {
		name: "Bearer access token without subject",
		seed: func(t *testing.T, h *harness) any {
			rec := rvAccess(bearerID, "", "")
			rec.Subject, rec.Scope = "", "read"
			rvSave(t, h.store, "tok", rec)
			return rec
		},
		tt: "Bearer",
	}, {
		name: "access token introspected by another confidential client",
		seed: func(t *testing.T, h *harness) any {
			rec := rvAccess(bearerID, "", h.signer.JKT())
			rvSave(t, h.store, "tok", rec)
			return rec
		},
		basic: rvConfBasic,
		tt:    "DPoP",
	}, {
		name: "access token with a refresh_token hint",
		seed: func(t *testing.T, h *harness) any {
			rec := rvAccess(confID, rvGrant, h.signer.JKT())
			rvSave(t, h.store, "tok", rec)
			return rec
		},
		hint: "refresh_token",
		tt:   "DPoP",
	}, {
		name: "bound refresh token of a public client",
		seed: func(t *testing.T, h *harness) any {
			rec := rvRefresh(pubID, rvGrant, h.signer.JKT())
			rvSave(t, h.store, "tok", rec)
			return rec
		},
	}, {
		name: "refresh token with an access_token hint",
		seed: func(t *testing.T, h *harness) any {
			rec := rvRefresh(confID, rvGrant, "")
			rvSave(t, h.store, "tok", rec)
			return rec
		},
		hint: "access_token",
	}, {
		name: "expired access token",
		seed: func(t *testing.T, h *harness) any {
			rec := rvAccess(confID, rvGrant, h.signer.JKT())
			rec.ExpiresAt = time.Now().Add(-time.Second)
			rvSave(t, h.store, "tok", rec)
			return nil
		},
	}, {
		name: "revoked access token",
		seed: func(t *testing.T, h *harness) any {
			rvSave(t, h.store, "tok", rvAccess(confID, rvGrant, h.signer.JKT()))
			if err := h.store.RevokeAccessToken(context.Background(), store.HashToken("tok")); err != nil {
				t.Fatal(err)
			}
			return nil
		},
	}, {
		name: "access token of a revoked grant",
		seed: func(t *testing.T, h *harness) any {
			rvSave(t, h.store, "tok", rvAccess(confID, rvGrant, h.signer.JKT()))
			if err := h.store.RevokeGrant(context.Background(), rvGrant, time.Now().Add(time.Hour)); err != nil {
				t.Fatal(err)
			}
			return nil
		},
	}, {
		name: "rotated refresh token",
		seed: func(t *testing.T, h *harness) any {
			rvSave(t, h.store, "tok", rvRefresh(confID, rvGrant, ""))
			if _, err := h.store.RotateRefreshToken(context.Background(), store.HashToken("tok"), store.HashToken("next"), rvRefresh(confID, rvGrant, "")); err != nil {
				t.Fatal(err)
			}
			return nil
		},
		hint: "refresh_token",
	}, {
		name: "expired refresh token",
		seed: func(t *testing.T, h *harness) any {
			rec := rvRefresh(confID, rvGrant, "")
			rec.ExpiresAt = time.Now().Add(-time.Second)
			rvSave(t, h.store, "tok", rec)
			return nil
		},
	}, {
		name: "unknown token",
		seed: func(t *testing.T, h *harness) any { return nil },
	}, {
		name: "a token's hash is not the token",
		seed: func(t *testing.T, h *harness) any {
			rvSave(t, h.store, "tok", rvAccess(confID, rvGrant, ""))
			return nil
		},
		token: store.HashToken("tok").String(),
	}}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			h := newHarness(t, nil)
			rec := tc.seed(t, h)
			token, basic := tc.token, tc.basic
			if token == "" {
				token = "tok"
			}
			if basic == "" {
				basic = rvBearerBasic
			}
			form := url.Values{"token": {token}}
			if tc.hint != "" {
				form.Set("token_type_hint", tc.hint)
			}
			r := h.ixPost(form, basic)
			switch rec := rec.(type) {
			case nil:
				ixWantInactive(t, r)
			case *store.AccessToken:
				ixWantActive(t, r, ixDescription(h, rec.ClientID, rec.Subject, rec.Scope, rec.JKT, tc.tt, rec.IssuedAt, rec.ExpiresAt))
			case *store.RefreshToken:
				ixWantActive(t, r, ixDescription(h, rec.ClientID, rec.Subject, rec.Scope, rec.JKT, "", rec.IssuedAt, rec.ExpiresAt))
			}
		})
	}
}

func TestIntrospectionRefused(t *testing.T) {
	tests := []struct {
		name      string
		form      url.Values
		basic     string
		status    int
		code      dpop.ErrorCode
		challenge bool
	}{
		{"public client", url.Values{"token": {"tok"}, "client_id": {pubID}}, "", http.StatusUnauthorized, dpop.CodeInvalidClient, false},
		{"public client asking about its own token", url.Values{"token": {"tok-pub"}, "client_id": {pubID}}, "", http.StatusUnauthorized, dpop.CodeInvalidClient, false},
		{"no client authentication", url.Values{"token": {"tok"}}, "", http.StatusUnauthorized, dpop.CodeInvalidClient, false},
		{"wrong secret", url.Values{"token": {"tok"}}, confID + ":nope", http.StatusUnauthorized, dpop.CodeInvalidClient, true},
		{"unknown client", url.Values{"token": {"tok"}}, "stranger:secret", http.StatusUnauthorized, dpop.CodeInvalidClient, true},
		{"missing token", url.Values{}, rvConfBasic, http.StatusBadRequest, dpop.CodeInvalidRequest, false},
		{"repeated token", url.Values{"token": {"tok", "tok"}}, rvConfBasic, http.StatusBadRequest, dpop.CodeInvalidRequest, false},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			h := newHarness(t, nil)
			rvSave(t, h.store, "tok", rvAccess(confID, rvGrant, h.signer.JKT()))
			rvSave(t, h.store, "tok-pub", rvAccess(pubID, rvGrant, h.signer.JKT()))
			r := h.ixPost(tc.form, tc.basic)
			wantError(t, r, tc.status, tc.code)
			if _, ok := r.body["active"]; ok {
				t.Errorf("a refusal says whether the token is active: %s", r.raw)
			}
			if got := r.header.Get("WWW-Authenticate"); (got != "") != tc.challenge {
				t.Errorf("WWW-Authenticate %q, want a challenge: %v", got, tc.challenge)
			}
		})
	}
	t.Run("GET", func(t *testing.T) {
		h := newHarness(t, nil)
		req, _ := http.NewRequest(http.MethodGet, h.ts.URL+h.srv.cfg.Paths.Introspect+"?token=tok", nil)
		req.SetBasicAuth(confID, confSecret)
		r := h.do(req)
		wantError(t, r, http.StatusMethodNotAllowed, dpop.CodeInvalidRequest)
		if r.header.Get("Allow") != http.MethodPost {
			t.Errorf("Allow %q", r.header.Get("Allow"))
		}
	})
}

// A store failure refuses the introspection: it never claims "inactive".
func TestIntrospectionStoreFailure(t *testing.T) {
	m, err := store.NewMemory(store.MemoryOptions{})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { m.Close() })
	if err := m.SaveClient(context.Background(), &store.Client{ID: confID, SecretHash: store.HashSecret(confSecret), Resources: []string{rvAudience}, Introspect: true}); err != nil {
		t.Fatal(err)
	}
	tests := []struct {
		name, hint      string
		access, refresh bool // which lookups fail
	}{
		{"both lookups", "", true, true},
		{"access lookup, tried first", "access_token", true, false},
		{"access lookup, tried second", "refresh_token", true, false},
		{"refresh lookup, tried first", "refresh_token", false, true},
		{"refresh lookup, tried second", "", false, true},
		{"refresh lookup, unknown hint", "other", false, true},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			srv, err := New(Config{Issuer: "http://127.0.0.1:1", Store: brokenLookupStore{Memory: m, access: tc.access, refresh: tc.refresh}})
			if err != nil {
				t.Fatal(err)
			}
			// The token is of neither kind: every lookup runs.
			form := url.Values{"token": {"unknown"}}
			if tc.hint != "" {
				form.Set("token_type_hint", tc.hint)
			}
			req := httptest.NewRequest(http.MethodPost, "http://127.0.0.1:1/oauth2/introspect", strings.NewReader(form.Encode()))
			req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
			req.SetBasicAuth(confID, confSecret)
			w := httptest.NewRecorder()
			srv.IntrospectionHandler().ServeHTTP(w, req)
			var body map[string]any
			json.Unmarshal(w.Body.Bytes(), &body)
			if w.Code != http.StatusServiceUnavailable || body["error"] != string(dpop.CodeServerError) {
				t.Fatalf("got %d %s, want 503 server_error", w.Code, w.Body)
			}
			if _, ok := body["active"]; ok {
				t.Errorf("a store failure answered as an introspection: %s", w.Body)
			}
			if cc := w.Header().Get("Cache-Control"); cc != "no-store" {
				t.Errorf("Cache-Control %q", cc)
			}
		})
	}
}

// laggingStore returns expired records as live, as a store that reclaims
// lazily and checks no expiry might.
type laggingStore struct{ *store.Memory }

func (laggingStore) GetAccessToken(context.Context, store.TokenHash) (*store.AccessToken, error) {
	rec := rvAccess(confID, rvGrant, "")
	rec.ExpiresAt = time.Now().Add(-time.Minute)
	return rec, nil
}

func (laggingStore) GetRefreshToken(context.Context, store.TokenHash) (*store.RefreshToken, error) {
	rec := rvRefresh(confID, rvGrant, "")
	rec.ExpiresAt = time.Now().Add(-time.Minute)
	return rec, nil
}

func TestIntrospectionChecksExpiry(t *testing.T) {
	for _, hint := range []string{"access_token", "refresh_token"} {
		t.Run(hint, func(t *testing.T) {
			h := newHarness(t, func(c *Config) { c.Store = laggingStore{c.Store.(*store.Memory)} })
			ixWantInactive(t, h.ixPost(url.Values{"token": {"tok"}, "token_type_hint": {hint}}, rvConfBasic))
		})
	}
}

// ixSigningKey is an ES256 private JWK with kid and alg, as FormatJWT needs.
func ixSigningKey(t *testing.T, kid string) jwk.Key {
	t.Helper()
	raw, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	key, err := jwk.FromRaw(raw)
	if err != nil {
		t.Fatal(err)
	}
	if err := key.Set(jwk.KeyIDKey, kid); err != nil {
		t.Fatal(err)
	}
	if err := key.Set(jwk.AlgorithmKey, jwa.ES256); err != nil {
		t.Fatal(err)
	}
	return key
}

// ixJWTConfig switches a harness configuration to JWT access tokens.
func ixJWTConfig(t *testing.T, c *Config) {
	t.Helper()
	set := jwk.NewSet()
	if err := set.AddKey(ixSigningKey(t, "at-key-1")); err != nil {
		t.Fatal(err)
	}
	c.AccessTokenFormat, c.SigningKeys = FormatJWT, set
}

// ixTamper rewrites the payload of a compact JWS, keeping its signature.
func ixTamper(t *testing.T, token string, edit func(map[string]any)) string {
	t.Helper()
	parts := strings.Split(token, ".")
	if len(parts) != 3 {
		t.Fatalf("not a compact JWS: %q", token)
	}
	raw, err := base64.RawURLEncoding.DecodeString(parts[1])
	if err != nil {
		t.Fatal(err)
	}
	var claims map[string]any
	if err := json.Unmarshal(raw, &claims); err != nil {
		t.Fatal(err)
	}
	edit(claims)
	raw, _ = json.Marshal(claims)
	parts[1] = base64.RawURLEncoding.EncodeToString(raw)
	return strings.Join(parts, ".")
}

// ixJSONSerialization rewrites a compact JWS in the JSON serialization
// (RFC 7515 §7.2.2 flattened, or §7.2.1 general), same header, payload and
// signature.
func ixJSONSerialization(token string, general bool) string {
	p := strings.Split(token, ".")
	if general {
		return `{"payload":"` + p[1] + `","signatures":[{"protected":"` + p[0] + `","signature":"` + p[2] + `"}]}`
	}
	return `{"protected":"` + p[0] + `","payload":"` + p[1] + `","signature":"` + p[2] + `"}`
}

// Lookup reads only the compact serialization (RFC 7515 §7.1), as the
// middleware's JWTValidator does.
func TestJWTLookupRefusesJSONSerialization(t *testing.T) {
	h := newHarness(t, func(c *Config) { ixJWTConfig(t, c) })
	ctx := context.Background()
	tok, err := h.srv.AccessTokens().Issue(ctx, rvAccess(confID, rvGrant, h.signer.JKT()))
	if err != nil {
		t.Fatal(err)
	}
	if _, err := h.srv.AccessTokens().Lookup(ctx, tok); err != nil {
		t.Fatalf("compact token: %v", err)
	}
	for _, general := range []bool{false, true} {
		if rec, err := h.srv.AccessTokens().Lookup(ctx, ixJSONSerialization(tok, general)); !errors.Is(err, store.ErrNotFound) || rec != nil {
			t.Errorf("JSON serialization (general %v): %v, %v; want ErrNotFound", general, rec, err)
		}
	}
}

func TestIntrospectionJWT(t *testing.T) {
	h := newHarness(t, func(c *Config) { ixJWTConfig(t, c) })
	ctx := context.Background()
	issue := func(rec *store.AccessToken) string {
		t.Helper()
		tok, err := h.srv.AccessTokens().Issue(ctx, rec)
		if err != nil {
			t.Fatal(err)
		}
		return tok
	}
	bound := rvAccess(confID, rvGrant, h.signer.JKT())
	boundTok := issue(bound)
	bearer := rvAccess(bearerID, "", "")
	bearerTok := issue(bearer)
	expired := rvAccess(confID, rvGrant, h.signer.JKT())
	expired.IssuedAt, expired.ExpiresAt = time.Now().Add(-2*time.Hour), time.Now().Add(-time.Hour)

	// A token signed with another key under the same kid.
	other := newHarness(t, func(c *Config) {
		set := jwk.NewSet()
		set.AddKey(ixSigningKey(t, "at-key-1"))
		c.Issuer = h.ts.URL // the same issuer, for the claims to match
		c.AccessTokenFormat, c.SigningKeys = FormatJWT, set
	})
	forged, err := other.srv.AccessTokens().Issue(ctx, bound)
	if err != nil {
		t.Fatal(err)
	}
	sig := []byte(boundTok)
	i := strings.LastIndexByte(boundTok, '.') + 10
	if sig[i] == 'A' {
		sig[i] = 'B'
	} else {
		sig[i] = 'A'
	}

	tests := []struct {
		name  string
		token string
		want  map[string]any // nil: inactive
	}{
		{"bound", boundTok, ixDescription(h, confID, "alice", "read write", h.signer.JKT(), "DPoP", bound.IssuedAt, bound.ExpiresAt)},
		{"bearer", bearerTok, ixDescription(h, bearerID, "alice", "read write", "", "Bearer", bearer.IssuedAt, bearer.ExpiresAt)},
		{"expired", issue(expired), nil},
		{"payload changed", ixTamper(t, boundTok, func(c map[string]any) { c["sub"] = "mallory" }), nil},
		{"binding removed", ixTamper(t, boundTok, func(c map[string]any) { delete(c, "cnf") }), nil},
		{"signature changed", string(sig), nil},
		{"signed by another key", forged, nil},
		{"not a JWT", "a.b.c", nil},
		// The JWS JSON serialization (RFC 7515 §7.2) of a valid token: the
		// resource server refuses it, so introspection does too.
		{"flattened JSON serialization", ixJSONSerialization(boundTok, false), nil},
		{"general JSON serialization", ixJSONSerialization(boundTok, true), nil},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			r := h.ixPost(url.Values{"token": {tc.token}}, rvBearerBasic)
			if tc.want == nil {
				ixWantInactive(t, r)
			} else {
				ixWantActive(t, r, tc.want)
			}
		})
	}
}
