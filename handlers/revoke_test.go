package handlers

import (
	"github.com/dpopkit/dpop"

	"bytes"
	"context"
	"errors"
	"log/slog"
	"net/http"
	"net/url"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/dpopkit/dpop/store"
)

// Fixtures of the revocation and introspection tests: token records saved
// straight into the harness store, keyed by the hash of a made-up token.

const (
	rvConfBasic   = confID + ":" + confSecret
	rvBearerBasic = bearerID + ":" + bearerSecret
	rvGrant       = "grant-1"
	// rvAudience is the resource of the records these tests save; conf
	// and bearer serve it, so they may introspect them.
	rvAudience = "https://api.example"
)

func rvAccess(client, grant, jkt string) *store.AccessToken {
	now := time.Now().Truncate(time.Second)
	return &store.AccessToken{GrantID: grant, ClientID: client, Subject: "alice", Scope: "read write", JKT: jkt,
		Audience: []string{rvAudience}, IssuedAt: now.Add(-time.Minute), ExpiresAt: now.Add(time.Hour)}
}

func rvRefresh(client, grant, jkt string) *store.RefreshToken {
	now := time.Now().Truncate(time.Second)
	return &store.RefreshToken{GrantID: grant, ClientID: client, Subject: "alice", Scope: "read", JKT: jkt,
		Audience: []string{rvAudience}, IssuedAt: now.Add(-time.Minute), ExpiresAt: now.Add(24 * time.Hour)}
}

// rvSave stores rec under the hash of token.
func rvSave(t *testing.T, st store.Store, token string, rec any) {
	t.Helper()
	ctx := context.Background()
	var err error
	switch rec := rec.(type) {
	case *store.AccessToken:
		err = st.SaveAccessToken(ctx, store.HashToken(token), rec)
	case *store.RefreshToken:
		err = st.SaveRefreshToken(ctx, store.HashToken(token), rec)
	default:
		t.Fatalf("rvSave: %T", rec)
	}
	if err != nil {
		t.Fatal(err)
	}
}

// rvAccessErr and rvRefreshErr are what the store says of a token now.
func rvAccessErr(h *harness, token string) error {
	_, err := h.store.GetAccessToken(context.Background(), store.HashToken(token))
	return err
}

func rvRefreshErr(h *harness, token string) error {
	_, err := h.store.GetRefreshToken(context.Background(), store.HashToken(token))
	return err
}

func (h *harness) rvPost(form url.Values, basic string) response {
	h.t.Helper()
	return h.postBasic(h.srv.cfg.Paths.Revoke, form, basic)
}

// rvWantOK asserts a successful revocation response (RFC 7009 §2.2).
func rvWantOK(t *testing.T, r response) {
	t.Helper()
	if r.status != http.StatusOK || strings.TrimSpace(r.raw) != "{}" {
		t.Fatalf("got %d %s, want 200 {}", r.status, r.raw)
	}
	if cc := r.header.Get("Cache-Control"); cc != "no-store" {
		t.Errorf("Cache-Control %q", cc)
	}
}

// rvWantLive and rvWantGone assert what the store says of a token.
func rvWantLive(t *testing.T, err error) {
	t.Helper()
	if err != nil {
		t.Errorf("token no longer live: %v", err)
	}
}

func rvWantGone(t *testing.T, err, want error) {
	t.Helper()
	if !errors.Is(err, want) {
		t.Errorf("store says %v, want %v", err, want)
	}
}

func TestRevocation(t *testing.T) {
	tests := []struct {
		name   string
		seed   func(t *testing.T, h *harness)
		form   url.Values
		basic  string
		status int            // 0: success
		code   dpop.ErrorCode // error code when status != 0
		check  func(t *testing.T, h *harness)
	}{{
		name: "opaque access token",
		seed: func(t *testing.T, h *harness) { rvSave(t, h.store, "at-1", rvAccess(confID, rvGrant, "")) },
		form: url.Values{"token": {"at-1"}}, basic: rvConfBasic,
		check: func(t *testing.T, h *harness) {
			rvWantGone(t, rvAccessErr(h, "at-1"), store.ErrNotFound)
			// Revoking it again is not an error (RFC 7009 §2.2).
			rvWantOK(t, h.rvPost(url.Values{"token": {"at-1"}}, rvConfBasic))
		},
	}, {
		name:  "access token with client_secret_post and access_token hint",
		seed:  func(t *testing.T, h *harness) { rvSave(t, h.store, "at-1", rvAccess(confID, rvGrant, "")) },
		form:  url.Values{"token": {"at-1"}, "token_type_hint": {"access_token"}, "client_id": {confID}, "client_secret": {confSecret}},
		check: func(t *testing.T, h *harness) { rvWantGone(t, rvAccessErr(h, "at-1"), store.ErrNotFound) },
	}, {
		name: "access token with a wrong hint is still found",
		seed: func(t *testing.T, h *harness) { rvSave(t, h.store, "at-1", rvAccess(confID, rvGrant, "")) },
		form: url.Values{"token": {"at-1"}, "token_type_hint": {"refresh_token"}}, basic: rvConfBasic,
		check: func(t *testing.T, h *harness) { rvWantGone(t, rvAccessErr(h, "at-1"), store.ErrNotFound) },
	}, {
		name: "unknown hint is ignored",
		seed: func(t *testing.T, h *harness) { rvSave(t, h.store, "at-1", rvAccess(confID, rvGrant, "")) },
		form: url.Values{"token": {"at-1"}, "token_type_hint": {"id_token"}}, basic: rvConfBasic,
		check: func(t *testing.T, h *harness) { rvWantGone(t, rvAccessErr(h, "at-1"), store.ErrNotFound) },
	}, {
		name: "access token leaves the rest of the grant alone",
		seed: func(t *testing.T, h *harness) {
			rvSave(t, h.store, "at-1", rvAccess(confID, rvGrant, ""))
			rvSave(t, h.store, "rt-1", rvRefresh(confID, rvGrant, ""))
		},
		form: url.Values{"token": {"at-1"}}, basic: rvConfBasic,
		check: func(t *testing.T, h *harness) { rvWantLive(t, rvRefreshErr(h, "rt-1")) },
	}, {
		name: "refresh token revokes its grant",
		seed: func(t *testing.T, h *harness) {
			rvSave(t, h.store, "rt-1", rvRefresh(confID, rvGrant, ""))
			rvSave(t, h.store, "at-1", rvAccess(confID, rvGrant, h.signer.JKT()))
			rvSave(t, h.store, "at-other", rvAccess(confID, "grant-2", ""))
		},
		form: url.Values{"token": {"rt-1"}, "token_type_hint": {"refresh_token"}}, basic: rvConfBasic,
		check: func(t *testing.T, h *harness) {
			rvWantGone(t, rvRefreshErr(h, "rt-1"), store.ErrNotFound)
			rvWantGone(t, rvAccessErr(h, "at-1"), store.ErrRevoked)
			// The revocation also covers tokens stored later.
			rvSave(t, h.store, "at-late", rvAccess(confID, rvGrant, ""))
			rvWantGone(t, rvAccessErr(h, "at-late"), store.ErrRevoked)
			rvWantLive(t, rvAccessErr(h, "at-other"))
			// Introspection agrees.
			r := h.ixPost(url.Values{"token": {"at-1"}}, rvBearerBasic)
			ixWantInactive(t, r)
		},
	}, {
		name: "refresh token without a hint",
		seed: func(t *testing.T, h *harness) {
			rvSave(t, h.store, "rt-1", rvRefresh(confID, rvGrant, ""))
			rvSave(t, h.store, "at-1", rvAccess(confID, rvGrant, ""))
		},
		form: url.Values{"token": {"rt-1"}}, basic: rvConfBasic,
		check: func(t *testing.T, h *harness) {
			rvWantGone(t, rvRefreshErr(h, "rt-1"), store.ErrNotFound)
			rvWantGone(t, rvAccessErr(h, "at-1"), store.ErrRevoked)
		},
	}, {
		name: "rotated refresh token still revokes its grant",
		seed: func(t *testing.T, h *harness) {
			rvSave(t, h.store, "rt-old", rvRefresh(confID, rvGrant, ""))
			if _, err := h.store.RotateRefreshToken(context.Background(), store.HashToken("rt-old"), store.HashToken("rt-new"), rvRefresh(confID, rvGrant, "")); err != nil {
				t.Fatal(err)
			}
		},
		form: url.Values{"token": {"rt-old"}}, basic: rvConfBasic,
		check: func(t *testing.T, h *harness) { rvWantGone(t, rvRefreshErr(h, "rt-new"), store.ErrRevoked) },
	}, {
		name: "public client revokes its own tokens",
		seed: func(t *testing.T, h *harness) {
			rvSave(t, h.store, "rt-pub", rvRefresh(pubID, rvGrant, h.signer.JKT()))
			rvSave(t, h.store, "at-pub", rvAccess(pubID, rvGrant, h.signer.JKT()))
		},
		form: url.Values{"token": {"rt-pub"}, "client_id": {pubID}},
		check: func(t *testing.T, h *harness) {
			rvWantGone(t, rvRefreshErr(h, "rt-pub"), store.ErrNotFound)
			rvWantGone(t, rvAccessErr(h, "at-pub"), store.ErrRevoked)
		},
	}, {
		name: "another client's access token is refused and kept",
		seed: func(t *testing.T, h *harness) { rvSave(t, h.store, "at-1", rvAccess(confID, rvGrant, "")) },
		form: url.Values{"token": {"at-1"}}, basic: rvBearerBasic,
		status: http.StatusBadRequest, code: dpop.CodeUnauthorizedClient,
		check: func(t *testing.T, h *harness) { rvWantLive(t, rvAccessErr(h, "at-1")) },
	}, {
		name: "another client's refresh token is refused and its grant kept",
		seed: func(t *testing.T, h *harness) {
			rvSave(t, h.store, "rt-1", rvRefresh(confID, rvGrant, ""))
			rvSave(t, h.store, "at-1", rvAccess(confID, rvGrant, ""))
		},
		form: url.Values{"token": {"rt-1"}, "token_type_hint": {"refresh_token"}}, basic: rvBearerBasic,
		status: http.StatusBadRequest, code: dpop.CodeUnauthorizedClient,
		check: func(t *testing.T, h *harness) {
			rvWantLive(t, rvRefreshErr(h, "rt-1"))
			rvWantLive(t, rvAccessErr(h, "at-1"))
		},
	}, {
		name:   "a public client cannot revoke a confidential client's token",
		seed:   func(t *testing.T, h *harness) { rvSave(t, h.store, "at-1", rvAccess(confID, rvGrant, "")) },
		form:   url.Values{"token": {"at-1"}, "client_id": {pubID}},
		status: http.StatusBadRequest, code: dpop.CodeUnauthorizedClient,
		check: func(t *testing.T, h *harness) { rvWantLive(t, rvAccessErr(h, "at-1")) },
	}, {
		name: "unknown token",
		form: url.Values{"token": {"never-issued"}}, basic: rvConfBasic,
	}, {
		name: "expired token",
		seed: func(t *testing.T, h *harness) {
			rec := rvAccess(confID, rvGrant, "")
			rec.ExpiresAt = time.Now().Add(-time.Second)
			rvSave(t, h.store, "at-1", rec)
		},
		form: url.Values{"token": {"at-1"}}, basic: rvConfBasic,
	}, {
		name:   "missing token",
		form:   url.Values{"token_type_hint": {"access_token"}},
		basic:  rvConfBasic,
		status: http.StatusBadRequest, code: dpop.CodeInvalidRequest,
	}, {
		name: "wrong secret",
		seed: func(t *testing.T, h *harness) { rvSave(t, h.store, "at-1", rvAccess(confID, rvGrant, "")) },
		form: url.Values{"token": {"at-1"}}, basic: confID + ":wrong",
		status: http.StatusUnauthorized, code: dpop.CodeInvalidClient,
		check: func(t *testing.T, h *harness) { rvWantLive(t, rvAccessErr(h, "at-1")) },
	}, {
		name:   "no client authentication",
		seed:   func(t *testing.T, h *harness) { rvSave(t, h.store, "at-1", rvAccess(confID, rvGrant, "")) },
		form:   url.Values{"token": {"at-1"}},
		status: http.StatusUnauthorized, code: dpop.CodeInvalidClient,
		check: func(t *testing.T, h *harness) { rvWantLive(t, rvAccessErr(h, "at-1")) },
	}, {
		name:   "confidential client without its secret",
		seed:   func(t *testing.T, h *harness) { rvSave(t, h.store, "at-1", rvAccess(confID, rvGrant, "")) },
		form:   url.Values{"token": {"at-1"}, "client_id": {confID}},
		status: http.StatusUnauthorized, code: dpop.CodeInvalidClient,
		check: func(t *testing.T, h *harness) { rvWantLive(t, rvAccessErr(h, "at-1")) },
	}, {
		name: "repeated parameter",
		seed: func(t *testing.T, h *harness) { rvSave(t, h.store, "at-1", rvAccess(confID, rvGrant, "")) },
		form: url.Values{"token": {"at-1", "at-1"}}, basic: rvConfBasic,
		status: http.StatusBadRequest, code: dpop.CodeInvalidRequest,
		check: func(t *testing.T, h *harness) { rvWantLive(t, rvAccessErr(h, "at-1")) },
	}}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			h := newHarness(t, nil)
			if tc.seed != nil {
				tc.seed(t, h)
			}
			r := h.rvPost(tc.form, tc.basic)
			if tc.status == 0 {
				rvWantOK(t, r)
			} else {
				wantError(t, r, tc.status, tc.code)
				if cc := r.header.Get("Cache-Control"); cc != "no-store" {
					t.Errorf("Cache-Control %q", cc)
				}
			}
			// A Basic challenge answers a failed Basic attempt, and only that
			// (RFC 6749 §5.2).
			wantChallenge := tc.status == http.StatusUnauthorized && tc.basic != ""
			if got := r.header.Get("WWW-Authenticate"); (got != "") != wantChallenge || wantChallenge && !strings.HasPrefix(got, "Basic ") {
				t.Errorf("WWW-Authenticate %q, want a Basic challenge: %v", got, wantChallenge)
			}
			if tc.check != nil {
				tc.check(t, h)
			}
		})
	}
}

func TestRevocationRequestShape(t *testing.T) {
	h := newHarness(t, nil)
	rvSave(t, h.store, "at-1", rvAccess(confID, rvGrant, ""))
	path := h.ts.URL + h.srv.cfg.Paths.Revoke
	tests := []struct {
		name, method, url, contentType, body string
		status                               int
	}{
		{"GET", http.MethodGet, path + "?token=at-1", "", "", http.StatusMethodNotAllowed},
		{"PUT", http.MethodPut, path, "application/x-www-form-urlencoded", "token=at-1", http.StatusMethodNotAllowed},
		{"JSON body", http.MethodPost, path, "application/json", `{"token":"at-1"}`, http.StatusBadRequest},
		{"token in the query", http.MethodPost, path + "?token=at-1", "application/x-www-form-urlencoded", "", http.StatusBadRequest},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			req, err := http.NewRequest(tc.method, tc.url, strings.NewReader(tc.body))
			if err != nil {
				t.Fatal(err)
			}
			if tc.contentType != "" {
				req.Header.Set("Content-Type", tc.contentType)
			}
			req.SetBasicAuth(confID, confSecret)
			r := h.do(req)
			wantError(t, r, tc.status, dpop.CodeInvalidRequest)
			if tc.status == http.StatusMethodNotAllowed && r.header.Get("Allow") != http.MethodPost {
				t.Errorf("Allow %q", r.header.Get("Allow"))
			}
			rvWantLive(t, rvAccessErr(h, "at-1"))
		})
	}
}

// grantRecorder remembers the grant revocations it passes on, or fails
// them with fail.
type grantRecorder struct {
	*store.Memory
	fail  error
	grant string
	until time.Time
}

func (g *grantRecorder) RevokeGrant(ctx context.Context, grantID string, until time.Time) error {
	if g.fail != nil {
		return g.fail
	}
	g.grant, g.until = grantID, until
	return g.Memory.RevokeGrant(ctx, grantID, until)
}

func TestRevocationGrantLasts(t *testing.T) {
	now := time.Date(2030, 1, 2, 3, 4, 5, 0, time.UTC)
	tests := []struct {
		name       string
		access     time.Duration // Config.AccessTokenTTL
		refresh    time.Duration // Config.RefreshTokenTTL
		client     time.Duration // the client's AccessTokenTTL
		tokenUntil time.Duration // the refresh token's own expiry, from now
		want       time.Duration // at least this long from now
	}{
		{"server access lifetime", 5 * time.Hour, 2 * time.Hour, 0, time.Hour, 5 * time.Hour},
		{"server refresh lifetime", time.Hour, 48 * time.Hour, 0, time.Hour, 48 * time.Hour},
		{"client lifetime", time.Hour, 2 * time.Hour, 72 * time.Hour, time.Hour, 72 * time.Hour},
		{"token expiry", time.Hour, 2 * time.Hour, 0, 96 * time.Hour, 96 * time.Hour},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			var rec *grantRecorder
			h := newHarness(t, func(c *Config) {
				rec = &grantRecorder{Memory: c.Store.(*store.Memory)}
				c.Store = rec
				c.AccessTokenTTL, c.RefreshTokenTTL = tc.access, tc.refresh
				c.Now = func() time.Time { return now }
			})
			ctx := context.Background()
			cl, err := h.store.GetClient(ctx, confID)
			if err != nil {
				t.Fatal(err)
			}
			cl.AccessTokenTTL = tc.client
			if err := h.store.SaveClient(ctx, cl); err != nil {
				t.Fatal(err)
			}
			rt := rvRefresh(confID, rvGrant, "")
			rt.ExpiresAt = now.Add(tc.tokenUntil)
			rvSave(t, h.store, "rt-1", rt)
			rvWantOK(t, h.rvPost(url.Values{"token": {"rt-1"}}, rvConfBasic))
			if rec.grant != rvGrant {
				t.Fatalf("revoked grant %q", rec.grant)
			}
			if got := rec.until.Sub(now); got < tc.want || got > tc.want+time.Hour {
				t.Errorf("grant revoked for %v, want at least %v", got, tc.want)
			}
		})
	}
}

// brokenLookupStore fails the token lookups it is told to, as a store that
// lost its database would; the others work.
type brokenLookupStore struct {
	*store.Memory
	access, refresh bool
}

var errLookupDown = errors.New("database unreachable")

func (b brokenLookupStore) GetAccessToken(ctx context.Context, h store.TokenHash) (*store.AccessToken, error) {
	if b.access {
		return nil, errLookupDown
	}
	return b.Memory.GetAccessToken(ctx, h)
}

func (b brokenLookupStore) GetRefreshToken(ctx context.Context, h store.TokenHash) (*store.RefreshToken, error) {
	if b.refresh {
		return nil, errLookupDown
	}
	return b.Memory.GetRefreshToken(ctx, h)
}

func TestRevocationStoreFailure(t *testing.T) {
	tests := []struct {
		name, hint      string
		access, refresh bool // which lookups fail
	}{
		{"access lookup, tried first", "", true, false},
		{"access lookup, tried second", "refresh_token", true, false},
		{"refresh lookup, tried first", "refresh_token", false, true},
		{"refresh lookup, tried second", "", false, true},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			h := newHarness(t, func(c *Config) {
				c.Store = brokenLookupStore{Memory: c.Store.(*store.Memory), access: tc.access, refresh: tc.refresh}
			})
			// The token is of neither kind: every lookup runs.
			form := url.Values{"token": {"unknown"}}
			if tc.hint != "" {
				form.Set("token_type_hint", tc.hint)
			}
			wantError(t, h.rvPost(form, rvConfBasic), http.StatusServiceUnavailable, dpop.CodeServerError)
		})
	}
	t.Run("token kept", func(t *testing.T) {
		h := newHarness(t, func(c *Config) {
			c.Store = brokenLookupStore{Memory: c.Store.(*store.Memory), access: true, refresh: true}
		})
		rvSave(t, h.store, "at-1", rvAccess(confID, rvGrant, ""))
		wantError(t, h.rvPost(url.Values{"token": {"at-1"}}, rvConfBasic), http.StatusServiceUnavailable, dpop.CodeServerError)
		rvWantLive(t, rvAccessErr(h, "at-1"))
	})
}

// When the grant cannot be revoked, the refresh token is kept, so that the
// client's retry finds it again.
func TestRevocationGrantFailure(t *testing.T) {
	h := newHarness(t, func(c *Config) { c.Store = &grantRecorder{Memory: c.Store.(*store.Memory), fail: store.ErrFull} })
	rvSave(t, h.store, "rt-1", rvRefresh(confID, rvGrant, ""))
	rvSave(t, h.store, "at-1", rvAccess(confID, rvGrant, ""))
	wantError(t, h.rvPost(url.Values{"token": {"rt-1"}}, rvConfBasic), http.StatusServiceUnavailable, dpop.CodeServerError)
	rvWantLive(t, rvRefreshErr(h, "rt-1"))
	rvWantLive(t, rvAccessErr(h, "at-1"))
}

// rvLog collects log output written from handler goroutines.
type rvLog struct {
	mu  sync.Mutex
	buf bytes.Buffer
}

func (l *rvLog) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.buf.Write(p)
}

func (l *rvLog) String() string {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.buf.String()
}

// Refusals are logged, one record each; reaching for another client's
// token is a warning.
func TestRevocationLogsRefusals(t *testing.T) {
	log := &rvLog{}
	h := newHarness(t, func(c *Config) { c.Logger = slog.New(slog.NewTextHandler(log, nil)) })
	rvSave(t, h.store, "at-1", rvAccess(confID, rvGrant, ""))
	h.rvPost(url.Values{"token": {"at-1"}}, rvBearerBasic)
	h.rvPost(url.Values{}, rvConfBasic)
	rvWantOK(t, h.rvPost(url.Values{"token": {"unknown"}}, rvConfBasic))
	lines := strings.Split(strings.TrimSpace(log.String()), "\n")
	if len(lines) != 2 ||
		!strings.Contains(lines[0], "level=WARN") || !strings.Contains(lines[0], "error=unauthorized_client") ||
		!strings.Contains(lines[1], "level=INFO") || !strings.Contains(lines[1], "error=invalid_request") {
		t.Errorf("log:\n%s", log.String())
	}
	if strings.Contains(log.String(), "at-1") {
		t.Error("the log holds a token")
	}
}

// A JWT access token cannot be recalled: the request is refused with
// unsupported_token_type (RFC 7009 §2.2.1) and the token stays valid until
// it expires, as RevocationHandler documents. Regression: a 200 here made
// oauth4webapi's interop case believe the token was dead.
func TestRevocationJWTAccessToken(t *testing.T) {
	h := newHarness(t, func(c *Config) { ixJWTConfig(t, c) })
	tok, err := h.srv.AccessTokens().Issue(context.Background(), rvAccess(confID, rvGrant, h.signer.JKT()))
	if err != nil {
		t.Fatal(err)
	}
	wantError(t, h.rvPost(url.Values{"token": {tok}}, rvConfBasic), http.StatusBadRequest, dpop.CodeUnsupportedTokenType)
	if r := h.ixPost(url.Values{"token": {tok}}, rvBearerBasic); r.body["active"] != true {
		t.Errorf("introspection after revocation: %s", r.raw)
	}
	// Another client is still refused.
	wantError(t, h.rvPost(url.Values{"token": {tok}}, rvBearerBasic), http.StatusBadRequest, dpop.CodeUnauthorizedClient)
}
