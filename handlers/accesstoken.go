package handlers

import (
	"context"
	"crypto/rand"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"time"

	"github.com/dpopkit/dpop/store"
	"github.com/lestrrat-go/jwx/v2/jwa"
	"github.com/lestrrat-go/jwx/v2/jwk"
	"github.com/lestrrat-go/jwx/v2/jws"
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

func (o opaqueAccessTokens) Issue(ctx context.Context, t *store.AccessToken) (string, error) {
	tok := randomToken()
	if err := o.store.SaveAccessToken(ctx, store.HashToken(tok), t); err != nil {
		return "", err
	}
	return tok, nil
}

func (o opaqueAccessTokens) Lookup(ctx context.Context, token string) (*store.AccessToken, error) {
	return o.store.GetAccessToken(ctx, store.HashToken(token))
}

// jwtAccessTokens are RFC 9068 JWTs signed with the first configured key.
type jwtAccessTokens struct {
	issuer   string
	audience []string
	key      jwk.Key
	alg      jwa.SignatureAlgorithm
	public   jwk.Set
	now      func() time.Time
}

// jwtClaims is the payload of a JWT access token (RFC 9068 §2.2, RFC 9449
// §6.1).
type jwtClaims struct {
	Issuer   string   `json:"iss"`
	Subject  string   `json:"sub"`
	Audience []string `json:"aud"`
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

func newJWTAccessTokens(c Config) (*jwtAccessTokens, error) {
	// Every key in the set is checked, not only the one that signs: the
	// public halves of all of them are published and trusted by Lookup.
	for i := range c.SigningKeys.Len() {
		k, _ := c.SigningKeys.Key(i)
		if err := checkSigningKey(k); err != nil {
			return nil, fmt.Errorf("handlers: SigningKeys[%d]: %w", i, err)
		}
	}
	key, ok := c.SigningKeys.Key(0)
	if !ok {
		return nil, errors.New("handlers: SigningKeys is empty")
	}
	alg := key.Algorithm().(jwa.SignatureAlgorithm)
	public, err := jwk.PublicSetOf(c.SigningKeys)
	if err != nil {
		return nil, fmt.Errorf("handlers: signing keys: %w", err)
	}
	j := &jwtAccessTokens{issuer: c.Issuer, audience: c.Audience, key: key, alg: alg, public: public, now: c.Now}
	// Sign once now, so that a key that cannot sign fails at start-up.
	if _, err := j.sign(jwtClaims{Issuer: c.Issuer}); err != nil {
		return nil, fmt.Errorf("handlers: signing key: %w", err)
	}
	return j, nil
}

func (j *jwtAccessTokens) sign(c jwtClaims) (string, error) {
	payload, err := json.Marshal(c)
	if err != nil {
		return "", err
	}
	h := jws.NewHeaders()
	h.Set(jws.TypeKey, "at+jwt")
	h.Set(jws.KeyIDKey, j.key.KeyID())
	out, err := jws.Sign(payload, jws.WithKey(j.alg, j.key, jws.WithProtectedHeaders(h)))
	return string(out), err
}

func (j *jwtAccessTokens) Issue(_ context.Context, t *store.AccessToken) (string, error) {
	c := jwtClaims{
		Issuer: j.issuer, Subject: t.Subject, Audience: j.audience,
		Expiry: t.ExpiresAt.Unix(), IssuedAt: t.IssuedAt.Unix(), JTI: randomToken()[:22],
		ClientID: t.ClientID, Scope: t.Scope,
	}
	if t.JKT != "" {
		c.Cnf = &cnf{JKT: t.JKT}
	}
	return j.sign(c)
}

// Lookup verifies a JWT access token this server issued: signature with the
// configured keys, typ at+jwt, issuer and expiry.
func (j *jwtAccessTokens) Lookup(_ context.Context, token string) (*store.AccessToken, error) {
	if len(token) > 16<<10 {
		return nil, store.ErrNotFound
	}
	msg, err := jws.Parse([]byte(token))
	if err != nil || len(msg.Signatures()) != 1 || msg.Signatures()[0].ProtectedHeaders().Type() != "at+jwt" {
		return nil, store.ErrNotFound
	}
	payload, err := jws.Verify([]byte(token), jws.WithKeySet(j.public, jws.WithRequireKid(true)))
	if err != nil {
		return nil, store.ErrNotFound
	}
	var c jwtClaims
	if err := json.Unmarshal(payload, &c); err != nil || c.Issuer != j.issuer {
		return nil, store.ErrNotFound
	}
	exp := time.Unix(c.Expiry, 0)
	if !j.now().Before(exp) {
		return nil, store.ErrExpired
	}
	t := &store.AccessToken{ClientID: c.ClientID, Subject: c.Subject, Scope: c.Scope, IssuedAt: time.Unix(c.IssuedAt, 0), ExpiresAt: exp}
	if c.Cnf != nil {
		t.JKT = c.Cnf.JKT
	}
	return t, nil
}

// checkSigningKey accepts a private asymmetric key with a kid and an
// asymmetric alg (RFC 7518 §3.1; RFC 9068 §2.1 forbids none).
func checkSigningKey(k jwk.Key) error {
	if k.KeyID() == "" {
		return errors.New("the key needs a kid")
	}
	alg, ok := k.Algorithm().(jwa.SignatureAlgorithm)
	switch {
	case !ok || alg == "" || alg == jwa.NoSignature || alg == jwa.HS256 || alg == jwa.HS384 || alg == jwa.HS512:
		return errors.New("the key needs an asymmetric alg")
	case k.KeyType() == jwa.OctetSeq:
		return errors.New("symmetric keys cannot sign access tokens")
	}
	if private, err := jwk.IsPrivateKey(k); err != nil || !private {
		return errors.New("the key must be a private key")
	}
	return nil
}

// JWKS returns the public signing keys, for the JWKS endpoint.
func (j *jwtAccessTokens) JWKS() jwk.Set { return j.public }
