package handlers

import (
	"context"
	"errors"
	"fmt"
	"net/url"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/dpopkit/dpop"
	"github.com/dpopkit/dpop/store"
)

// Refusals of the token endpoint that a deleted check would turn into a
// token: each case would succeed but for the check it is named after.

// Rotation outcomes a refusalStore can force on RotateRefreshToken.
const (
	rotatePass int32 = iota // the memory store's own rotation
	rotateLose              // another use of the same token rotates it first
	rotateFail              // the store fails
)

// refusalStore is the harness store with what these tests need to see or
// force: the hash of the last access token saved, the number of access
// tokens saved and of replay entries taken, a rotation that loses its race
// or fails, and a grant revocation that fails.
type refusalStore struct {
	*store.Memory
	rotate          atomic.Int32
	failRevokeGrant atomic.Bool
	lastAccess      atomic.Pointer[store.TokenHash]
	accessSaves     atomic.Int32
	inserts         atomic.Int32
}

func (s *refusalStore) SaveAccessToken(ctx context.Context, h store.TokenHash, t *store.AccessToken) error {
	s.accessSaves.Add(1)
	s.lastAccess.Store(&h)
	return s.Memory.SaveAccessToken(ctx, h, t)
}

func (s *refusalStore) Insert(ctx context.Context, k dpop.ReplayKey, ttl time.Duration) (bool, error) {
	s.inserts.Add(1)
	return s.Memory.Insert(ctx, k, ttl)
}

func (s *refusalStore) RotateRefreshToken(ctx context.Context, old, h store.TokenHash, next *store.RefreshToken) (*store.RefreshToken, error) {
	switch s.rotate.Load() {
	case rotateLose:
		// The concurrent request wins: it rotates old into its own token
		// between this request's lookup and its rotation.
		winner := *next
		if _, err := s.Memory.RotateRefreshToken(ctx, old, store.HashToken(randomToken()), &winner); err != nil {
			return nil, err
		}
	case rotateFail:
		return nil, errDown
	}
	return s.Memory.RotateRefreshToken(ctx, old, h, next)
}

func (s *refusalStore) RevokeGrant(ctx context.Context, id string, until time.Time) error {
	if s.failRevokeGrant.Load() {
		return errDown
	}
	return s.Memory.RevokeGrant(ctx, id, until)
}

// refusalHarness is a harness whose store is a refusalStore.
func refusalHarness(t *testing.T, edit func(*Config)) (*harness, *refusalStore) {
	return wrappedHarness(t, func(m *store.Memory) *refusalStore { return &refusalStore{Memory: m} }, edit)
}

// wantDescription asserts the error_description of a refusal, where the
// code alone does not tell which check refused.
func wantDescription(t *testing.T, r response, description string) {
	t.Helper()
	if got := r.str("error_description"); got != description {
		t.Errorf("error_description %q, want %q", got, description)
	}
}

// Item: a code issued without redirect_uri (the authorization request had
// none, so the registered one was used) is redeemed with no redirect_uri or
// a registered one, and refused (invalid_grant) with any other; the refused
// code stays redeemable.
func TestTokenCodeWithoutRedirectURI(t *testing.T) {
	noRedirect := func(c *store.AuthorizationCode) { c.RedirectURI = "" }
	for _, tc := range []struct {
		name   string
		client string
		uri    string
		ok     bool
	}{
		{"public, unregistered URI", pubID, "https://evil.example/cb", false},
		{"public, registered URI with a trailing slash", pubID, redirectURI + "/", false},
		{"public, registered URI with a query", pubID, redirectURI + "?x=1", false},
		{"public, first registered URI", pubID, redirectURI, true},
		{"public, second registered URI", pubID, "http://127.0.0.1:8765/callback", true},
		{"confidential, unregistered URI", confID, "https://evil.example/cb", false},
		{"confidential, registered URI", confID, redirectURI, true},
	} {
		t.Run(tc.name, func(t *testing.T) {
			h := newHarness(t, nil)
			code := h.saveCode(tc.client, noRedirect)
			redeem := func(uri string) response {
				f := codeForm(code)
				if uri == "" {
					f.Del("redirect_uri")
				} else {
					f.Set("redirect_uri", uri)
				}
				if tc.client == pubID {
					return h.publicTokenRequest(f, h.signer)
				}
				return h.postForm(DefaultPaths.Token, f, confHeaders(h, h.signer))
			}
			r := redeem(tc.uri)
			if tc.ok {
				wantToken(t, r, TokenTypeDPoP)
				return
			}
			wantError(t, r, 400, dpop.CodeInvalidGrant)
			wantDescription(t, r, "redirect_uri does not match the authorization request")
			wantToken(t, redeem(""), TokenTypeDPoP)
		})
	}
}

// Item: a refresh may narrow the scope (RFC 6749 §6): the access token gets
// exactly the requested subset, while the refresh token keeps the original
// grant (a later refresh may ask for all of it again); a scope beyond the
// grant is refused with invalid_scope.
func TestTokenRefreshScope(t *testing.T) {
	fullScope := func(c *store.AuthorizationCode) { c.Scope = "read write" }
	refreshForm := func(rt, scope string) url.Values {
		f := url.Values{"grant_type": {"refresh_token"}, "refresh_token": {rt}}
		if scope != "" {
			f.Set("scope", scope)
		}
		return f
	}
	for _, client := range []string{confID, pubID} {
		// request sends a token request of client, with a fresh proof.
		request := func(h *harness, f url.Values) response {
			if client == pubID {
				return h.publicTokenRequest(f, h.signer)
			}
			return h.postForm(DefaultPaths.Token, f, confHeaders(h, h.signer))
		}
		for _, tc := range []struct {
			name, scope, want string
			refused           bool
		}{
			{"narrowed to read", "read", "read", false},
			{"narrowed to write", "write", "write", false},
			{"narrowed, extra spaces", "  write ", "write", false},
			{"the same scope", "write read", "write read", false},
			{"omitted", "", "read write", false},
			{"widened", "read write admin", "", true},
			{"another scope", "admin", "", true},
			{"a prefix of a granted scope", "rea", "", true},
		} {
			t.Run(client+", "+tc.name, func(t *testing.T) {
				h := newHarness(t, nil)
				first := wantToken(t, request(h, codeForm(h.saveCode(client, fullScope))), TokenTypeDPoP)
				rt := first.str("refresh_token")
				r := request(h, refreshForm(rt, tc.scope))
				if tc.refused {
					wantError(t, r, 400, dpop.CodeInvalidScope)
					return
				}
				wantToken(t, r, TokenTypeDPoP)
				if got := r.str("scope"); got != tc.want {
					t.Errorf("response scope %q, want %q", got, tc.want)
				}
				rec, err := h.accessRecord(r.str("access_token"))
				if err != nil || rec.Scope != tc.want {
					t.Fatalf("access token %+v, %v; want scope %q", rec, err, tc.want)
				}
				// The refresh token still carries the whole grant.
				if next := r.str("refresh_token"); next != "" {
					rt = next
				}
				again := wantToken(t, request(h, refreshForm(rt, "read write")), TokenTypeDPoP)
				if got := again.str("scope"); got != "read write" {
					t.Errorf("after narrowing, a refresh for the whole grant got %q", got)
				}
			})
		}
	}
}

// Item: a public client's refresh whose rotation fails after the access
// token was minted (another use of the same refresh token won the race, or
// the store failed) is refused, and the minted access token is withdrawn
// from the store: not merely covered by a grant revocation, which may
// itself fail.
func TestTokenRefreshRotationLost(t *testing.T) {
	for _, tc := range []struct {
		name            string
		rotate          int32
		failRevokeGrant bool
		status          int
		code            dpop.ErrorCode
	}{
		{"lost the race", rotateLose, false, 400, dpop.CodeInvalidGrant},
		{"lost the race, grant revocation fails", rotateLose, true, 400, dpop.CodeInvalidGrant},
		{"store failure", rotateFail, false, 503, dpop.CodeServerError},
	} {
		t.Run(tc.name, func(t *testing.T) {
			h, rs := refusalHarness(t, nil)
			first := wantToken(t, h.publicTokenRequest(codeForm(h.saveCode(pubID, nil)), h.signer), TokenTypeDPoP)
			saves := rs.accessSaves.Load()
			rs.rotate.Store(tc.rotate)
			rs.failRevokeGrant.Store(tc.failRevokeGrant)
			r := h.publicTokenRequest(url.Values{"grant_type": {"refresh_token"}, "refresh_token": {first.str("refresh_token")}}, h.signer)
			wantError(t, r, tc.status, tc.code)
			if r.str("access_token") != "" || r.str("refresh_token") != "" {
				t.Fatalf("refusal carries tokens: %s", r.raw)
			}
			if rs.accessSaves.Load() != saves+1 {
				t.Fatalf("%d access tokens minted by the refresh, want 1 (the rotation must come after it)", rs.accessSaves.Load()-saves)
			}
			minted := *rs.lastAccess.Load()
			if _, err := h.store.GetAccessToken(ctx, minted); !errors.Is(err, store.ErrNotFound) {
				t.Fatalf("the access token minted before the failed rotation: %v, want it withdrawn (ErrNotFound)", err)
			}
			if tc.rotate == rotateFail {
				// The store failed: nothing was rotated, and the client's
				// retry with the same refresh token succeeds.
				rs.rotate.Store(rotatePass)
				wantToken(t, h.publicTokenRequest(url.Values{"grant_type": {"refresh_token"}, "refresh_token": {first.str("refresh_token")}}, h.signer), TokenTypeDPoP)
			}
		})
	}
}

// Item: a scope policy that fails (an error not wrapping ErrScope) refuses
// the request with 500 server_error, whatever scopes it returned beside the
// error: no token, not even one with an empty scope, and nothing spent. An
// error wrapping ErrScope is invalid_scope.
func TestTokenScopePolicyFailure(t *testing.T) {
	policyDown := errors.New("policy backend down")
	for _, tc := range []struct {
		name    string
		granted []string
		err     error
		scope   string
		status  int
		code    dpop.ErrorCode
	}{
		{"error, no scopes", nil, policyDown, "", 500, dpop.CodeServerError},
		{"error with scopes", []string{"read"}, policyDown, "read", 500, dpop.CodeServerError},
		{"error with an empty list", []string{}, policyDown, "read", 500, dpop.CodeServerError},
		{"wrapped ErrScope", nil, fmt.Errorf("no admin for you: %w", ErrScope), "admin", 400, dpop.CodeInvalidScope},
	} {
		t.Run(tc.name, func(t *testing.T) {
			h, rs := refusalHarness(t, func(c *Config) {
				c.ScopePolicy = func(context.Context, *store.Client, []string) ([]string, error) { return tc.granted, tc.err }
			})
			f := ccForm()
			if tc.scope != "" {
				f.Set("scope", tc.scope)
			}
			r := h.tokenRequest(f)
			wantError(t, r, tc.status, tc.code)
			if r.str("access_token") != "" {
				t.Fatalf("refusal carries a token: %s", r.raw)
			}
			if n := rs.accessSaves.Load(); n != 0 {
				t.Errorf("%d access tokens saved", n)
			}
			if n := rs.inserts.Load(); n != 0 {
				t.Errorf("%d replay entries taken", n)
			}
		})
	}
}

// Item: an Authorization header that is not Basic, sent with a public
// client's client_id in the body, is a second (unsupported) client
// authentication: invalid_client, even for a request that would otherwise
// redeem a valid code, which stays redeemable.
func TestTokenNonBasicAuthorizationWithPublicClient(t *testing.T) {
	for _, auth := range []string{
		"Bearer x",
		"DPoP x",
		"Digest username=\"pub\"",
		"Basic",
		"Basic !!!not-base64",
		"basicx " + strings.Repeat("A", 8),
	} {
		t.Run(auth, func(t *testing.T) {
			h := newHarness(t, nil)
			code := h.saveCode(pubID, nil)
			f := codeForm(code)
			f.Set("client_id", pubID)
			r := h.postForm(DefaultPaths.Token, f, map[string]string{
				"Authorization": auth,
				"DPoP":          h.proof("POST", DefaultPaths.Token, dpop.ProofOptions{}),
			})
			wantError(t, r, 401, dpop.CodeInvalidClient)
			if got := r.header.Get("WWW-Authenticate"); got != "" {
				t.Errorf("WWW-Authenticate %q for a request that did not try Basic", got)
			}
			wantToken(t, h.publicTokenRequest(codeForm(code), h.signer), TokenTypeDPoP)
		})
	}
}
