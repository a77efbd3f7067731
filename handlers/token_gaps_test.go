package handlers

import (
	"context"
	"errors"
	"maps"
	"net/http"
	"net/url"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/dpopkit/dpop"
	"github.com/dpopkit/dpop/store"
)

// Token endpoint and client authentication behaviour that the mutation run
// found untested: the DPoP-Nonce header of every answer, what a code
// redemption does with each answer of the store, store failures while
// issuing, the client's own token lifetimes, and client authentication
// failures that need no store.

// gapStore is the harness's memory store with a hook per method that tests
// here need to steer (a nil hook passes the call on), counting the calls of
// every method it overrides.
type gapStore struct {
	*store.Memory
	mu    sync.Mutex
	hooks gapHooks
	calls map[string]int
}

type gapHooks struct {
	getClient     func(ctx context.Context, id string) (*store.Client, error)
	saveCode      func(ctx context.Context, h store.TokenHash, c *store.AuthorizationCode) error
	getCode       func(ctx context.Context, h store.TokenHash) (*store.AuthorizationCode, error)
	consumeCode   func(ctx context.Context, h store.TokenHash) (*store.AuthorizationCode, error)
	getAccess     func(ctx context.Context, h store.TokenHash) (*store.AccessToken, error)
	revokeAccess  func(ctx context.Context, h store.TokenHash) error
	saveRefresh   func(ctx context.Context, h store.TokenHash, t *store.RefreshToken) error
	getRefresh    func(ctx context.Context, h store.TokenHash) (*store.RefreshToken, error)
	rotate        func(ctx context.Context, old, h store.TokenHash, next *store.RefreshToken) (*store.RefreshToken, error)
	revokeRefresh func(ctx context.Context, h store.TokenHash) error
}

// gapHarness is a harness whose store is a gapStore with the hooks that
// hooks sets (nil: none yet; set later with gapStore.set).
func gapHarness(t *testing.T, hooks func(s *gapStore, k *gapHooks), edit func(*Config)) (*harness, *gapStore) {
	return wrappedHarness(t, func(m *store.Memory) *gapStore {
		s := &gapStore{Memory: m}
		if hooks != nil {
			hooks(s, &s.hooks)
		}
		return s
	}, edit)
}

// set changes the hooks.
func (s *gapStore) set(edit func(k *gapHooks)) {
	s.mu.Lock()
	defer s.mu.Unlock()
	edit(&s.hooks)
}

// enter counts a call of method and returns the hooks in force.
func (s *gapStore) enter(method string) gapHooks {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.calls == nil {
		s.calls = map[string]int{}
	}
	s.calls[method]++
	return s.hooks
}

// called is how many times method was called.
func (s *gapStore) called(method string) int {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.calls[method]
}

func (s *gapStore) GetClient(ctx context.Context, id string) (*store.Client, error) {
	if f := s.enter("GetClient").getClient; f != nil {
		return f(ctx, id)
	}
	return s.Memory.GetClient(ctx, id)
}

func (s *gapStore) SaveCode(ctx context.Context, h store.TokenHash, c *store.AuthorizationCode) error {
	if f := s.enter("SaveCode").saveCode; f != nil {
		return f(ctx, h, c)
	}
	return s.Memory.SaveCode(ctx, h, c)
}

func (s *gapStore) GetCode(ctx context.Context, h store.TokenHash) (*store.AuthorizationCode, error) {
	if f := s.enter("GetCode").getCode; f != nil {
		return f(ctx, h)
	}
	return s.Memory.GetCode(ctx, h)
}

func (s *gapStore) ConsumeCode(ctx context.Context, h store.TokenHash) (*store.AuthorizationCode, error) {
	if f := s.enter("ConsumeCode").consumeCode; f != nil {
		return f(ctx, h)
	}
	return s.Memory.ConsumeCode(ctx, h)
}

func (s *gapStore) SaveAccessToken(ctx context.Context, h store.TokenHash, t *store.AccessToken) error {
	s.enter("SaveAccessToken")
	return s.Memory.SaveAccessToken(ctx, h, t)
}

func (s *gapStore) GetAccessToken(ctx context.Context, h store.TokenHash) (*store.AccessToken, error) {
	if f := s.enter("GetAccessToken").getAccess; f != nil {
		return f(ctx, h)
	}
	return s.Memory.GetAccessToken(ctx, h)
}

func (s *gapStore) RevokeAccessToken(ctx context.Context, h store.TokenHash) error {
	if f := s.enter("RevokeAccessToken").revokeAccess; f != nil {
		return f(ctx, h)
	}
	return s.Memory.RevokeAccessToken(ctx, h)
}

func (s *gapStore) SaveRefreshToken(ctx context.Context, h store.TokenHash, t *store.RefreshToken) error {
	if f := s.enter("SaveRefreshToken").saveRefresh; f != nil {
		return f(ctx, h, t)
	}
	return s.Memory.SaveRefreshToken(ctx, h, t)
}

func (s *gapStore) GetRefreshToken(ctx context.Context, h store.TokenHash) (*store.RefreshToken, error) {
	if f := s.enter("GetRefreshToken").getRefresh; f != nil {
		return f(ctx, h)
	}
	return s.Memory.GetRefreshToken(ctx, h)
}

func (s *gapStore) RotateRefreshToken(ctx context.Context, old, h store.TokenHash, next *store.RefreshToken) (*store.RefreshToken, error) {
	if f := s.enter("RotateRefreshToken").rotate; f != nil {
		return f(ctx, old, h, next)
	}
	return s.Memory.RotateRefreshToken(ctx, old, h, next)
}

func (s *gapStore) RevokeRefreshToken(ctx context.Context, h store.TokenHash) error {
	if f := s.enter("RevokeRefreshToken").revokeRefresh; f != nil {
		return f(ctx, h)
	}
	return s.Memory.RevokeRefreshToken(ctx, h)
}

func (s *gapStore) RevokeGrant(ctx context.Context, id string, until time.Time) error {
	s.enter("RevokeGrant")
	return s.Memory.RevokeGrant(ctx, id, until)
}

func (s *gapStore) Insert(ctx context.Context, k dpop.ReplayKey, ttl time.Duration) (bool, error) {
	s.enter("Insert")
	return s.Memory.Insert(ctx, k, ttl)
}

// spent is how much of what others need the requests so far took: replay
// cache entries, code redemptions and grant revocations.
func (s *gapStore) spent() int {
	return s.called("Insert") + s.called("ConsumeCode") + s.called("RevokeGrant")
}

// gapNonces is a nonce source that fails, returning nonce beside its error.
type gapNonces struct{ nonce string }

func (n gapNonces) Nonce(context.Context) (string, error) { return n.nonce, errDown }

func (gapNonces) Check(context.Context, string) (time.Time, bool) { return time.Time{}, false }

// gapWantNoNonce asserts that a response carries no DPoP-Nonce header, not
// even an empty one.
func gapWantNoNonce(t *testing.T, r response) {
	t.Helper()
	if vs := r.header.Values("DPoP-Nonce"); len(vs) != 0 {
		t.Errorf("DPoP-Nonce %q, want no header", vs)
	}
}

// Every answer of the token endpoint carries one fresh DPoP-Nonce when
// nonces are on, refusals that have nothing to do with the nonce included
// (TokenHandler), and none at all, not even an empty header, when nonces are
// off or the nonce source fails.
func TestTokenGapNonceHeader(t *testing.T) {
	wrongSecret := func(h *harness) response {
		return h.postForm(DefaultPaths.Token, ccForm(), map[string]string{"basic": confID + ":wrong", "DPoP": h.proof("POST", DefaultPaths.Token, dpop.ProofOptions{})})
	}
	unsupported := func(h *harness) response {
		return h.tokenRequest(url.Values{"grant_type": {"password"}})
	}
	unknownCode := func(h *harness) response {
		return h.publicTokenRequest(codeForm("no-such-code"), h.signer)
	}

	t.Run("nonces off", func(t *testing.T) {
		h := newHarness(t, nil)
		r := wantToken(t, h.tokenRequest(ccForm()), TokenTypeDPoP)
		gapWantNoNonce(t, r)
		for _, tc := range []struct {
			name   string
			send   func(*harness) response
			status int
			code   dpop.ErrorCode
		}{
			{"invalid_client", wrongSecret, 401, dpop.CodeInvalidClient},
			{"unsupported_grant_type", unsupported, 400, dpop.CodeUnsupportedGrantType},
			{"invalid_grant", unknownCode, 400, dpop.CodeInvalidGrant},
		} {
			t.Run(tc.name, func(t *testing.T) {
				r := tc.send(h)
				wantError(t, r, tc.status, tc.code)
				gapWantNoNonce(t, r)
			})
		}
	})

	t.Run("nonce source failing", func(t *testing.T) {
		for _, stale := range []string{"", "stale-nonce-value"} {
			h := newHarness(t, func(c *Config) { c.DPoP.Nonces = gapNonces{nonce: stale} })
			r := wrongSecret(h)
			wantError(t, r, 401, dpop.CodeInvalidClient)
			gapWantNoNonce(t, r)
		}
	})

	t.Run("nonces on", func(t *testing.T) {
		nonces, err := dpop.NewHMACNonceSource(dpop.HMACNonceOptions{Secret: []byte(strings.Repeat("n", 32))})
		if err != nil {
			t.Fatal(err)
		}
		h := newHarness(t, func(c *Config) { c.DPoP.Nonces = nonces })
		// wantNonce asserts one nonce the source accepts.
		wantNonce := func(t *testing.T, r response) string {
			t.Helper()
			vs := r.header.Values("DPoP-Nonce")
			if len(vs) != 1 || vs[0] == "" {
				t.Fatalf("DPoP-Nonce %q, want one nonce", vs)
			}
			if _, ok := nonces.Check(context.Background(), vs[0]); !ok {
				t.Errorf("DPoP-Nonce %q is not a nonce of the source", vs[0])
			}
			return vs[0]
		}
		for _, tc := range []struct {
			name   string
			send   func(*harness) response
			status int
			code   dpop.ErrorCode
		}{
			{"invalid_client", wrongSecret, 401, dpop.CodeInvalidClient},
			{"unsupported_grant_type", unsupported, 400, dpop.CodeUnsupportedGrantType},
			{"invalid_grant", unknownCode, 400, dpop.CodeInvalidGrant},
			{"use_dpop_nonce", func(h *harness) response { return h.tokenRequest(ccForm()) }, 400, dpop.CodeUseNonce},
		} {
			t.Run(tc.name, func(t *testing.T) {
				r := tc.send(h)
				wantError(t, r, tc.status, tc.code)
				wantNonce(t, r)
			})
		}
		t.Run("success", func(t *testing.T) {
			nonce := wantNonce(t, h.tokenRequest(ccForm()))
			r := h.postForm(DefaultPaths.Token, ccForm(), map[string]string{
				"basic": confID + ":" + confSecret,
				"DPoP":  h.proof("POST", DefaultPaths.Token, dpop.ProofOptions{Nonce: nonce}),
			})
			wantToken(t, r, TokenTypeDPoP)
			wantNonce(t, r)
		})
	})
}

// gapGrant is the grant of the codes these tests save; gapGrantToken is an
// access token of that grant, issued before the request under test, whose
// state tells whether the request revoked the grant.
const (
	gapGrant      = "gap-grant"
	gapGrantToken = "gap-grant-access-token"
)

// gapSaveGrantCode saves a code of client for gapGrant and an access token
// of the same grant, and returns the code.
func gapSaveGrantCode(t *testing.T, h *harness, client string) string {
	t.Helper()
	code := h.saveCode(client, func(c *store.AuthorizationCode) { c.GrantID = gapGrant })
	rvSave(t, h.store, gapGrantToken, rvAccess(client, gapGrant, ""))
	return code
}

// gapWantGrant asserts whether gapGrant was revoked.
func gapWantGrant(t *testing.T, h *harness, revoked bool) {
	t.Helper()
	err := rvAccessErr(h, gapGrantToken)
	switch {
	case revoked && !errors.Is(err, store.ErrRevoked):
		t.Errorf("the grant's access token: %v, want the grant revoked (ErrRevoked)", err)
	case !revoked && err != nil:
		t.Errorf("the grant's access token: %v, want the grant left alone", err)
	}
}

// gapWantNoTokens asserts a refusal that hands out nothing.
func gapWantNoTokens(t *testing.T, r response) {
	t.Helper()
	if r.str("access_token") != "" || r.str("refresh_token") != "" {
		t.Fatalf("refusal carries tokens: %s", r.raw)
	}
}

// The redemption of a code (ConsumeCode, after every check passed) is
// answered by what the store says then: a code another request redeemed
// first is a replay by its owner (invalid_grant, grant revoked, no token);
// a code gone meanwhile is invalid_grant; a store failure is 503 and spends
// nothing, so that the client's retry redeems the code.
func TestTokenGapCodeRedemption(t *testing.T) {
	for _, tc := range []struct {
		name    string
		consume func(s *gapStore) func(context.Context, store.TokenHash) (*store.AuthorizationCode, error)
		status  int
		code    dpop.ErrorCode
		revoked bool
		retry   bool // the code is still redeemable afterwards
	}{
		{"another redemption won", func(s *gapStore) func(context.Context, store.TokenHash) (*store.AuthorizationCode, error) {
			return func(ctx context.Context, h store.TokenHash) (*store.AuthorizationCode, error) {
				if _, err := s.Memory.ConsumeCode(ctx, h); err != nil {
					return nil, err
				}
				return s.Memory.ConsumeCode(ctx, h)
			}
		}, 400, dpop.CodeInvalidGrant, true, false},
		{"expired meanwhile", func(*gapStore) func(context.Context, store.TokenHash) (*store.AuthorizationCode, error) {
			return func(context.Context, store.TokenHash) (*store.AuthorizationCode, error) { return nil, store.ErrExpired }
		}, 400, dpop.CodeInvalidGrant, false, true},
		{"store failure", func(*gapStore) func(context.Context, store.TokenHash) (*store.AuthorizationCode, error) {
			return func(context.Context, store.TokenHash) (*store.AuthorizationCode, error) { return nil, errDown }
		}, 503, dpop.CodeServerError, false, true},
	} {
		for _, client := range []string{pubID, confID} {
			t.Run(tc.name+", "+client, func(t *testing.T) {
				h, gs := gapHarness(t, nil, nil)
				code := gapSaveGrantCode(t, h, client)
				gs.set(func(k *gapHooks) { k.consumeCode = tc.consume(gs) })
				redeem := func() response {
					if client == pubID {
						return h.publicTokenRequest(codeForm(code), h.signer)
					}
					return h.postForm(DefaultPaths.Token, codeForm(code), confHeaders(h, h.signer))
				}
				r := redeem()
				wantError(t, r, tc.status, tc.code)
				gapWantNoTokens(t, r)
				if tc.code == dpop.CodeInvalidGrant {
					wantDescription(t, r, "the code is invalid, expired or already used")
				}
				if n := gs.called("SaveAccessToken"); n != 0 {
					t.Errorf("%d access tokens saved", n)
				}
				gapWantGrant(t, h, tc.revoked)
				gs.set(func(k *gapHooks) { k.consumeCode = nil })
				if tc.retry {
					wantToken(t, redeem(), TokenTypeDPoP)
				} else {
					wantError(t, redeem(), 400, dpop.CodeInvalidGrant)
				}
			})
		}
	}
}

// The lookup of a code (GetCode, before anything is spent) is answered by
// the store's error, whatever record comes with it: only a code the store
// says was redeemed (ErrConsumed with its record) revokes its grant; a
// store failure is 503, even with a record; an unknown code is
// invalid_grant, even with a record; ErrConsumed without a record is
// invalid_grant and revokes nothing.
func TestTokenGapCodeLookupAnswers(t *testing.T) {
	for _, tc := range []struct {
		name       string
		withRecord bool
		err        error
		status     int
		code       dpop.ErrorCode
	}{
		{"consumed, no record", false, store.ErrConsumed, 400, dpop.CodeInvalidGrant},
		{"store failure with the record", true, errDown, 503, dpop.CodeServerError},
		{"not found with the record", true, store.ErrNotFound, 400, dpop.CodeInvalidGrant},
		{"expired with the record", true, store.ErrExpired, 400, dpop.CodeInvalidGrant},
	} {
		t.Run(tc.name, func(t *testing.T) {
			h, gs := gapHarness(t, nil, nil)
			code := gapSaveGrantCode(t, h, pubID)
			gs.set(func(k *gapHooks) {
				k.getCode = func(ctx context.Context, hash store.TokenHash) (*store.AuthorizationCode, error) {
					rec, err := gs.Memory.GetCode(ctx, hash)
					if err != nil {
						t.Errorf("GetCode: %v", err)
					}
					if !tc.withRecord {
						rec = nil
					}
					return rec, tc.err
				}
			})
			r := h.publicTokenRequest(codeForm(code), h.signer)
			wantError(t, r, tc.status, tc.code)
			gapWantNoTokens(t, r)
			if n := gs.called("ConsumeCode"); n != 0 {
				t.Errorf("the code was redeemed %d times", n)
			}
			if n := gs.called("RevokeGrant"); n != 0 {
				t.Errorf("%d grant revocations", n)
			}
			gapWantGrant(t, h, false)
		})
	}
}

// A refresh token that cannot be saved fails the whole response (503, or
// 429 with Retry-After when the client holds its share of the store): never
// a token response carrying a refresh token the store does not know.
func TestTokenGapRefreshTokenSaveFailure(t *testing.T) {
	for _, tc := range []struct {
		name       string
		err        error
		status     int
		code       dpop.ErrorCode
		retryAfter string
	}{
		{"store failure", errDown, 503, dpop.CodeServerError, ""},
		{"client share full", store.ErrShareFull, 429, dpop.CodeTemporarilyUnavailable, "60"},
	} {
		for _, client := range []string{pubID, confID} {
			t.Run(tc.name+", "+client, func(t *testing.T) {
				h, gs := gapHarness(t, func(_ *gapStore, k *gapHooks) {
					k.saveRefresh = func(context.Context, store.TokenHash, *store.RefreshToken) error { return tc.err }
				}, nil)
				code := h.saveCode(client, nil)
				var r response
				if client == pubID {
					r = h.publicTokenRequest(codeForm(code), h.signer)
				} else {
					r = h.postForm(DefaultPaths.Token, codeForm(code), confHeaders(h, h.signer))
				}
				wantError(t, r, tc.status, tc.code)
				gapWantNoTokens(t, r)
				if got := r.header.Get("Retry-After"); got != tc.retryAfter {
					t.Errorf("Retry-After %q, want %q", got, tc.retryAfter)
				}
				if n := gs.called("SaveRefreshToken"); n != 1 {
					t.Errorf("%d refresh token saves, want 1", n)
				}
			})
		}
	}
}

// A client's own token lifetimes (Client.AccessTokenTTL, RefreshTokenTTL)
// replace the server's, for every grant and for rotated refresh tokens;
// a client without them gets the server's.
func TestTokenGapClientLifetimes(t *testing.T) {
	const (
		serverAccess, serverRefresh = 10 * time.Minute, 3 * time.Hour
		clientAccess, clientRefresh = 5 * time.Minute, 2 * time.Hour
	)
	for _, own := range []bool{true, false} {
		wantAccess, wantRefresh := serverAccess, serverRefresh
		name := "server lifetimes"
		if own {
			wantAccess, wantRefresh, name = clientAccess, clientRefresh, "client lifetimes"
		}
		t.Run(name, func(t *testing.T) {
			h := newHarness(t, func(c *Config) { c.AccessTokenTTL, c.RefreshTokenTTL = serverAccess, serverRefresh })
			if own {
				for _, id := range []string{confID, pubID} {
					c, err := h.store.GetClient(ctx, id)
					if err != nil {
						t.Fatal(err)
					}
					c.AccessTokenTTL, c.RefreshTokenTTL = clientAccess, clientRefresh
					if err := h.store.SaveClient(ctx, c); err != nil {
						t.Fatal(err)
					}
				}
			}
			// checkAccess asserts the lifetime of an access token response.
			checkAccess := func(t *testing.T, r response) {
				t.Helper()
				if got := r.body["expires_in"]; got != float64(wantAccess/time.Second) {
					t.Errorf("expires_in %v, want %v", got, wantAccess/time.Second)
				}
				rec, err := h.accessRecord(r.str("access_token"))
				if err != nil {
					t.Fatal(err)
				}
				if got := rec.ExpiresAt.Sub(rec.IssuedAt); got != wantAccess {
					t.Errorf("access token lives %v, want %v", got, wantAccess)
				}
			}
			// checkRefresh asserts the lifetime of a stored refresh token.
			checkRefresh := func(t *testing.T, rt string) {
				t.Helper()
				rec, err := h.store.GetRefreshToken(ctx, store.HashToken(rt))
				if err != nil {
					t.Fatal(err)
				}
				if got := rec.ExpiresAt.Sub(rec.IssuedAt); got != wantRefresh {
					t.Errorf("refresh token lives %v, want %v", got, wantRefresh)
				}
			}
			t.Run("client credentials", func(t *testing.T) {
				checkAccess(t, wantToken(t, h.tokenRequest(ccForm()), TokenTypeDPoP))
			})
			t.Run("confidential code and refresh", func(t *testing.T) {
				r := wantToken(t, h.postForm(DefaultPaths.Token, codeForm(h.saveCode(confID, nil)), confHeaders(h, h.signer)), TokenTypeDPoP)
				checkAccess(t, r)
				checkRefresh(t, r.str("refresh_token"))
				f := url.Values{"grant_type": {"refresh_token"}, "refresh_token": {r.str("refresh_token")}}
				checkAccess(t, wantToken(t, h.postForm(DefaultPaths.Token, f, confHeaders(h, h.signer)), TokenTypeDPoP))
			})
			t.Run("public code and rotation", func(t *testing.T) {
				r := wantToken(t, h.publicTokenRequest(codeForm(h.saveCode(pubID, nil)), h.signer), TokenTypeDPoP)
				checkAccess(t, r)
				checkRefresh(t, r.str("refresh_token"))
				f := url.Values{"grant_type": {"refresh_token"}, "refresh_token": {r.str("refresh_token")}}
				rotated := wantToken(t, h.publicTokenRequest(f, h.signer), TokenTypeDPoP)
				checkAccess(t, rotated)
				checkRefresh(t, rotated.str("refresh_token"))
			})
		})
	}
}

// Client authentication that fails on the request alone is refused with
// 401 invalid_client before the store is asked (so a client store that is
// down changes nothing): no client named at all, an empty Basic user, and
// Basic credentials that are not form-urlencoded (RFC 6749 §2.3.1). The
// Basic challenge comes with the attempts that used Basic.
func TestTokenGapClientAuthBeforeStore(t *testing.T) {
	for _, tc := range []struct {
		name      string
		basic     string // "id:secret", or "" for none
		clientID  string // in the body
		challenge bool
	}{
		{"no client", "", "", false},
		{"empty Basic user", ":" + confSecret, "", true},
		{"Basic user not form-urlencoded", "conf%zz:" + confSecret, "", true},
		{"Basic password not form-urlencoded", confID + ":%zz", "", true},
		{"Basic password not form-urlencoded, client_id in the body", confID + ":%zz", confID, true},
	} {
		for _, path := range []string{DefaultPaths.Token, DefaultPaths.Revoke, DefaultPaths.Introspect} {
			t.Run(tc.name+", "+path, func(t *testing.T) {
				h, gs := gapHarness(t, func(_ *gapStore, k *gapHooks) {
					k.getClient = func(context.Context, string) (*store.Client, error) { return nil, errDown }
				}, nil)
				f := url.Values{"grant_type": {"client_credentials"}, "token": {"some-token"}}
				if tc.clientID != "" {
					f.Set("client_id", tc.clientID)
				}
				headers := map[string]string{"DPoP": h.proof("POST", path, dpop.ProofOptions{})}
				if tc.basic != "" {
					headers["basic"] = tc.basic
				}
				r := h.postForm(path, f, headers)
				wantError(t, r, http.StatusUnauthorized, dpop.CodeInvalidClient)
				if got := r.header.Get("WWW-Authenticate"); (got != "") != tc.challenge {
					t.Errorf("WWW-Authenticate %q, want a challenge: %v", got, tc.challenge)
				}
				if n := gs.called("GetClient"); n != 0 {
					t.Errorf("the client store was asked %d times", n)
				}
			})
		}
	}
}

// A Basic password that is not form-urlencoded authenticates nobody. (A
// client whose secret is the empty string, what a lenient decoder would make
// of it, cannot be registered: store.Client.Validate refuses it.)
func TestTokenGapMalformedBasicPassword(t *testing.T) {
	h := newHarness(t, nil)
	blank := &store.Client{ID: "blank", SecretHash: store.HashSecret(""), GrantTypes: []string{"client_credentials"}, Scopes: []string{"read"}}
	if err := h.store.SaveClient(ctx, blank); !errors.Is(err, store.ErrInvalidClientMetadata) {
		t.Fatalf("a client with the empty secret was saved: %v", err)
	}
	for _, password := range []string{"%zz", "%", "%4"} {
		t.Run(password, func(t *testing.T) {
			r := h.postForm(DefaultPaths.Token, ccForm(), map[string]string{
				"basic": confID + ":" + password,
				"DPoP":  h.proof("POST", DefaultPaths.Token, dpop.ProofOptions{}),
			})
			wantError(t, r, http.StatusUnauthorized, dpop.CodeInvalidClient)
			gapWantNoTokens(t, r)
			if r.header.Get("WWW-Authenticate") == "" {
				t.Error("no Basic challenge")
			}
		})
	}
}

// A refresh request without refresh_token (absent or empty, which counts as
// absent) is invalid_request, before any lookup: not the invalid_grant of a
// token that is not known.
func TestTokenGapRefreshTokenMissing(t *testing.T) {
	for _, tc := range []struct {
		name string
		form url.Values
	}{
		{"absent", url.Values{"grant_type": {"refresh_token"}}},
		{"empty", url.Values{"grant_type": {"refresh_token"}, "refresh_token": {""}}},
	} {
		for _, client := range []string{pubID, confID} {
			t.Run(tc.name+", "+client, func(t *testing.T) {
				h, gs := gapHarness(t, nil, nil)
				f := maps.Clone(tc.form)
				var r response
				if client == pubID {
					r = h.publicTokenRequest(f, h.signer)
				} else {
					r = h.postForm(DefaultPaths.Token, f, confHeaders(h, h.signer))
				}
				wantError(t, r, http.StatusBadRequest, dpop.CodeInvalidRequest)
				wantDescription(t, r, "refresh_token is required")
				if n := gs.called("GetRefreshToken"); n != 0 {
					t.Errorf("%d refresh token lookups", n)
				}
			})
		}
	}
}

// A refresh token's grant is revoked only when the store says the token was
// rotated already (ErrConsumed with its record): a lookup or rotation that
// fails is 503 whatever record comes with it, a token the store does not
// know or whose grant is revoked is invalid_grant, even with a record, and
// ErrConsumed without a record is invalid_grant; none of them revokes the
// grant, whose tokens stay usable.
func TestTokenGapRefreshStoreAnswers(t *testing.T) {
	type answer struct {
		withRecord bool
		err        error
	}
	for _, tc := range []struct {
		name           string
		lookup, rotate *answer // nil: the memory store's own
		clients        []string
		status         int
		code           dpop.ErrorCode
	}{
		{"lookup: consumed, no record", &answer{false, store.ErrConsumed}, nil, []string{pubID, confID}, 400, dpop.CodeInvalidGrant},
		{"lookup: store failure with the record", &answer{true, errDown}, nil, []string{pubID, confID}, 503, dpop.CodeServerError},
		{"lookup: not found with the record", &answer{true, store.ErrNotFound}, nil, []string{pubID, confID}, 400, dpop.CodeInvalidGrant},
		{"lookup: revoked with the record", &answer{true, store.ErrRevoked}, nil, []string{pubID, confID}, 400, dpop.CodeInvalidGrant},
		{"rotation: store failure with the record", nil, &answer{true, errDown}, []string{pubID}, 503, dpop.CodeServerError},
		{"rotation: revoked with the record", nil, &answer{true, store.ErrRevoked}, []string{pubID}, 400, dpop.CodeInvalidGrant},
	} {
		for _, client := range tc.clients {
			t.Run(tc.name+", "+client, func(t *testing.T) {
				h, gs := gapHarness(t, nil, nil)
				request := func(f url.Values) response {
					if client == pubID {
						return h.publicTokenRequest(f, h.signer)
					}
					return h.postForm(DefaultPaths.Token, f, confHeaders(h, h.signer))
				}
				first := wantToken(t, request(codeForm(h.saveCode(client, nil))), TokenTypeDPoP)
				rt := first.str("refresh_token")
				gs.set(func(k *gapHooks) {
					if a := tc.lookup; a != nil {
						k.getRefresh = func(ctx context.Context, hash store.TokenHash) (*store.RefreshToken, error) {
							rec, err := gs.Memory.GetRefreshToken(ctx, hash)
							if err != nil {
								t.Errorf("GetRefreshToken: %v", err)
							}
							if !a.withRecord {
								rec = nil
							}
							return rec, a.err
						}
					}
					if a := tc.rotate; a != nil {
						k.rotate = func(ctx context.Context, old, _ store.TokenHash, _ *store.RefreshToken) (*store.RefreshToken, error) {
							rec, err := gs.Memory.GetRefreshToken(ctx, old)
							if err != nil {
								t.Errorf("GetRefreshToken: %v", err)
							}
							if !a.withRecord {
								rec = nil
							}
							return rec, a.err
						}
					}
				})
				f := url.Values{"grant_type": {"refresh_token"}, "refresh_token": {rt}}
				r := request(f)
				wantError(t, r, tc.status, tc.code)
				gapWantNoTokens(t, r)
				if tc.code == dpop.CodeInvalidGrant {
					wantDescription(t, r, "the refresh token is invalid, expired or revoked")
				}
				if n := gs.called("RevokeGrant"); n != 0 {
					t.Errorf("%d grant revocations", n)
				}
				if _, err := h.accessRecord(first.str("access_token")); err != nil {
					t.Errorf("the grant's access token: %v, want it usable", err)
				}
				// The store answers again: the refresh token still works.
				gs.set(func(k *gapHooks) { k.getRefresh, k.rotate = nil, nil })
				wantToken(t, request(url.Values{"grant_type": {"refresh_token"}, "refresh_token": {rt}}), TokenTypeDPoP)
			})
		}
	}
}
