package handlers

import (
	"context"
	"crypto"
	"crypto/rand"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"time"

	"github.com/dpopkit/dpop/internal/jose"
	"github.com/dpopkit/dpop/store"
	"github.com/lestrrat-go/jwx/v2/jwk"
)

// AccessTokens issues access tokens in one format and reads back the ones it
// issued (for introspection and revocation).
type AccessTokens interface {
	// Issue returns a new access token for t.
	Issue(ctx context.Context, t *store.AccessToken) (string, error)
	// Lookup returns the record of a live token this format issued, or an
	// error wrapping store.ErrNotFound (or store.ErrRevoked).
	Lookup(ctx context.Context, token string) (*store.AccessToken, error)
}

// randomToken returns 256 random bits, base64url: codes, opaque tokens,
// refresh tokens and grant ids (RFC 6749 §10.10 asks for at least 128).
func randomToken() string {
	var b [32]byte
	rand.Read(b[:])
	return base64.RawURLEncoding.EncodeToString(b[:])
}

// opaqueAccessTokens are random strings stored by hash.
type opaqueAccessTokens struct{ store store.AccessTokenStore }

// newOpaqueToken returns a fresh opaque access token and the hash it is
// stored under.
func newOpaqueToken() (string, store.TokenHash) {
	tok := randomToken()
	return tok, store.HashToken(tok)
}

func (o opaqueAccessTokens) Issue(ctx context.Context, t *store.AccessToken) (string, error) {
	tok, h := newOpaqueToken()
	if err := o.store.SaveAccessToken(ctx, h, t); err != nil {
		return "", err
	}
	return tok, nil
}

func (o opaqueAccessTokens) Lookup(ctx context.Context, token string) (*store.AccessToken, error) {
	return o.store.GetAccessToken(ctx, store.HashToken(token))
}

// jwtAccessTokens are RFC 9068 JWTs signed with the first configured key,
// issued and read back under the kit's JOSE profile (internal/jose), the
// same the middleware's JWTValidator checks them with.
type jwtAccessTokens struct {
	issuer string
	kid    string
	spec   jose.Spec
	signer crypto.Signer
	public jwk.Set
	algs   map[string]jose.Spec // the algorithms of the configured keys
	now    func() time.Time
}

// jwtClaims is the payload of a JWT access token (RFC 9068 §2.2, RFC 9449
// §6.1).
type jwtClaims struct {
	Issuer   string   `json:"iss"`
	Subject  string   `json:"sub"`
	Audience []string `json:"aud,omitempty"`
	Expiry   int64    `json:"exp"`
	IssuedAt int64    `json:"iat"`
	JTI      string   `json:"jti"`
	ClientID string   `json:"client_id"`
	Scope    string   `json:"scope,omitempty"`
	Cnf      *cnf     `json:"cnf,omitempty"`
}

type cnf struct {
	JKT string `json:"jkt"`
}

// newJWTAccessTokens checks every signing key against the JOSE profile, so
// that no key signs tokens a resource server of this kit would refuse: a
// kid, an asymmetric alg of the profile, a private key of the type, curve
// and size the alg requires (RSA 2048 to 4096 bits, e = 65537), and a use
// and key_ops that allow signing.
func newJWTAccessTokens(c Config) (*jwtAccessTokens, error) {
	j := &jwtAccessTokens{issuer: c.Issuer, algs: map[string]jose.Spec{}, now: c.Now}
	// Every key in the set is checked, not only the one that signs: the
	// public halves of all of them are published and trusted by Lookup.
	for i := range c.SigningKeys.Len() {
		k, _ := c.SigningKeys.Key(i)
		spec, signer, err := jose.SigningKey(k)
		if err != nil {
			return nil, fmt.Errorf("handlers: SigningKeys[%d] (kid %q): %w", i, k.KeyID(), err)
		}
		j.algs[spec.Name] = spec
		if i == 0 {
			j.kid, j.spec, j.signer = k.KeyID(), spec, signer
		}
	}
	if j.signer == nil {
		return nil, errors.New("handlers: SigningKeys is empty")
	}
	public, err := jwk.PublicSetOf(c.SigningKeys)
	if err != nil {
		return nil, fmt.Errorf("handlers: signing keys: %w", err)
	}
	j.public = public
	// Sign once now, so that a key that cannot sign fails at start-up.
	if _, err := j.sign(jwtClaims{Issuer: c.Issuer}); err != nil {
		return nil, fmt.Errorf("handlers: signing key: %w", err)
	}
	return j, nil
}

func (j *jwtAccessTokens) sign(c any) (string, error) {
	return jose.SignAccessToken(j.spec, j.kid, j.signer, c)
}

func (j *jwtAccessTokens) Issue(_ context.Context, t *store.AccessToken) (string, error) {
	c := jwtClaims{
		Issuer: j.issuer, Subject: t.Subject, Audience: t.Audience,
		Expiry: t.ExpiresAt.Unix(), IssuedAt: t.IssuedAt.Unix(), JTI: randomToken()[:22],
		ClientID: t.ClientID, Scope: t.Scope,
	}
	if t.JKT != "" {
		c.Cnf = &cnf{JKT: t.JKT}
	}
	if len(t.Claims) == 0 {
		return j.sign(c)
	}
	// The host's claims follow the kit's (RFC 9068 §2.2.3.1); CheckHostClaims
	// kept every registered name out of them.
	payload, err := json.Marshal(c)
	if err != nil {
		return "", err
	}
	return j.sign(json.RawMessage(jose.AppendMembers(payload, t.Claims)))
}

// Lookup verifies a JWT access token this server issued, as the
// middleware's JWTValidator does (the JOSE profile: compact serialization
// only, typ at+jwt, a kid naming one of the configured keys, the alg of
// that key, strict claims), then its issuer and expiry.
func (j *jwtAccessTokens) Lookup(_ context.Context, token string) (*store.AccessToken, error) {
	c, err := jose.VerifyAccessToken(token, j.algs, func(kid string, spec jose.Spec) (crypto.PublicKey, error) {
		return jose.PickKey(j.public, kid, spec)
	})
	if err != nil || c.Issuer != j.issuer || c.Expiry.IsZero() {
		return nil, store.ErrNotFound
	}
	if !j.now().Before(c.Expiry) {
		return nil, store.ErrExpired
	}
	t := &store.AccessToken{
		ClientID: c.ClientID, Subject: c.Subject, Scope: c.Scope, Audience: c.Audience,
		IssuedAt: c.IssuedAt, ExpiresAt: c.Expiry, JKT: c.JKT,
	}
	if len(c.Claims) > 0 {
		if t.Claims, err = json.Marshal(c.Claims); err != nil {
			return nil, store.ErrNotFound
		}
	}
	return t, nil
}

// JWKS returns the public signing keys, for the JWKS endpoint.
func (j *jwtAccessTokens) JWKS() jwk.Set { return j.public }
