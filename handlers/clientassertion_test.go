package handlers

import (
	"context"
	"crypto"
	"crypto/ecdsa"
	"crypto/ed25519"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/rsa"
	"encoding/json"
	"errors"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"net/url"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/dpopkit/dpop"
	"github.com/dpopkit/dpop/internal/jose"
	"github.com/dpopkit/dpop/store"
	"github.com/lestrrat-go/jwx/v2/jwk"
)

// Fixtures of the private_key_jwt tests: clients registered with keys, keys
// of each kind generated once per test binary, assertions made with them.

const (
	pkjID    = "pkj"     // registered with a JWKS of one ES256 key
	pkjURIID = "pkj-uri" // registered with a jwks_uri
)

// testKey is a client's signing key and the alg it signs with.
type testKey struct {
	alg    string
	kid    string
	signer crypto.Signer
}

var (
	testKeysOnce sync.Once
	testKeyPool  map[string]crypto.Signer
)

// keyPool generates, once, one key of each kind the tests use.
func keyPool(t testing.TB) map[string]crypto.Signer {
	t.Helper()
	testKeysOnce.Do(func() {
		must := func(k crypto.Signer, err error) crypto.Signer {
			if err != nil {
				panic(err)
			}
			return k
		}
		_, ed, err := ed25519.GenerateKey(rand.Reader)
		if err != nil {
			panic(err)
		}
		testKeyPool = map[string]crypto.Signer{
			"ec256":   must(ecdsa.GenerateKey(elliptic.P256(), rand.Reader)),
			"ec256b":  must(ecdsa.GenerateKey(elliptic.P256(), rand.Reader)),
			"ec384":   must(ecdsa.GenerateKey(elliptic.P384(), rand.Reader)),
			"rsa2048": must(rsa.GenerateKey(rand.Reader, 2048)),
			"rsa1024": must(rsa.GenerateKey(rand.Reader, 1024)),
			"ed25519": ed,
		}
	})
	return testKeyPool
}

// key returns the pool key name as a testKey for alg with kid.
func key(t testing.TB, name, alg, kid string) testKey {
	return testKey{alg: alg, kid: kid, signer: keyPool(t)[name]}
}

// jwksOf is the JWK Set document of the public halves of keys, each with
// its kid (when set) and no alg.
func jwksOf(t testing.TB, keys ...testKey) []byte {
	t.Helper()
	set := jwk.NewSet()
	for _, k := range keys {
		j, err := jwk.FromRaw(k.signer.Public())
		if err != nil {
			t.Fatal(err)
		}
		if k.kid != "" {
			j.Set(jwk.KeyIDKey, k.kid)
		}
		set.AddKey(j)
	}
	b, err := json.Marshal(set)
	if err != nil {
		t.Fatal(err)
	}
	return b
}

// sign makes a compact JWS of header and claims with k under k.alg
// (jose.Sign), whatever header["alg"] says.
func sign(t testing.TB, k testKey, header, claims map[string]any) string {
	t.Helper()
	spec, _ := jose.Lookup(k.alg)
	hb, _ := json.Marshal(header)
	cb, _ := json.Marshal(claims)
	input := jose.B64.EncodeToString(hb) + "." + jose.B64.EncodeToString(cb)
	sig, err := jose.Sign(spec, k.signer, input)
	if err != nil {
		t.Fatal(err)
	}
	return input + "." + jose.B64.EncodeToString(sig)
}

var jtiCounter atomic.Int64

// assertionFor makes an assertion for client id by k: the default header
// ({"alg","kid"}) and claims (iss = sub = id, aud the issuer, exp in a
// minute, iat now, a fresh jti), changed by edit (a nil value deletes a
// member).
func assertionFor(t testing.TB, k testKey, id, issuer string, now time.Time, edit func(h, c map[string]any)) string {
	t.Helper()
	h := map[string]any{"alg": k.alg}
	if k.kid != "" {
		h["kid"] = k.kid
	}
	c := map[string]any{
		"iss": id, "sub": id, "aud": issuer,
		"exp": now.Add(time.Minute).Unix(), "iat": now.Unix(),
		"jti": "jti-" + time.Now().Format("150405.000000000") + "-" + string(rune('a'+jtiCounter.Add(1)%26)) + randomSuffix(),
	}
	if edit != nil {
		edit(h, c)
	}
	for m, v := range h {
		if v == nil {
			delete(h, m)
		}
	}
	for m, v := range c {
		if v == nil {
			delete(c, m)
		}
	}
	return sign(t, k, h, c)
}

func randomSuffix() string {
	b := make([]byte, 8)
	rand.Read(b)
	return jose.B64.EncodeToString(b)
}

// clock is a test clock that can be moved forward.
type clock struct{ offset atomic.Int64 }

func (c *clock) now() time.Time        { return time.Now().Add(time.Duration(c.offset.Load())) }
func (c *clock) add(d time.Duration)   { c.offset.Add(int64(d)) }
func (c *clock) config(cfg *Config)    { cfg.Now = c.now }
func withClock(c *clock) func(*Config) { return c.config }

// assertionHarness is a harness with the client pkjID registered with the
// JWKS of keys (and, when uri is set, pkjURIID with that jwks_uri).
func assertionHarness(t *testing.T, edit func(*Config), uri string, keys ...testKey) *harness {
	t.Helper()
	h := newHarness(t, edit)
	c := &store.Client{ID: pkjID, JWKS: jwksOf(t, keys...), GrantTypes: []string{"client_credentials"},
		Scopes: []string{"read"}, DPoPBound: true, Resources: []string{rvAudience, h.ts.URL}, Introspect: true}
	if err := h.store.SaveClient(context.Background(), c); err != nil {
		t.Fatal(err)
	}
	if uri != "" {
		c := &store.Client{ID: pkjURIID, JWKSURI: uri, GrantTypes: []string{"client_credentials"}, Scopes: []string{"read"}, DPoPBound: true}
		if err := h.store.SaveClient(context.Background(), c); err != nil {
			t.Fatal(err)
		}
	}
	return h
}

// authenticate runs the server's client authentication on a POST to the
// token endpoint with form and headers ("basic" is "id:secret").
func (h *harness) authenticate(form url.Values, headers map[string]string) (*store.Client, *Error) {
	h.t.Helper()
	return h.authenticateAt(h.srv.cfg.Paths.Token, form, headers)
}

func (h *harness) authenticateAt(path string, form url.Values, headers map[string]string) (*store.Client, *Error) {
	h.t.Helper()
	r := httptest.NewRequest(http.MethodPost, h.ts.URL+path, strings.NewReader(form.Encode()))
	r.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	setHeaders(r, headers)
	f, e := readForm(httptest.NewRecorder(), r, h.srv.cfg.MaxBodyBytes)
	if e != nil {
		h.t.Fatal(e)
	}
	return h.srv.authenticateClient(r, f)
}

// assertionForm is the form of a private_key_jwt request.
func assertionForm(assertion string) url.Values {
	return url.Values{"client_assertion_type": {ClientAssertionTypeJWT}, "client_assertion": {assertion}}
}

// wantAuth checks the outcome of authenticate: the client id on success,
// or the status, code and cause of the refusal.
func wantAuth(t *testing.T, c *store.Client, e *Error, status int, code dpop.ErrorCode, cause error) {
	t.Helper()
	if status == 0 {
		if e != nil {
			t.Fatalf("refused: %v (%v)", e, e.Err)
		}
		if c == nil {
			t.Fatal("no client")
		}
		return
	}
	if e == nil {
		t.Fatalf("accepted %s, want %d %s", c.ID, status, code)
	}
	if e.Status != status || e.Code != code {
		t.Fatalf("got %d %s (%v), want %d %s", e.Status, e.Code, e.Err, status, code)
	}
	if cause != nil && !errors.Is(e, cause) {
		t.Fatalf("cause %v, want %v", e.Err, cause)
	}
	if e.Basic {
		t.Errorf("Basic challenge without Basic")
	}
}

// TestClientAssertionRequest: client_assertion_type and client_assertion,
// client_id optional but equal to iss/sub, one method only, a client
// registered with keys must use it and a secret client cannot.
func TestClientAssertionRequest(t *testing.T) {
	es := key(t, "ec256", "ES256", "k1")
	h := assertionHarness(t, nil, "", es)
	now := time.Now()
	good := func() string { return assertionFor(t, es, pkjID, h.ts.URL, now, nil) }
	for _, tc := range []struct {
		name    string
		form    func() url.Values
		headers map[string]string
		status  int
		code    dpop.ErrorCode
		cause   error
	}{
		{name: "client_assertion_type jwt-bearer and client_assertion", form: func() url.Values { return assertionForm(good()) }},
		{name: "client_id equal to iss and sub", form: func() url.Values {
			f := assertionForm(good())
			f.Set("client_id", pkjID)
			return f
		}},
		{name: "client_id other than iss and sub", form: func() url.Values {
			f := assertionForm(good())
			f.Set("client_id", confID)
			return f
		}, status: 401, code: dpop.CodeInvalidClient, cause: errAssertionClientID},
		{name: "combined with Basic", form: func() url.Values { return assertionForm(good()) },
			headers: map[string]string{"basic": confID + ":" + confSecret}, status: 400, code: dpop.CodeInvalidRequest, cause: ErrAuthMethods},
		{name: "combined with client_secret", form: func() url.Values {
			f := assertionForm(good())
			f.Set("client_secret", confSecret)
			return f
		}, status: 400, code: dpop.CodeInvalidRequest, cause: ErrAuthMethods},
		{name: "client_assertion_type without client_assertion", form: func() url.Values {
			return url.Values{"client_assertion_type": {ClientAssertionTypeJWT}, "client_id": {pkjID}}
		}, status: 400, code: dpop.CodeInvalidRequest, cause: ErrMissingParam},
		{name: "client_assertion without client_assertion_type", form: func() url.Values {
			return url.Values{"client_assertion": {good()}}
		}, status: 400, code: dpop.CodeInvalidRequest, cause: ErrMissingParam},
		{name: "another client_assertion_type", form: func() url.Values {
			f := assertionForm(good())
			f.Set("client_assertion_type", "urn:ietf:params:oauth:client-assertion-type:saml2-bearer")
			return f
		}, status: 401, code: dpop.CodeInvalidClient, cause: errAssertionType},
		{name: "a secret client cannot use it", form: func() url.Values {
			return assertionForm(assertionFor(t, es, confID, h.ts.URL, now, nil))
		}, status: 401, code: dpop.CodeInvalidClient, cause: errAssertionNotRegistered},
		{name: "a public client cannot use it", form: func() url.Values {
			return assertionForm(assertionFor(t, es, pubID, h.ts.URL, now, nil))
		}, status: 401, code: dpop.CodeInvalidClient, cause: errAssertionNotRegistered},
		{name: "unknown client", form: func() url.Values {
			return assertionForm(assertionFor(t, es, "nobody", h.ts.URL, now, nil))
		}, status: 401, code: dpop.CodeInvalidClient, cause: errAssertionUnknownClient},
		{name: "a client registered with keys must use it: client_secret_post", form: func() url.Values {
			return url.Values{"client_id": {pkjID}, "client_secret": {"anything"}}
		}, status: 401, code: dpop.CodeInvalidClient, cause: errAssertionRequired},
		{name: "a client registered with keys must use it: none", form: func() url.Values {
			return url.Values{"client_id": {pkjID}}
		}, status: 401, code: dpop.CodeInvalidClient, cause: errAssertionRequired},
	} {
		t.Run(tc.name, func(t *testing.T) {
			c, e := h.authenticate(tc.form(), tc.headers)
			wantAuth(t, c, e, tc.status, tc.code, tc.cause)
			if tc.status == 0 && c.ID != pkjID {
				t.Fatalf("client %s", c.ID)
			}
		})
	}
	t.Run("a client registered with keys must use it: client_secret_basic", func(t *testing.T) {
		c, e := h.authenticate(url.Values{}, map[string]string{"basic": pkjID + ":anything"})
		if e == nil || e.Code != dpop.CodeInvalidClient || !e.Basic || !errors.Is(e, errAssertionRequired) {
			t.Fatalf("got %v %v", c, e)
		}
	})
}

// TestClientAssertionAssertion: the assertion's algorithm, key, typ and
// claims (RFC 7523 §3, the FAPI 2.0 checklist's Clients section).
func TestClientAssertionAssertion(t *testing.T) {
	es := key(t, "ec256", "ES256", "es")
	ps := key(t, "rsa2048", "PS256", "rsa")
	rs := key(t, "rsa2048", "RS256", "rsa")
	ed := key(t, "ed25519", "EdDSA", "ed")
	ed2 := key(t, "ed25519", "Ed25519", "ed")
	other := key(t, "ec256b", "ES256", "es") // not registered, same kid
	fapi := func(c *Config) {
		c.ClientAssertion = ClientAssertionOptions{Algorithms: []string{"PS256", "ES256", "EdDSA"}, StrictAudience: true}
	}
	legacy := func(c *Config) { c.ClientAssertion.LegacyAudience = true }
	type edit = func(h, c map[string]any)
	for _, tc := range []struct {
		name   string
		config func(*Config)
		key    testKey
		edit   edit
		path   string // the endpoint, default the token endpoint
		cause  error  // nil: accepted
	}{
		{name: "ES256 accepted", key: es},
		{name: "PS256 accepted", key: ps},
		{name: "EdDSA accepted", key: ed},
		{name: "Ed25519 accepted", key: ed2},
		{name: "RS256 accepted by the default profile list", key: rs},
		{name: "RS256 refused by the FAPI list", config: fapi, key: rs, cause: errAssertionAlgorithm},
		{name: "PS256 accepted by the FAPI list", config: fapi, key: ps},
		{name: "alg none refused", key: es, edit: func(h, c map[string]any) { h["alg"] = "none" }, cause: errAssertionAlgorithm},
		{name: "alg HS256 refused", key: es, edit: func(h, c map[string]any) { h["alg"] = "HS256" }, cause: errAssertionAlgorithm},
		{name: "alg of another key type refused", key: es, edit: func(h, c map[string]any) { h["alg"] = "ES384" }, cause: errAssertionKey},
		{name: "kid optional when one key fits the alg", key: es, edit: func(h, c map[string]any) { h["kid"] = nil }},
		{name: "kid unknown refused", key: es, edit: func(h, c map[string]any) { h["kid"] = "nope" }, cause: errAssertionKey},
		{name: "signature by another key refused", key: other, cause: errAssertionSignature},
		{name: "typ absent accepted", key: es},
		{name: "typ client-authentication+jwt accepted", key: es, edit: func(h, c map[string]any) { h["typ"] = "client-authentication+jwt" }},
		{name: "typ JWT accepted", key: es, edit: func(h, c map[string]any) { h["typ"] = "JWT" }},
		{name: "typ at+jwt refused", key: es, edit: func(h, c map[string]any) { h["typ"] = "at+jwt" }, cause: errAssertionMalformed},
		{name: "typ dpop+jwt refused", key: es, edit: func(h, c map[string]any) { h["typ"] = "dpop+jwt" }, cause: errAssertionMalformed},
		{name: "crit refused", key: es, edit: func(h, c map[string]any) { h["crit"] = []string{"exp"} }, cause: errAssertionMalformed},
		{name: "iss other than sub refused", key: es, edit: func(h, c map[string]any) { c["iss"] = confID }, cause: errAssertionIssuer},
		{name: "iss missing refused", key: es, edit: func(h, c map[string]any) { c["iss"] = nil }, cause: errAssertionIssuer},
		{name: "sub missing refused", key: es, edit: func(h, c map[string]any) { c["sub"] = nil }, cause: errAssertionIssuer},
		{name: "exp required", key: es, edit: func(h, c map[string]any) { c["exp"] = nil }, cause: errAssertionExpiry},
		{name: "exp passed refused", key: es, edit: func(h, c map[string]any) { c["exp"] = time.Now().Add(-time.Second).Unix() }, cause: errAssertionExpiry},
		{name: "exp as a string refused", key: es, edit: func(h, c map[string]any) { c["exp"] = "2000000000" }, cause: errAssertionMalformed},
		{name: "lifetime of 5 minutes accepted", key: es, edit: func(h, c map[string]any) { c["exp"] = time.Now().Add(5*time.Minute - 2*time.Second).Unix() }},
		{name: "lifetime over 5 minutes refused", key: es, edit: func(h, c map[string]any) { c["exp"] = time.Now().Add(5*time.Minute + 2*time.Second).Unix() }, cause: errAssertionLifetime},
		{name: "lifetime bound configurable", config: func(c *Config) { c.ClientAssertion.MaxLifetime = 30 * time.Second }, key: es, cause: errAssertionLifetime},
		{name: "iat up to 10 s in the future accepted", key: es, edit: func(h, c map[string]any) { c["iat"] = time.Now().Add(8 * time.Second).Unix() }},
		{name: "iat more than 10 s in the future refused", key: es, edit: func(h, c map[string]any) { c["iat"] = time.Now().Add(15 * time.Second).Unix() }, cause: errAssertionFuture},
		{name: "iat more than 60 s in the future refused", key: es, edit: func(h, c map[string]any) { c["iat"] = time.Now().Add(61 * time.Second).Unix() }, cause: errAssertionFuture},
		{name: "nbf up to 10 s in the future accepted", key: es, edit: func(h, c map[string]any) { c["nbf"] = time.Now().Add(8 * time.Second).Unix() }},
		{name: "nbf more than 10 s in the future refused", key: es, edit: func(h, c map[string]any) { c["nbf"] = time.Now().Add(15 * time.Second).Unix() }, cause: errAssertionFuture},
		{name: "iat absent accepted", key: es, edit: func(h, c map[string]any) { c["iat"] = nil }},
		{name: "jti required", key: es, edit: func(h, c map[string]any) { c["jti"] = nil }, cause: errAssertionJTI},
		{name: "jti empty refused", key: es, edit: func(h, c map[string]any) { c["jti"] = "" }, cause: errAssertionJTI},
		{name: "aud the issuer as a string accepted", config: fapi, key: es},
		{name: "aud a one-element array holding the issuer accepted", key: es, edit: func(h, c map[string]any) { c["aud"] = []string{c["aud"].(string)} }},
		{name: "aud a one-element array refused with StrictAudience", config: fapi, key: es, edit: func(h, c map[string]any) { c["aud"] = []string{c["aud"].(string)} }, cause: errAssertionAudience},
		{name: "aud an array of two refused", key: es, edit: func(h, c map[string]any) { c["aud"] = []string{c["aud"].(string), "https://other.example"} }, cause: errAssertionAudience},
		{name: "aud missing refused", key: es, edit: func(h, c map[string]any) { c["aud"] = nil }, cause: errAssertionAudience},
		{name: "aud another issuer refused", key: es, edit: func(h, c map[string]any) { c["aud"] = "https://other.example" }, cause: errAssertionAudience},
		{name: "aud the issuer with a trailing slash refused", key: es, edit: func(h, c map[string]any) { c["aud"] = c["aud"].(string) + "/" }, cause: errAssertionAudience},
		{name: "aud the token endpoint URL refused", key: es, edit: func(h, c map[string]any) { c["aud"] = c["aud"].(string) + "/oauth2/token" }, cause: errAssertionAudience},
		{name: "aud the token endpoint URL accepted with LegacyAudience", config: legacy, key: es, edit: func(h, c map[string]any) { c["aud"] = c["aud"].(string) + "/oauth2/token" }},
		{name: "aud the PAR endpoint URL refused", key: es, path: "/oauth2/par", edit: func(h, c map[string]any) { c["aud"] = c["aud"].(string) + "/oauth2/par" }, cause: errAssertionAudience},
		{name: "aud the PAR endpoint URL accepted with LegacyAudience", config: legacy, key: es, path: "/oauth2/par", edit: func(h, c map[string]any) { c["aud"] = c["aud"].(string) + "/oauth2/par" }},
		{name: "aud the revocation URL refused with LegacyAudience", config: legacy, key: es, path: "/oauth2/revoke", edit: func(h, c map[string]any) { c["aud"] = c["aud"].(string) + "/oauth2/revoke" }, cause: errAssertionAudience},
	} {
		t.Run(tc.name, func(t *testing.T) {
			h := assertionHarness(t, tc.config, "", es, ps, ed)
			a := assertionFor(t, tc.key, pkjID, h.ts.URL, time.Now(), tc.edit)
			path := tc.path
			if path == "" {
				path = h.srv.cfg.Paths.Token
			}
			c, e := h.authenticateAt(path, assertionForm(a), nil)
			if tc.cause == nil {
				wantAuth(t, c, e, 0, "", nil)
				return
			}
			wantAuth(t, c, e, 401, dpop.CodeInvalidClient, tc.cause)
			if !errors.Is(e, ErrClientAssertion) || !errors.Is(e, ErrClientAuth) {
				t.Fatalf("cause %v does not wrap ErrClientAssertion and ErrClientAuth", e.Err)
			}
		})
	}
}

// TestClientAssertionKeys: which keys of the registration may verify an
// assertion: kid required when several fit, key fit per the profile,
// public keys only.
func TestClientAssertionKeys(t *testing.T) {
	es := key(t, "ec256", "ES256", "es")
	esB := key(t, "ec256b", "ES256", "es-b")
	for _, tc := range []struct {
		name  string
		keys  []testKey
		key   testKey
		edit  func(h, c map[string]any)
		cause error
	}{
		{name: "kid required when several keys fit the alg", keys: []testKey{es, esB}, key: es,
			edit: func(h, c map[string]any) { h["kid"] = nil }, cause: errAssertionKidRequired},
		{name: "kid matched when several keys fit the alg", keys: []testKey{es, esB}, key: esB},
		{name: "kid optional when the other keys do not fit the alg", keys: []testKey{es, key(t, "rsa2048", "PS256", "rsa")}, key: es,
			edit: func(h, c map[string]any) { h["kid"] = nil }},
		{name: "kid optional with one key without a kid", keys: []testKey{key(t, "ec256", "ES256", "")}, key: key(t, "ec256", "ES256", "")},
		{name: "RSA key under 2048 bits refused", keys: []testKey{key(t, "rsa1024", "PS256", "small")}, key: key(t, "rsa1024", "PS256", "small"), cause: errAssertionKey},
		{name: "EC key of another curve than the alg's refused", keys: []testKey{key(t, "ec384", "ES256", "p384")}, key: key(t, "ec384", "ES384", "p384"),
			edit: func(h, c map[string]any) { h["alg"] = "ES256" }, cause: errAssertionKey},
		{name: "ES384 with a P-384 key accepted", keys: []testKey{key(t, "ec384", "ES384", "p384")}, key: key(t, "ec384", "ES384", "p384")},
	} {
		t.Run(tc.name, func(t *testing.T) {
			h := assertionHarness(t, nil, "", tc.keys...)
			c, e := h.authenticate(assertionForm(assertionFor(t, tc.key, pkjID, h.ts.URL, time.Now(), tc.edit)), nil)
			if tc.cause == nil {
				wantAuth(t, c, e, 0, "", nil)
				return
			}
			wantAuth(t, c, e, 401, dpop.CodeInvalidClient, tc.cause)
		})
	}

	// A private or symmetric key in the registration: the whole set is
	// refused (and logged), even for an assertion by another key.
	privateDoc := func() []byte {
		j, _ := jwk.FromRaw(keyPool(t)["ec256b"])
		j.Set(jwk.KeyIDKey, "leaked")
		pub, _ := jwk.FromRaw(es.signer.Public())
		pub.Set(jwk.KeyIDKey, es.kid)
		set := jwk.NewSet()
		set.AddKey(pub)
		set.AddKey(j)
		b, _ := json.Marshal(set)
		return b
	}
	for _, tc := range []struct {
		name string
		doc  []byte
	}{
		{"a private key in the registration refuses the assertion", privateDoc()},
		{"a symmetric key in the registration refuses the assertion",
			[]byte(`{"keys":[` + strings.TrimSuffix(strings.TrimPrefix(string(jwksOf(t, es)), `{"keys":[`), `]}`) + `,{"kty":"oct","kid":"s","k":"c2VjcmV0c2VjcmV0c2VjcmV0c2VjcmV0"}]}`)},
	} {
		t.Run(tc.name, func(t *testing.T) {
			var logs strings.Builder
			var mu sync.Mutex
			h := assertionHarness(t, func(c *Config) { c.Logger = newTestLogger(&mu, &logs) }, "", es)
			bad := &store.Client{ID: "leaky", JWKS: tc.doc, GrantTypes: []string{"client_credentials"}, Scopes: []string{"read"}}
			if err := h.store.SaveClient(context.Background(), bad); err != nil {
				t.Fatal(err)
			}
			c, e := h.authenticate(assertionForm(assertionFor(t, es, "leaky", h.ts.URL, time.Now(), nil)), nil)
			wantAuth(t, c, e, 401, dpop.CodeInvalidClient, errAssertionKeys)
			mu.Lock()
			defer mu.Unlock()
			if !strings.Contains(logs.String(), "client key set refused") {
				t.Fatalf("not logged: %q", logs.String())
			}
		})
	}

	t.Run("parsed sets cached by client id and JWKS hash", func(t *testing.T) {
		h := assertionHarness(t, nil, "", es)
		for range 3 {
			c, e := h.authenticate(assertionForm(assertionFor(t, es, pkjID, h.ts.URL, time.Now(), nil)), nil)
			wantAuth(t, c, e, 0, "", nil)
		}
		st := h.srv.assertions
		if n := st.sets.Len(); n != 1 {
			t.Fatalf("%d sets cached, want 1", n)
		}
		// A new registration replaces the keys at once.
		cl, _ := h.store.GetClient(context.Background(), pkjID)
		cl.JWKS = jwksOf(t, esB)
		if err := h.store.SaveClient(context.Background(), cl); err != nil {
			t.Fatal(err)
		}
		c, e := h.authenticate(assertionForm(assertionFor(t, es, pkjID, h.ts.URL, time.Now(), nil)), nil)
		wantAuth(t, c, e, 401, dpop.CodeInvalidClient, errAssertionKey)
		c, e = h.authenticate(assertionForm(assertionFor(t, esB, pkjID, h.ts.URL, time.Now(), nil)), nil)
		wantAuth(t, c, e, 0, "", nil)
	})
}

// countingReplayCache counts inserts and can fail them.
type countingReplayCache struct {
	dpop.ReplayCache
	inserts atomic.Int64
	fail    atomic.Bool
	mu      sync.Mutex
	ttls    []time.Duration
}

func (c *countingReplayCache) Insert(ctx context.Context, k dpop.ReplayKey, ttl time.Duration) (bool, error) {
	c.inserts.Add(1)
	c.mu.Lock()
	c.ttls = append(c.ttls, ttl)
	c.mu.Unlock()
	if c.fail.Load() {
		return false, errors.New("replay cache down")
	}
	return c.ReplayCache.Insert(ctx, k, ttl)
}

// TestClientAssertionReplay: jti remembered until exp, a replay is
// invalid_client, a failing cache 503, and only verified assertions spend.
func TestClientAssertionReplay(t *testing.T) {
	es := key(t, "ec256", "ES256", "es")
	other := key(t, "ec256b", "ES256", "es")
	mem, err := dpop.NewMemoryReplayCache(dpop.MemoryReplayCacheOptions{})
	if err != nil {
		t.Fatal(err)
	}
	cache := &countingReplayCache{ReplayCache: mem}
	h := assertionHarness(t, func(c *Config) { c.DPoP.ReplayCache = cache }, "", es)
	second := &store.Client{ID: "pkj2", JWKS: jwksOf(t, es), GrantTypes: []string{"client_credentials"}, Scopes: []string{"read"}}
	if err := h.store.SaveClient(context.Background(), second); err != nil {
		t.Fatal(err)
	}
	now := time.Now()
	withJTI := func(jti string) func(h, c map[string]any) { return func(h, c map[string]any) { c["jti"] = jti } }

	t.Run("jti remembered until exp: a replayed assertion is invalid_client", func(t *testing.T) {
		a := assertionFor(t, es, pkjID, h.ts.URL, now, withJTI("once"))
		c, e := h.authenticate(assertionForm(a), nil)
		wantAuth(t, c, e, 0, "", nil)
		c, e = h.authenticate(assertionForm(a), nil)
		wantAuth(t, c, e, 401, dpop.CodeInvalidClient, errAssertionReplayed)
		// Another assertion with the same jti is a replay too.
		c, e = h.authenticate(assertionForm(assertionFor(t, es, pkjID, h.ts.URL, now, withJTI("once"))), nil)
		wantAuth(t, c, e, 401, dpop.CodeInvalidClient, errAssertionReplayed)
		cache.mu.Lock()
		ttl := cache.ttls[len(cache.ttls)-1]
		cache.mu.Unlock()
		if ttl < 50*time.Second || ttl > time.Minute+AssertionLeeway+time.Second {
			t.Fatalf("remembered for %v, want about exp − now + %v", ttl, AssertionLeeway)
		}
	})
	t.Run("the same jti of two clients is no replay", func(t *testing.T) {
		for _, id := range []string{pkjID, "pkj2"} {
			c, e := h.authenticate(assertionForm(assertionFor(t, es, id, h.ts.URL, now, withJTI("shared"))), nil)
			wantAuth(t, c, e, 0, "", nil)
		}
	})
	t.Run("key domain-separated from proofs", func(t *testing.T) {
		k := assertionReplayKey(pkjID, "x")
		if k == dpop.NewReplayKey(pkjID, "x") || k == assertionReplayKey(pkjID+"\x00", "x") || k == assertionReplayKey(pkjID, "x\x00") {
			t.Fatal("replay keys collide")
		}
		if k != assertionReplayKey(pkjID, "x") {
			t.Fatal("replay key not deterministic: instances would disagree")
		}
	})
	t.Run("the replay insert happens only after the signature verified", func(t *testing.T) {
		before := cache.inserts.Load()
		for _, a := range []string{
			assertionFor(t, other, pkjID, h.ts.URL, now, withJTI("forged")),
			assertionFor(t, es, pkjID, h.ts.URL, now, func(h, c map[string]any) { c["jti"] = "late"; c["aud"] = "https://other.example" }),
			assertionFor(t, es, pkjID, h.ts.URL, now, func(h, c map[string]any) { c["jti"] = "old"; c["exp"] = now.Add(-time.Minute).Unix() }),
		} {
			_, e := h.authenticate(assertionForm(a), nil)
			if e == nil {
				t.Fatal("accepted")
			}
		}
		if n := cache.inserts.Load() - before; n != 0 {
			t.Fatalf("%d inserts for refused assertions", n)
		}
		// The forged jti was not spent: the client's own assertion with it
		// is accepted.
		c, e := h.authenticate(assertionForm(assertionFor(t, es, pkjID, h.ts.URL, now, withJTI("forged"))), nil)
		wantAuth(t, c, e, 0, "", nil)
	})
	t.Run("a cache that fails is 503 (fail closed)", func(t *testing.T) {
		cache.fail.Store(true)
		defer cache.fail.Store(false)
		c, e := h.authenticate(assertionForm(assertionFor(t, es, pkjID, h.ts.URL, now, nil)), nil)
		wantAuth(t, c, e, 503, dpop.CodeServerError, dpop.ErrReplayCacheUnavailable)
	})
}

// jwksServer serves a JWK Set that the test can change, counting fetches.
type jwksServer struct {
	*httptest.Server
	mu      sync.Mutex
	doc     []byte
	status  int
	fetches atomic.Int64
}

func newJWKSServer(t *testing.T, doc []byte) *jwksServer {
	s := &jwksServer{doc: doc, status: 200}
	s.Server = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		s.fetches.Add(1)
		s.mu.Lock()
		doc, status := s.doc, s.status
		s.mu.Unlock()
		switch r.URL.Path {
		case "/redirect-insecure":
			http.Redirect(w, r, "http://example.com/jwks", http.StatusFound)
			return
		case "/redirect-same":
			http.Redirect(w, r, "/jwks", http.StatusFound)
			return
		case "/big":
			w.Write([]byte(`{"keys":[],"pad":"` + strings.Repeat("x", jwksURIMaxBytes) + `"}`))
			return
		}
		w.Header().Set("Content-Type", "application/jwk-set+json")
		w.WriteHeader(status)
		w.Write(doc)
	}))
	t.Cleanup(s.Close)
	return s
}

func (s *jwksServer) set(doc []byte, status int) {
	s.mu.Lock()
	s.doc, s.status = doc, status
	s.mu.Unlock()
}

// TestClientAssertionJWKSURI: keys fetched from jwks_uri with a cache, a
// refetch on an unknown kid at most once per 30 s, 503 when no set can be
// had, never acceptance.
func TestClientAssertionJWKSURI(t *testing.T) {
	es := key(t, "ec256", "ES256", "es")
	esB := key(t, "ec256b", "ES256", "es-b")
	ed := key(t, "ed25519", "EdDSA", "ed")

	t.Run("fetched, cached, refetched on an unknown kid at most once per 30 s", func(t *testing.T) {
		js := newJWKSServer(t, jwksOf(t, es))
		var clk clock
		h := assertionHarness(t, withClock(&clk), js.URL+"/jwks", es)
		auth := func(k testKey) *Error {
			_, e := h.authenticate(assertionForm(assertionFor(t, k, pkjURIID, h.ts.URL, clk.now(), nil)), nil)
			return e
		}
		if e := auth(es); e != nil {
			t.Fatal(e, e.Err)
		}
		if e := auth(es); e != nil {
			t.Fatal(e, e.Err)
		}
		if n := js.fetches.Load(); n != 1 {
			t.Fatalf("%d fetches, want 1 (cached)", n)
		}
		// Rotation: a new key appears; the first unknown kid within 30 s of
		// the last fetch finds nothing new.
		js.set(jwksOf(t, es, esB), 200)
		if e := auth(esB); e == nil || !errors.Is(e, errAssertionKey) {
			t.Fatalf("got %v, want an unknown key", e)
		}
		if n := js.fetches.Load(); n != 1 {
			t.Fatalf("%d fetches within 30 s, want 1", n)
		}
		clk.add(31 * time.Second)
		if e := auth(esB); e != nil {
			t.Fatal(e, e.Err)
		}
		if n := js.fetches.Load(); n != 2 {
			t.Fatalf("%d fetches, want 2", n)
		}
		// An unknown kid again right after: no fetch.
		if e := auth(ed); e == nil {
			t.Fatal("accepted")
		}
		if n := js.fetches.Load(); n != 2 {
			t.Fatalf("%d fetches, want 2", n)
		}
		// After the TTL the set is fetched again; a failing fetch keeps the
		// last good set in use.
		js.set(nil, 500)
		clk.add(jwksURITTL + time.Second)
		if e := auth(es); e != nil {
			t.Fatal(e, e.Err)
		}
		if n := js.fetches.Load(); n != 3 {
			t.Fatalf("%d fetches, want 3", n)
		}
	})

	for _, tc := range []struct {
		name   string
		path   string
		status int
		doc    func() []byte
		code   dpop.ErrorCode
		cause  error
	}{
		{name: "a fetch failure with no cached set is 503", path: "/jwks", status: 500, code: dpop.CodeServerError, cause: ErrClientKeysUnavailable},
		{name: "a redirect to an insecure URL is 503", path: "/redirect-insecure", status: 200, code: dpop.CodeServerError, cause: ErrClientKeysUnavailable},
		{name: "a redirect on the same loopback origin is followed", path: "/redirect-same", status: 200},
		{name: "a set larger than 64 KiB refuses the assertion", path: "/big", status: 200, code: dpop.CodeInvalidClient, cause: errAssertionKeys},
		{name: "a private key at the jwks_uri refuses the assertion", path: "/jwks", status: 200, code: dpop.CodeInvalidClient, cause: errAssertionKeys,
			doc: func() []byte {
				j, _ := jwk.FromRaw(es.signer)
				b, _ := json.Marshal(map[string]any{"keys": []any{j}})
				return b
			}},
		{name: "not a JWK Set refuses the assertion", path: "/jwks", status: 200, code: dpop.CodeInvalidClient, cause: errAssertionKeys,
			doc: func() []byte { return []byte(`<html>`) }},
	} {
		t.Run(tc.name, func(t *testing.T) {
			doc := jwksOf(t, es)
			if tc.doc != nil {
				doc = tc.doc()
			}
			js := newJWKSServer(t, doc)
			js.set(doc, tc.status)
			h := assertionHarness(t, nil, js.URL+tc.path, es)
			c, e := h.authenticate(assertionForm(assertionFor(t, es, pkjURIID, h.ts.URL, time.Now(), nil)), nil)
			if tc.code == "" {
				wantAuth(t, c, e, 0, "", nil)
				return
			}
			status := 401
			if tc.code == dpop.CodeServerError {
				status = 503
			}
			wantAuth(t, c, e, status, tc.code, tc.cause)
		})
	}

	t.Run("an unreachable jwks_uri is 503, fetched at most once per 30 s", func(t *testing.T) {
		js := newJWKSServer(t, jwksOf(t, es))
		uri := js.URL + "/jwks"
		js.Close()
		h := assertionHarness(t, nil, uri, es)
		for range 3 {
			c, e := h.authenticate(assertionForm(assertionFor(t, es, pkjURIID, h.ts.URL, time.Now(), nil)), nil)
			wantAuth(t, c, e, 503, dpop.CodeServerError, ErrClientKeysUnavailable)
		}
		if n := js.fetches.Load(); n != 0 {
			t.Fatalf("%d fetches reached a closed server", n)
		}
	})

	t.Run("the URI cache is bounded", func(t *testing.T) {
		u := newJWKSURIs(jwksHTTPClient(nil), time.Now)
		for i := range jwksURICacheSize + 10 {
			u.entry("https://client.example/" + string(rune('a'+i%26)) + "/" + time.Duration(i).String())
		}
		if n := u.cache.Len(); n != jwksURICacheSize {
			t.Fatalf("%d entries, want %d", n, jwksURICacheSize)
		}
	})
}

// TestClientAssertionEndpoints: the token, revocation and introspection
// endpoints get private_key_jwt from authenticateClient.
func TestClientAssertionEndpoints(t *testing.T) {
	es := key(t, "ec256", "ES256", "es")
	h := assertionHarness(t, nil, "", es)
	a := func() string { return assertionFor(t, es, pkjID, h.ts.URL, time.Now(), nil) }
	f := assertionForm(a())
	f.Set("grant_type", "client_credentials")
	r := h.postForm("/oauth2/token", f, map[string]string{"DPoP": h.proof("POST", "/oauth2/token", dpop.ProofOptions{})})
	if r.status != 200 || r.str("token_type") != "DPoP" {
		t.Fatalf("token: %d %s", r.status, r.raw)
	}
	token := r.str("access_token")

	f = assertionForm(a())
	f.Set("token", token)
	r = h.postForm("/oauth2/introspect", f, nil)
	if r.status != 200 || r.body["active"] != true {
		t.Fatalf("introspect: %d %s", r.status, r.raw)
	}
	f = assertionForm(a())
	f.Set("token", token)
	if r = h.postForm("/oauth2/revoke", f, nil); r.status != 200 {
		t.Fatalf("revoke: %d %s", r.status, r.raw)
	}

	// Refused: 401 invalid_client without a Basic challenge.
	f = assertionForm(assertionFor(t, es, pkjID, h.ts.URL, time.Now(), func(h, c map[string]any) { c["aud"] = "https://other.example" }))
	f.Set("grant_type", "client_credentials")
	r = h.postForm("/oauth2/token", f, map[string]string{"DPoP": h.proof("POST", "/oauth2/token", dpop.ProofOptions{})})
	wantError(t, r, 401, dpop.CodeInvalidClient)
	if r.header.Get("WWW-Authenticate") != "" {
		t.Fatalf("WWW-Authenticate %q", r.header.Get("WWW-Authenticate"))
	}
}

// TestClientAssertionOptions: the options' defaults and refusals, and the
// algorithms metadata advertises.
func TestClientAssertionOptions(t *testing.T) {
	for _, tc := range []struct {
		name string
		opts ClientAssertionOptions
		ok   bool
	}{
		{"zero value", ClientAssertionOptions{}, true},
		{"FAPI", ClientAssertionOptions{Algorithms: []string{"PS256", "ES256", "EdDSA"}, StrictAudience: true}, true},
		{"HS256 refused", ClientAssertionOptions{Algorithms: []string{"HS256"}}, false},
		{"none refused", ClientAssertionOptions{Algorithms: []string{"none"}}, false},
		{"MaxLifetime over an hour refused", ClientAssertionOptions{MaxLifetime: 2 * time.Hour}, false},
		{"negative MaxLifetime refused", ClientAssertionOptions{MaxLifetime: -time.Second}, false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			if err := tc.opts.Validate(); (err == nil) != tc.ok {
				t.Fatalf("Validate: %v", err)
			}
		})
	}
	t.Run("signing algorithms default to the profile list", func(t *testing.T) {
		h := newHarness(t, nil)
		if got := h.srv.ClientAssertionAlgorithms(); strings.Join(got, ",") != strings.Join(jose.Names(), ",") {
			t.Fatalf("%v", got)
		}
	})
	t.Run("signing algorithms as configured", func(t *testing.T) {
		h := newHarness(t, func(c *Config) { c.ClientAssertion.Algorithms = []string{"PS256", "ES256", "EdDSA"} })
		if got := h.srv.ClientAssertionAlgorithms(); strings.Join(got, ",") != "PS256,ES256,EdDSA" {
			t.Fatalf("%v", got)
		}
	})
	t.Run("New refuses options it cannot enforce", func(t *testing.T) {
		m, err := store.NewMemory(store.MemoryOptions{})
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { m.Close() })
		for _, o := range []ClientAssertionOptions{{Algorithms: []string{"HS256"}}, {Algorithms: []string{"none"}}, {MaxLifetime: 2 * time.Hour}} {
			if _, err := New(Config{Issuer: "https://as.example", Store: m, ClientAssertion: o}); err == nil {
				t.Errorf("New accepted %+v", o)
			}
		}
	})
}

// lockedWriter serializes writes to a builder shared with the test.
type lockedWriter struct {
	mu *sync.Mutex
	b  *strings.Builder
}

func (w lockedWriter) Write(p []byte) (int, error) {
	w.mu.Lock()
	defer w.mu.Unlock()
	return w.b.Write(p)
}

func newTestLogger(mu *sync.Mutex, b *strings.Builder) *slog.Logger {
	return slog.New(slog.NewTextHandler(lockedWriter{mu, b}, nil))
}

// TestClientAssertionPAR: the pushed authorization request endpoint gets
// private_key_jwt too, with the audience rules of the other endpoints.
func TestClientAssertionPAR(t *testing.T) {
	es := key(t, "ec256", "ES256", "es")
	for _, tc := range []struct {
		name   string
		legacy bool
		aud    func(issuer string) any
		status int
	}{
		{"aud the issuer", false, func(iss string) any { return iss }, http.StatusCreated},
		{"aud the PAR endpoint URL refused", false, func(iss string) any { return iss + DefaultPaths.PushedAuthorization }, http.StatusUnauthorized},
		{"aud the PAR endpoint URL accepted with LegacyAudience", true, func(iss string) any { return iss + DefaultPaths.PushedAuthorization }, http.StatusCreated},
		{"aud the token endpoint URL accepted with LegacyAudience", true, func(iss string) any { return iss + DefaultPaths.Token }, http.StatusCreated},
	} {
		t.Run(tc.name, func(t *testing.T) {
			h := newPARHarness(t, func(c *Config) { c.ClientAssertion.LegacyAudience = tc.legacy })
			cl := &store.Client{ID: pkjID, JWKS: jwksOf(t, es), GrantTypes: []string{"authorization_code"},
				RedirectURIs: []string{redirectURI}, Scopes: []string{"read"}}
			if err := h.store.SaveClient(context.Background(), cl); err != nil {
				t.Fatal(err)
			}
			a := assertionFor(t, es, pkjID, h.ts.URL, h.clock.Now(), func(_, c map[string]any) { c["aud"] = tc.aud(h.ts.URL) })
			p := parParams(pkjID)
			for k, v := range assertionForm(a) {
				p[k] = v
			}
			r := h.push(p, nil)
			if r.status != tc.status {
				t.Fatalf("got %d %s, want %d", r.status, r.raw, tc.status)
			}
			if tc.status == http.StatusUnauthorized {
				wantError(t, r, 401, dpop.CodeInvalidClient)
			}
		})
	}
}
