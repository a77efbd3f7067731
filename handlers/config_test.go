package handlers

import (
	"crypto/ecdsa"
	"crypto/ed25519"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/rsa"
	"strings"
	"testing"
	"time"

	"github.com/dpopkit/dpop/store"
	"github.com/lestrrat-go/jwx/v2/jwa"
	"github.com/lestrrat-go/jwx/v2/jwk"
)

// esKey is an ES256 private jwk with kid and alg.
func esKey(t *testing.T, kid string) jwk.Key {
	t.Helper()
	priv, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	return rawKey(t, priv, kid, "ES256")
}

func keySet(keys ...jwk.Key) jwk.Set {
	s := jwk.NewSet()
	for _, k := range keys {
		s.AddKey(k)
	}
	return s
}

func TestConfigRefused(t *testing.T) {
	m, err := store.NewMemory(store.MemoryOptions{})
	if err != nil {
		t.Fatal(err)
	}
	good := esKey(t, "k1")
	hmacKey, _ := jwk.FromRaw([]byte("0123456789abcdef0123456789abcdef"))
	hmacKey.Set(jwk.KeyIDKey, "h")
	hmacKey.Set(jwk.AlgorithmKey, jwa.HS256)
	noKid := esKey(t, "")
	public, _ := jwk.PublicKeyOf(esKey(t, "pub"))
	noAlg := esKey(t, "na")
	noAlg.Remove(jwk.AlgorithmKey)
	jwtWith := func(keys ...jwk.Key) Config {
		return Config{Issuer: "https://as.example", Store: m, AccessTokenFormat: FormatJWT, SigningKeys: keySet(keys...)}
	}
	for name, c := range map[string]Config{
		"no issuer":                   {Store: m},
		"relative issuer":             {Issuer: "/as", Store: m},
		"issuer with query":           {Issuer: "https://as.example/?x=1", Store: m},
		"plain http, not loopback":    {Issuer: "http://as.example", Store: m},
		"http, loopback-looking host": {Issuer: "http://127.evil.example", Store: m},
		"http, userinfo trick":        {Issuer: "http://localhost:1@evil.example", Store: m},
		"no store":                    {Issuer: "https://as.example"},
		"code TTL above 10 minutes":   {Issuer: "https://as.example", Store: m, CodeTTL: 11 * time.Minute},
		"sub-second token TTL":        {Issuer: "https://as.example", Store: m, AccessTokenTTL: time.Millisecond},
		"unknown format":              {Issuer: "https://as.example", Store: m, AccessTokenFormat: "paseto"},
		"jwt without keys":            {Issuer: "https://as.example", Store: m, AccessTokenFormat: FormatJWT},
		"HMAC key after a good one":   jwtWith(good, hmacKey),
		"key without kid":             jwtWith(noKid),
		"key without alg":             jwtWith(noAlg),
		"public key only":             jwtWith(public),
		"path without slash":          {Issuer: "https://as.example", Store: m, Paths: Paths{Token: "token"}},
		"negative body limit":         {Issuer: "https://as.example", Store: m, MaxBodyBytes: -1},
	} {
		if _, err := New(c); err == nil {
			t.Errorf("%s: accepted", name)
		}
	}
	for name, c := range map[string]Config{
		"loopback http":    {Issuer: "http://127.0.0.1:8080", Store: m},
		"localhost http":   {Issuer: "http://localhost:8080/", Store: m},
		"jwt with a key":   jwtWith(good),
		"jwt, two keys":    jwtWith(good, esKey(t, "k2")),
		"issuer with path": {Issuer: "https://as.example/tenant", Store: m},
	} {
		if _, err := New(c); err != nil {
			t.Errorf("%s: %v", name, err)
		}
	}
}

// rawKey is a private JWK of raw with kid and alg (any string, even one
// jwx does not know).
func rawKey(t *testing.T, raw any, kid, alg string) jwk.Key {
	t.Helper()
	k, err := jwk.FromRaw(raw)
	if err != nil {
		t.Fatal(err)
	}
	if kid != "" {
		if err := k.Set(jwk.KeyIDKey, kid); err != nil {
			t.Fatal(err)
		}
	}
	if err := k.Set(jwk.AlgorithmKey, alg); err != nil {
		t.Fatal(err)
	}
	return k
}

// New refuses every signing key whose tokens a resource server of the kit
// would refuse (the one JOSE profile), and says which key and why.
func TestConfigSigningKeysFollowTheProfile(t *testing.T) {
	m, err := store.NewMemory(store.MemoryOptions{})
	if err != nil {
		t.Fatal(err)
	}
	p256, _ := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	p384, _ := ecdsa.GenerateKey(elliptic.P384(), rand.Reader)
	rsa1024, _ := rsa.GenerateKey(rand.Reader, 1024)
	rsa2048, _ := rsa.GenerateKey(rand.Reader, 2048)
	_, ed, _ := ed25519.GenerateKey(rand.Reader)
	encUse := rawKey(t, p256, "enc", "ES256")
	encUse.Set(jwk.KeyUsageKey, "enc")
	verifyOnly := rawKey(t, p256, "vo", "ES256")
	verifyOnly.Set(jwk.KeyOpsKey, jwk.KeyOperationList{jwk.KeyOpVerify})
	for _, tc := range []struct {
		name string
		key  jwk.Key
		want []string // in the error; nil: accepted
	}{
		{"RSA-1024 RS256", rawKey(t, rsa1024, "r1", "RS256"), []string{`SigningKeys[0] (kid "r1")`, "RS256", "RSA modulus", "1024 bits"}},
		{"HS256", rawKey(t, []byte("0123456789abcdef0123456789abcdef"), "h", "HS256"), []string{`alg "HS256" is not allowed`}},
		{"unknown alg", rawKey(t, p256, "x", "XS999"), []string{`alg "XS999" is not allowed`}},
		{"alg none", rawKey(t, p256, "n", "none"), []string{`alg "none" is not allowed`}},
		{"P-256 key with ES384", rawKey(t, p256, "c", "ES384"), []string{"ES384", "curve", "P-256"}},
		{"EC key with RS256", rawKey(t, p256, "t", "RS256"), []string{"RS256", "key type"}},
		{"RSA key with EdDSA", rawKey(t, rsa2048, "t2", "EdDSA"), []string{"EdDSA", "key type"}},
		{"use enc", encUse, []string{"use"}},
		{"key_ops without sign", verifyOnly, []string{"key_ops"}},
		{"ES256", rawKey(t, p256, "ok1", "ES256"), nil},
		{"ES384", rawKey(t, p384, "ok2", "ES384"), nil},
		{"PS256 RSA-2048", rawKey(t, rsa2048, "ok3", "PS256"), nil},
		{"RS256 RSA-2048", rawKey(t, rsa2048, "ok4", "RS256"), nil},
		{"EdDSA", rawKey(t, ed, "ok5", "EdDSA"), nil},
		{"Ed25519 (RFC 9864)", rawKey(t, ed, "ok6", "Ed25519"), nil},
	} {
		t.Run(tc.name, func(t *testing.T) {
			_, err := New(Config{Issuer: "https://as.example", Store: m, AccessTokenFormat: FormatJWT, SigningKeys: keySet(tc.key)})
			if tc.want == nil {
				if err != nil {
					t.Fatalf("refused: %v", err)
				}
				return
			}
			if err == nil {
				t.Fatal("accepted")
			}
			for _, w := range tc.want {
				if !strings.Contains(err.Error(), w) {
					t.Errorf("error %q does not name %q", err, w)
				}
			}
		})
	}
}
