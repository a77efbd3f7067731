package handlers

import (
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
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
	k, err := jwk.FromRaw(priv)
	if err != nil {
		t.Fatal(err)
	}
	k.Set(jwk.KeyIDKey, kid)
	k.Set(jwk.AlgorithmKey, jwa.ES256)
	return k
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
