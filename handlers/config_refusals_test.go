package handlers

import (
	"context"
	"encoding/json"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/dpopkit/dpop"
	"github.com/dpopkit/dpop/internal/testkit/dpoptest"
	"github.com/dpopkit/dpop/store"
	"github.com/lestrrat-go/jwx/v2/jwk"
)

// New refuses each configuration it cannot enforce with an error that names
// the problem, and returns no server. The error must be New's own: a
// configuration refused only later, by dpop.NewVerifier (say, for lack of
// the BaseURL New fills in from the issuer), names the wrong problem.
func TestConfigRefusalReasons(t *testing.T) {
	m, err := store.NewMemory(store.MemoryOptions{})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { m.Close() })
	const iss = "https://as.example"
	const badIssuer = "handlers: Config.Issuer must be an absolute http(s) URL without userinfo, query or fragment"
	const notHTTPS = "handlers: Config.Issuer must use https (http only on a loopback address)"
	const lifetimes = "handlers: token lifetimes must be at least a second, and CodeTTL at most 10 minutes"
	for _, tc := range []struct {
		name string
		cfg  Config
		want string // in the error
	}{
		{"no issuer", Config{Store: m}, "handlers: Config.Issuer is required"},
		{"relative issuer", Config{Issuer: "/as", Store: m}, badIssuer},
		{"issuer with query", Config{Issuer: iss + "/?x=1", Store: m}, badIssuer},
		{"issuer with fragment", Config{Issuer: iss + "#f", Store: m}, badIssuer},
		{"https issuer with userinfo", Config{Issuer: "https://user@as.example", Store: m}, badIssuer},
		{"https issuer with user and password", Config{Issuer: "https://user:pw@as.example/t", Store: m}, badIssuer},
		{"http, DNS name", Config{Issuer: "http://as.example", Store: m}, notHTTPS},
		// A literal IP address that is not a loopback one.
		{"http, private IPv4", Config{Issuer: "http://10.0.0.1:8080", Store: m}, notHTTPS},
		{"http, public IPv4", Config{Issuer: "http://192.0.2.1", Store: m}, notHTTPS},
		{"http, unspecified IPv4", Config{Issuer: "http://0.0.0.0:8080", Store: m}, notHTTPS},
		{"http, IPv6 not loopback", Config{Issuer: "http://[2001:db8::1]:8080", Store: m}, notHTTPS},
		// A loopback host with user information is not a loopback issuer.
		{"http, user at localhost", Config{Issuer: "http://user@localhost:8080", Store: m}, badIssuer},
		{"http, user and password at 127.0.0.1", Config{Issuer: "http://user:pw@127.0.0.1:8080", Store: m}, badIssuer},
		{"no store", Config{Issuer: iss}, "handlers: Config.Store is required"},
		{"sub-second access token TTL", Config{Issuer: iss, Store: m, AccessTokenTTL: 500 * time.Millisecond}, lifetimes},
		{"negative access token TTL", Config{Issuer: iss, Store: m, AccessTokenTTL: -time.Hour}, lifetimes},
		// Each lifetime on its own, the others left to their defaults.
		{"sub-second refresh token TTL", Config{Issuer: iss, Store: m, RefreshTokenTTL: 500 * time.Millisecond}, lifetimes},
		{"negative refresh token TTL", Config{Issuer: iss, Store: m, RefreshTokenTTL: -time.Hour}, lifetimes},
		{"sub-second code TTL", Config{Issuer: iss, Store: m, CodeTTL: 500 * time.Millisecond}, lifetimes},
		{"code TTL above 10 minutes", Config{Issuer: iss, Store: m, CodeTTL: 10*time.Minute + time.Second}, lifetimes},
		{"JWT without a key set", Config{Issuer: iss, Store: m, AccessTokenFormat: FormatJWT}, "handlers: FormatJWT needs SigningKeys"},
		{"JWT with an empty key set", Config{Issuer: iss, Store: m, AccessTokenFormat: FormatJWT, SigningKeys: jwk.NewSet()}, "handlers: FormatJWT needs SigningKeys"},
		{"unknown format", Config{Issuer: iss, Store: m, AccessTokenFormat: "paseto"}, `handlers: unknown AccessTokenFormat "paseto"`},
		{"format in capitals", Config{Issuer: iss, Store: m, AccessTokenFormat: "JWT"}, `handlers: unknown AccessTokenFormat "JWT"`},
		{"token path without slash", Config{Issuer: iss, Store: m, Paths: Paths{Token: "token"}}, `handlers: path "token" must start with / and have no query`},
		{"authorize path with query", Config{Issuer: iss, Store: m, Paths: Paths{Authorize: "/authorize?x=1"}}, `handlers: path "/authorize?x=1" must start with /`},
		{"revoke path with fragment", Config{Issuer: iss, Store: m, Paths: Paths{Revoke: "/revoke#x"}}, `handlers: path "/revoke#x" must start with /`},
		{"introspect path with a space", Config{Issuer: iss, Store: m, Paths: Paths{Introspect: "/intro spect"}}, `handlers: path "/intro spect" must start with /`},
		{"JWKS path without slash", Config{Issuer: iss, Store: m, Paths: Paths{JWKS: "jwks"}}, `handlers: path "jwks" must start with /`},
		{"metadata path without slash", Config{Issuer: iss, Store: m, Paths: Paths{Metadata: ".well-known/x"}}, `handlers: path ".well-known/x" must start with /`},
		{"negative body limit", Config{Issuer: iss, Store: m, MaxBodyBytes: -1}, "handlers: negative MaxBodyBytes"},
		// Proof options New passes to dpop.NewVerifier, whose refusal New
		// returns as is.
		{"HMAC proof algorithm", Config{Issuer: iss, Store: m, DPoP: dpop.VerifierOptions{Algorithms: []string{"HS256"}}}, `dpop: algorithm "HS256" is not supported`},
		{"proof MaxAge above an hour", Config{Issuer: iss, Store: m, DPoP: dpop.VerifierOptions{MaxAge: 2 * time.Hour}}, "dpop: MaxAge above one hour"},
		{"negative proof Leeway", Config{Issuer: iss, Store: m, DPoP: dpop.VerifierOptions{Leeway: -time.Second}}, "dpop: negative MaxAge or Leeway"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			srv, err := New(tc.cfg)
			if err == nil {
				t.Fatalf("accepted (server %p)", srv)
			}
			if srv != nil {
				t.Errorf("a server returned with the error %v", err)
			}
			if !strings.Contains(err.Error(), tc.want) {
				t.Errorf("error %q, want %q", err, tc.want)
			}
		})
	}
}

// The limits themselves are allowed, and so are loopback issuers over http.
func TestConfigAcceptedAtTheLimits(t *testing.T) {
	m, err := store.NewMemory(store.MemoryOptions{})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { m.Close() })
	for _, tc := range []struct {
		name string
		cfg  Config
		iss  string // the normalized issuer
	}{
		{"one-second lifetimes", Config{Issuer: "https://as.example", Store: m, AccessTokenTTL: time.Second, RefreshTokenTTL: time.Second, CodeTTL: time.Second}, "https://as.example"},
		{"ten-minute code TTL", Config{Issuer: "https://as.example", Store: m, CodeTTL: 10 * time.Minute}, "https://as.example"},
		{"http on 127.0.0.2", Config{Issuer: "http://127.0.0.2:9000", Store: m}, "http://127.0.0.2:9000"},
		{"http on [::1]", Config{Issuer: "http://[::1]:9000/", Store: m}, "http://[::1]:9000"},
		{"http on localhost", Config{Issuer: "http://localhost", Store: m}, "http://localhost"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			srv, err := New(tc.cfg)
			if err != nil {
				t.Fatal(err)
			}
			if srv.cfg.Issuer != tc.iss || srv.Verifier().BaseURL() != tc.iss {
				t.Errorf("issuer %q, verifier base URL %q, want %q", srv.cfg.Issuer, srv.Verifier().BaseURL(), tc.iss)
			}
		})
	}
}

// crCountingReplayCache is a replay cache that counts its inserts.
type crCountingReplayCache struct {
	dpop.ReplayCache
	n atomic.Int64
}

func (c *crCountingReplayCache) Insert(ctx context.Context, key dpop.ReplayKey, ttl time.Duration) (bool, error) {
	c.n.Add(1)
	return c.ReplayCache.Insert(ctx, key, ttl)
}

// crTokenRequest posts a client credentials request of the confidential
// client with proof to srv's token handler, in process.
func crTokenRequest(t *testing.T, srv *Server, issuer, proof string) (int, map[string]any) {
	t.Helper()
	w := httptest.NewRecorder()
	srv.TokenHandler().ServeHTTP(w, dpoptest.ClientCredentialsRequest(issuer+DefaultPaths.Token, confID, confSecret, proof))
	var body map[string]any
	json.Unmarshal(w.Body.Bytes(), &body)
	return w.Code, body
}

// Without a DPoP.ReplayCache the proofs are recorded in Config.Store, so
// that two servers of one issuer on one store refuse a proof the other has
// seen; a DPoP.ReplayCache of the host's is used as given.
func TestConfigReplayCache(t *testing.T) {
	t.Run("default: the store", func(t *testing.T) {
		h := newHarness(t, nil)
		twin, err := New(Config{Issuer: h.ts.URL, Store: h.store})
		if err != nil {
			t.Fatal(err)
		}
		proof := h.proof(http.MethodPost, DefaultPaths.Token, dpop.ProofOptions{})
		wantToken(t, h.postForm(DefaultPaths.Token, ccForm(), map[string]string{"basic": confID + ":" + confSecret, "DPoP": proof}), TokenTypeDPoP)
		if code, body := crTokenRequest(t, twin, h.ts.URL, proof); code != http.StatusBadRequest || body["error"] != string(dpop.CodeInvalidProof) {
			t.Fatalf("proof replayed at the second server: %d %v, want 400 invalid_dpop_proof", code, body)
		}
		// The second server itself works: a fresh proof gets a token.
		fresh := h.proof(http.MethodPost, DefaultPaths.Token, dpop.ProofOptions{})
		if code, body := crTokenRequest(t, twin, h.ts.URL, fresh); code != http.StatusOK || body["access_token"] == nil {
			t.Fatalf("fresh proof at the second server: %d %v", code, body)
		}
	})
	t.Run("the host's", func(t *testing.T) {
		mem, err := dpop.NewMemoryReplayCache(dpop.MemoryReplayCacheOptions{})
		if err != nil {
			t.Fatal(err)
		}
		cache := &crCountingReplayCache{ReplayCache: mem}
		h := newHarness(t, func(c *Config) { c.DPoP.ReplayCache = cache })
		proof := h.proof(http.MethodPost, DefaultPaths.Token, dpop.ProofOptions{})
		wantToken(t, h.postForm(DefaultPaths.Token, ccForm(), map[string]string{"basic": confID + ":" + confSecret, "DPoP": proof}), TokenTypeDPoP)
		if cache.n.Load() == 0 {
			t.Fatal("the configured replay cache was not used")
		}
		r := h.postForm(DefaultPaths.Token, ccForm(), map[string]string{"basic": confID + ":" + confSecret, "DPoP": proof})
		wantError(t, r, http.StatusBadRequest, dpop.CodeInvalidProof)
	})
}

// Without a DPoP.Now the proofs' freshness is judged by Config.Now, the
// server's one clock: a proof made on that clock passes, one made on the
// wall clock two hours away does not.
func TestConfigClockJudgesProofs(t *testing.T) {
	skewed := func() time.Time { return time.Now().Add(2 * time.Hour) }
	h := newHarness(t, func(c *Config) { c.Now = skewed })
	headers := func(s *dpop.Signer) map[string]string {
		return map[string]string{"basic": confID + ":" + confSecret, "DPoP": proofBy(t, s, http.MethodPost, h.ts.URL+DefaultPaths.Token, dpop.ProofOptions{})}
	}
	onServerClock := dpoptest.NewSignerWith(t, dpop.SignerOptions{Now: skewed})
	wantToken(t, h.postForm(DefaultPaths.Token, ccForm(), headers(onServerClock)), TokenTypeDPoP)
	wantError(t, h.postForm(DefaultPaths.Token, ccForm(), headers(h.signer)), http.StatusBadRequest, dpop.CodeInvalidProof)
}
