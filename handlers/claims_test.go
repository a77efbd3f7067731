package handlers

import (
	"context"
	"encoding/base64"
	"encoding/json"
	"errors"
	"math"
	"net/http"
	"net/url"
	"reflect"
	"strings"
	"sync/atomic"
	"testing"

	"github.com/dpopkit/dpop"
	"github.com/dpopkit/dpop/store"
)

// hostClaims is the Config.Claims of these tests: a tenant and roles.
func hostClaims(_ context.Context, c *store.Client, t *store.AccessToken) (map[string]any, error) {
	return map[string]any{"tenant": "t-" + c.ID, "roles": []string{"admin", t.Subject}}, nil
}

// jwtPayload decodes the claims of a JWT.
func jwtPayload(t *testing.T, tok string) map[string]any {
	t.Helper()
	parts := strings.Split(tok, ".")
	if len(parts) != 3 {
		t.Fatalf("not a compact JWS: %q", tok)
	}
	raw, err := base64.RawURLEncoding.DecodeString(parts[1])
	if err != nil {
		t.Fatal(err)
	}
	var m map[string]any
	if err := json.Unmarshal(raw, &m); err != nil {
		t.Fatal(err)
	}
	return m
}

// Config.Claims: the host's claims go into the opaque token's record, the
// JWT access token (RFC 9068 §2.2.3.1) and the introspection answer
// (RFC 7662 §2.2), after the kit's own, which they cannot replace.
func TestClaimsInEveryFormat(t *testing.T) {
	wantClaims := map[string]any{"tenant": "t-conf", "roles": []any{"admin", "conf"}}
	for _, format := range []string{FormatOpaque, FormatJWT} {
		t.Run(format, func(t *testing.T) {
			h := newHarness(t, func(c *Config) {
				c.Claims = hostClaims
				if format == FormatJWT {
					c.AccessTokenFormat, c.SigningKeys = FormatJWT, keySet(esKey(t, "k1"))
				}
			})
			tok := wantToken(t, h.tokenRequest(withResources(ccForm(), rvAudience)), TokenTypeDPoP).str("access_token")
			if format == FormatJWT {
				p := jwtPayload(t, tok)
				for k, v := range wantClaims {
					if !reflect.DeepEqual(p[k], v) {
						t.Errorf("JWT %s = %v, want %v", k, p[k], v)
					}
				}
				if !reflect.DeepEqual(p["aud"], []any{rvAudience}) || p["client_id"] != confID {
					t.Errorf("JWT aud %v client_id %v", p["aud"], p["client_id"])
				}
			} else {
				rec, err := h.accessRecord(tok)
				if err != nil {
					t.Fatal(err)
				}
				var got map[string]any
				if err := json.Unmarshal(rec.Claims, &got); err != nil || !reflect.DeepEqual(got, wantClaims) {
					t.Errorf("record Claims %s (%v), want %v", rec.Claims, err, wantClaims)
				}
			}
			r := h.ixPost(url.Values{"token": {tok}}, rvBearerBasic)
			for k, v := range wantClaims {
				if !reflect.DeepEqual(r.body[k], v) {
					t.Errorf("introspection %s = %v, want %v (%s)", k, r.body[k], v, r.raw)
				}
			}
			if r.body["active"] != true || !reflect.DeepEqual(r.body["aud"], []any{rvAudience}) {
				t.Errorf("introspection %s", r.raw)
			}
		})
	}
}

// A host's claims that would name a registered claim, cannot be encoded or
// are too large, or a failing callback, fail the request: no token is
// issued without the claims the host meant it to carry.
func TestClaimsRefused(t *testing.T) {
	tests := []struct {
		name   string
		claims map[string]any
		err    error
	}{
		{"sub", map[string]any{"sub": "root"}, nil},
		{"aud", map[string]any{"aud": "https://elsewhere.example"}, nil},
		{"cnf", map[string]any{"cnf": map[string]any{"jkt": "x"}}, nil},
		{"active", map[string]any{"active": true}, nil},
		{"scope", map[string]any{"scope": "admin"}, nil},
		{"not JSON", map[string]any{"n": math.Inf(1)}, nil},
		{"too large", map[string]any{"big": strings.Repeat("x", MaxClaimsBytes)}, nil},
		{"callback error", nil, errors.New("directory down")},
	}
	for _, format := range []string{FormatOpaque, FormatJWT} {
		for _, tc := range tests {
			t.Run(format+"/"+tc.name, func(t *testing.T) {
				called := false
				h, saves := wrappedHarness(t, func(m *store.Memory) *savingStore { return &savingStore{Memory: m} }, func(c *Config) {
					c.Claims = func(context.Context, *store.Client, *store.AccessToken) (map[string]any, error) {
						called = true
						return tc.claims, tc.err
					}
					if format == FormatJWT {
						c.AccessTokenFormat, c.SigningKeys = FormatJWT, keySet(esKey(t, "k1"))
					}
				})
				r := h.tokenRequest(ccForm())
				wantError(t, r, http.StatusInternalServerError, dpop.CodeServerError)
				if !called || r.str("error_description") != "the server could not make the token's claims" || saves.n.Load() != 0 {
					t.Errorf("callback called %v, description %q, access tokens saved %d: want the claims' refusal and no token",
						called, r.str("error_description"), saves.n.Load())
				}
			})
		}
	}
}

// savingStore counts the access tokens saved.
type savingStore struct {
	*store.Memory
	n atomic.Int32
}

func (s *savingStore) SaveAccessToken(ctx context.Context, h store.TokenHash, t *store.AccessToken) error {
	s.n.Add(1)
	return s.Memory.SaveAccessToken(ctx, h, t)
}
