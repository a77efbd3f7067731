package handlers

import (
	"context"
	"encoding/json"
	"math"
	"net/http"
	"strings"
	"testing"

	"github.com/dpopkit/dpop/store"
	"github.com/lestrrat-go/jwx/v2/jwk"
)

// jwLeakyKey is a private EC key (a jwk.Key of the host's own making) whose
// PublicKey wrongly returns the private key itself.
type jwLeakyKey struct{ jwk.ECDSAPrivateKey }

func (jwLeakyKey) IsPrivate() bool { return true }

func (k jwLeakyKey) PublicKey() (jwk.Key, error) { return k.ECDSAPrivateKey, nil }

// The JWKS publishes public halves only, even of a signing key whose
// PublicKey hands back the private key: the handler takes the public half
// of whatever private key reaches it.
func TestJWKSNeverPublishesPrivateMembers(t *testing.T) {
	key := jwLeakyKey{esKey(t, "leaky").(jwk.ECDSAPrivateKey)}
	h := newHarness(t, func(c *Config) { c.AccessTokenFormat, c.SigningKeys = FormatJWT, keySet(key) })
	r := h.mdRequest(http.MethodGet, DefaultPaths.JWKS)
	if r.status != http.StatusOK || r.header.Get("Content-Type") != "application/jwk-set+json" {
		t.Fatalf("got %d %q %s", r.status, r.header.Get("Content-Type"), r.raw)
	}
	var doc struct {
		Keys []map[string]any `json:"keys"`
	}
	if err := json.Unmarshal([]byte(r.raw), &doc); err != nil {
		t.Fatalf("%v: %s", err, r.raw)
	}
	if len(doc.Keys) != 1 || doc.Keys[0]["kid"] != "leaky" || doc.Keys[0]["kty"] != "EC" || doc.Keys[0]["x"] == nil {
		t.Fatalf("keys %v, want the one public EC key", doc.Keys)
	}
	for _, m := range jwkPrivateMembers {
		if _, ok := doc.Keys[0][m]; ok {
			t.Errorf("private member %q published", m)
		}
	}
	// The server still reads back what it signs.
	tok, err := h.srv.AccessTokens().Issue(context.Background(), rvAccess(confID, rvGrant, ""))
	if err != nil {
		t.Fatal(err)
	}
	if _, err := h.srv.AccessTokens().Lookup(context.Background(), tok); err != nil {
		t.Errorf("Lookup: %v", err)
	}
}

// A key set that cannot be written as JSON (here a key with a NaN member) is
// refused by New, rather than served as an error by the JWKS endpoint.
func TestJWKSUnpublishableKeysRefused(t *testing.T) {
	key := esKey(t, "nan")
	if err := key.Set("x-weight", math.NaN()); err != nil {
		t.Fatal(err)
	}
	m, err := store.NewMemory(store.MemoryOptions{})
	if err != nil {
		t.Fatal(err)
	}
	_, err = New(Config{Issuer: "https://as.example", Store: m, AccessTokenFormat: FormatJWT, SigningKeys: keySet(key)})
	if err == nil || !strings.Contains(err.Error(), "cannot be published as a JWK Set") {
		t.Fatalf("New = %v, want a refusal of the key set", err)
	}
}
