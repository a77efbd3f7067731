package store_test

import (
	"context"
	"encoding/base64"
	"errors"
	"testing"
	"time"

	"github.com/dpopkit/dpop/store"
)

// Issue 12: a client is validated when it is registered.
func TestClientValidate(t *testing.T) {
	secret := store.HashSecret("s")
	valid := func() *store.Client {
		return &store.Client{ID: "c", SecretHash: secret, GrantTypes: []string{store.GrantAuthorizationCode, store.GrantClientCredentials, store.GrantRefreshToken},
			RedirectURIs: []string{"https://app.example/cb?x=1", "http://127.0.0.1:8765/cb", "com.example.app:/oauth2redirect"}, AccessTokenTTL: time.Minute}
	}
	for _, c := range []struct {
		name     string
		edit     func(c *store.Client)
		redirect bool // the error is ErrInvalidRedirectURI
	}{
		{name: "no id", edit: func(c *store.Client) { c.ID = "" }},
		{name: "password grant", edit: func(c *store.Client) { c.GrantTypes = append(c.GrantTypes, "password") }},
		{name: "empty grant", edit: func(c *store.Client) { c.GrantTypes = []string{""} }},
		{name: "grant in capitals", edit: func(c *store.Client) { c.GrantTypes = []string{"REFRESH_TOKEN"} }},
		{name: "public client_credentials", edit: func(c *store.Client) { c.SecretHash = nil }},
		{name: "empty secret client_credentials", edit: func(c *store.Client) { c.SecretHash = []byte{} }},
		{name: "hash of the empty secret", edit: func(c *store.Client) { c.SecretHash = store.HashSecret("") }},
		{name: "hash too short", edit: func(c *store.Client) { c.SecretHash = store.HashSecret("s")[:31] }},
		{name: "hash too long", edit: func(c *store.Client) { c.SecretHash = append(store.HashSecret("s"), 0) }},
		{name: "relative redirect", edit: func(c *store.Client) { c.RedirectURIs = []string{"/cb"} }, redirect: true},
		{name: "scheme-relative redirect", edit: func(c *store.Client) { c.RedirectURIs = []string{"//app.example/cb"} }, redirect: true},
		{name: "empty redirect", edit: func(c *store.Client) { c.RedirectURIs = []string{""} }, redirect: true},
		{name: "fragment", edit: func(c *store.Client) { c.RedirectURIs = []string{"https://app.example/cb#f"} }, redirect: true},
		{name: "empty fragment", edit: func(c *store.Client) { c.RedirectURIs = []string{"https://app.example/cb#"} }, redirect: true},
		{name: "https without host", edit: func(c *store.Client) { c.RedirectURIs = []string{"https:///cb"} }, redirect: true},
		{name: "HTTP without host", edit: func(c *store.Client) { c.RedirectURIs = []string{"HTTP:cb"} }, redirect: true},
		{name: "not a URI", edit: func(c *store.Client) { c.RedirectURIs = []string{"https://app.example/%zz"} }, redirect: true},
		{name: "control character", edit: func(c *store.Client) { c.RedirectURIs = []string{"https://app.example/cb\n"} }, redirect: true},
		{name: "negative access ttl", edit: func(c *store.Client) { c.AccessTokenTTL = -1 }},
		{name: "negative refresh ttl", edit: func(c *store.Client) { c.RefreshTokenTTL = -time.Hour }},
	} {
		cl := valid()
		c.edit(cl)
		err := cl.Validate()
		if !errors.Is(err, store.ErrInvalidClientMetadata) || errors.Is(err, store.ErrInvalidRedirectURI) != c.redirect {
			t.Errorf("%s: %v", c.name, err)
		}
	}
	for _, c := range []*store.Client{
		valid(),
		{ID: "bare"},
		{ID: "public", GrantTypes: []string{store.GrantAuthorizationCode, store.GrantRefreshToken}, RedirectURIs: []string{"http://[::1]:8080/cb"}},
		{ID: "confidential", SecretHash: secret, GrantTypes: []string{store.GrantClientCredentials}},
	} {
		if err := c.Validate(); err != nil {
			t.Errorf("%s: %v", c.ID, err)
		}
	}
	var none *store.Client
	if err := none.Validate(); !errors.Is(err, store.ErrInvalidClientMetadata) {
		t.Errorf("nil client: %v", err)
	}
	// The memory store refuses with Validate's error and keeps nothing.
	m, err := store.NewMemory(store.MemoryOptions{})
	if err != nil {
		t.Fatal(err)
	}
	bad := valid()
	bad.SecretHash = nil
	if err := m.SaveClient(context.Background(), bad); !errors.Is(err, store.ErrInvalidClientMetadata) {
		t.Fatalf("SaveClient: %v", err)
	}
	if _, err := m.GetClient(context.Background(), bad.ID); !errors.Is(err, store.ErrNotFound) {
		t.Fatalf("refused client saved: %v", err)
	}
}

func TestGenerateSecret(t *testing.T) {
	seen := map[string]bool{}
	for range 100 {
		secret, hash := store.GenerateSecret()
		raw, err := base64.RawURLEncoding.DecodeString(secret)
		if err != nil || len(raw) != 32 || len(secret) != 43 {
			t.Fatalf("secret %q: %d bytes, %v", secret, len(raw), err)
		}
		if seen[secret] {
			t.Fatal("secret repeated")
		}
		seen[secret] = true
		c := &store.Client{ID: "c", SecretHash: hash}
		if !c.SecretMatches(secret) || string(hash) != string(store.HashSecret(secret)) {
			t.Fatal("hash does not match the secret")
		}
	}
}

// TestSecretMatchesEmpty: an empty secret matches no client, not even one
// whose SecretHash is the hash of the empty string (which Validate refuses).
func TestSecretMatchesEmpty(t *testing.T) {
	c := &store.Client{ID: "c", SecretHash: store.HashSecret("")}
	if c.SecretMatches("") {
		t.Error("the empty secret matched")
	}
	secret, hash := store.GenerateSecret()
	c.SecretHash = hash
	if c.SecretMatches("") || !c.SecretMatches(secret) {
		t.Error("SecretMatches: wrong answers for the empty and the right secret")
	}
}
