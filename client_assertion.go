package dpop

import (
	"bytes"
	"crypto/rand"
	"errors"
	"fmt"
	"io"
	"mime"
	"net/http"
	"net/url"
	"slices"
	"strings"
	"time"
)

// AssertionType is the client_assertion_type of a JWT client assertion
// (RFC 7523 §2.2).
const AssertionType = "urn:ietf:params:oauth:client-assertion-type:jwt-bearer"

// Defaults and bounds of AssertionOptions.
const (
	// DefaultAssertionLifetime is the default AssertionOptions.Lifetime.
	DefaultAssertionLifetime = time.Minute
	// maxAssertionBody bounds the token request body AssertionTransport
	// reads to add the assertion.
	maxAssertionBody = 64 << 10
)

// AssertionOptions configures the client assertions of a Signer (RFC 7523
// §3): private_key_jwt client authentication (OpenID Connect Core §9).
type AssertionOptions struct {
	// ClientID is the client identifier, the assertion's iss and sub.
	// Required.
	ClientID string
	// Audience is the authorization server's issuer identifier, the aud,
	// sent as a string (draft-ietf-oauth-rfc7523bis; FAPI 2.0 requires
	// exactly this). Required.
	Audience string
	// KeyID is the kid of the key in the client's registered JWK Set; sent
	// when set (a server needs it when the set holds several keys).
	KeyID string
	// Lifetime is how long an assertion is valid (exp − iat). Default
	// DefaultAssertionLifetime; at most 5 minutes.
	Lifetime time.Duration
}

// assertionClaims is the claims set of a client assertion (RFC 7523 §3).
type assertionClaims struct {
	Issuer   string `json:"iss"`
	Subject  string `json:"sub"`
	Audience string `json:"aud"`
	JTI      string `json:"jti"`
	IssuedAt int64  `json:"iat"`
	Expiry   int64  `json:"exp"`
}

// ClientAssertion returns a fresh client assertion signed with the signer's
// key (RFC 7523 §2.2, §3): header alg, typ client-authentication+jwt and the
// kid when given; claims iss = sub = ClientID, aud = Audience as a string, a
// random jti of 128 bits, iat now and exp Lifetime later. Each assertion is
// for one request: servers remember the jti.
func (s *Signer) ClientAssertion(opts AssertionOptions) (string, error) {
	if opts.ClientID == "" || opts.Audience == "" {
		return "", errors.New("dpop: a client assertion needs ClientID and Audience")
	}
	if opts.Lifetime == 0 {
		opts.Lifetime = DefaultAssertionLifetime
	}
	if opts.Lifetime < time.Second || opts.Lifetime > 5*time.Minute {
		return "", errors.New("dpop: client assertion lifetime must be between 1 s and 5 min")
	}
	header := struct {
		Alg string `json:"alg"`
		Typ string `json:"typ"`
		Kid string `json:"kid,omitempty"`
	}{s.alg, "client-authentication+jwt", opts.KeyID}
	h, err := compactJSON(header)
	if err != nil {
		return "", fmt.Errorf("dpop: encoding the assertion header: %w", err)
	}
	var jti [jtiBytes]byte
	rand.Read(jti[:])
	now := s.now()
	c := assertionClaims{
		Issuer: opts.ClientID, Subject: opts.ClientID, Audience: opts.Audience, JTI: encodeB64(jti[:]),
		IssuedAt: now.Unix(), Expiry: now.Add(opts.Lifetime).Unix(),
	}
	payload, err := compactJSON(c)
	if err != nil {
		return "", fmt.Errorf("dpop: encoding the assertion claims: %w", err)
	}
	input := encodeB64(h) + "." + encodeB64(payload)
	sig, err := s.sign(input)
	if err != nil {
		return "", err
	}
	return input + "." + encodeB64(sig), nil
}

// AssertionTransport is an [http.RoundTripper] that authenticates a client
// with private_key_jwt (RFC 7523 §2.2): to every POST of an
// application/x-www-form-urlencoded body to one of TokenURLs it adds
// client_assertion_type and a fresh client_assertion made by Signer, on a
// clone of the request (the caller's is never modified). Other requests
// pass through unchanged. Put it under golang.org/x/oauth2 (through the
// context's HTTP client, with the oauth2 Config's AuthStyle set to
// AuthStyleInParams and no ClientSecret) so that each token request, refresh
// included, carries a new assertion; stack it with [NewTransport] for DPoP.
type AssertionTransport struct {
	// Signer holds the client's private key.
	Signer *Signer
	// Options are the assertions' claims.
	Options AssertionOptions
	// TokenURLs are the endpoints that authenticate the client: the token
	// endpoint, and the PAR, revocation or introspection endpoints it
	// calls. Compared exactly, without the query.
	TokenURLs []string
	// Base makes the requests; nil means http.DefaultTransport.
	Base http.RoundTripper
}

// RoundTrip implements [http.RoundTripper].
func (t *AssertionTransport) RoundTrip(req *http.Request) (*http.Response, error) {
	base := t.Base
	if base == nil {
		base = http.DefaultTransport
	}
	if !t.authenticates(req) {
		return base.RoundTrip(req)
	}
	closeBody := func() {
		if req.Body != nil {
			req.Body.Close()
		}
	}
	var form url.Values
	if req.Body != nil {
		b, err := io.ReadAll(io.LimitReader(req.Body, maxAssertionBody+1))
		closeBody()
		if err != nil {
			return nil, fmt.Errorf("dpop: reading the token request: %w", err)
		}
		if len(b) > maxAssertionBody {
			return nil, errors.New("dpop: token request body too large")
		}
		if form, err = url.ParseQuery(string(b)); err != nil {
			return nil, fmt.Errorf("dpop: token request body: %w", err)
		}
	} else {
		form = url.Values{}
	}
	if form.Has("client_secret") || form.Has("client_assertion") || req.Header.Get("Authorization") != "" {
		return nil, errors.New("dpop: the token request already carries client authentication")
	}
	a, err := t.Signer.ClientAssertion(t.Options)
	if err != nil {
		return nil, err
	}
	form.Set("client_assertion_type", AssertionType)
	form.Set("client_assertion", a)
	if !form.Has("client_id") {
		form.Set("client_id", t.Options.ClientID)
	}
	body := []byte(form.Encode())
	r := req.Clone(req.Context())
	r.Body = io.NopCloser(bytes.NewReader(body))
	r.ContentLength = int64(len(body))
	r.GetBody = func() (io.ReadCloser, error) { return io.NopCloser(bytes.NewReader(body)), nil }
	r.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	return base.RoundTrip(r)
}

// authenticates reports whether req is a form POST to one of TokenURLs.
func (t *AssertionTransport) authenticates(req *http.Request) bool {
	if req.Method != http.MethodPost || req.URL == nil {
		return false
	}
	if ct := req.Header.Get("Content-Type"); ct != "" {
		if mt, _, err := mime.ParseMediaType(ct); err != nil || mt != "application/x-www-form-urlencoded" {
			return false
		}
	}
	u := *req.URL
	u.RawQuery, u.ForceQuery, u.Fragment = "", false, ""
	target := u.String()
	return slices.ContainsFunc(t.TokenURLs, func(s string) bool { return strings.TrimSuffix(s, "?") == target })
}
