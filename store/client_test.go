package store_test

import (
	"context"
	"encoding/base64"
	"errors"
	"fmt"
	"strings"
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

// RFC 8707: a client's resources are validated when it is registered, by
// the one rule of ValidResource, and only a client with resources may
// introspect.
func TestClientValidateResources(t *testing.T) {
	rs := func(resources ...string) *store.Client {
		return &store.Client{ID: "rs", SecretHash: store.HashSecret("s"), GrantTypes: []string{store.GrantClientCredentials},
			Resources: resources, Introspect: true}
	}
	for _, c := range []struct {
		name     string
		client   *store.Client
		resource bool // the error is ErrInvalidResource
	}{
		{name: "relative", client: rs("/api"), resource: true},
		{name: "no scheme", client: rs("api.example/v1"), resource: true},
		{name: "scheme-relative", client: rs("//api.example/v1"), resource: true},
		{name: "fragment", client: rs("https://api.example/#f"), resource: true},
		{name: "empty fragment", client: rs("https://api.example/#"), resource: true},
		{name: "too long", client: rs("https://api.example/" + strings.Repeat("x", store.MaxResourceLen)), resource: true},
		{name: "space", client: rs("https://api.example/a b"), resource: true},
		{name: "control character", client: rs("https://api.example/\x01"), resource: true},
		{name: "newline", client: rs("https://api.example/\n"), resource: true},
		{name: "DEL", client: rs("https://api.example/\x7f"), resource: true},
		{name: "empty", client: rs(""), resource: true},
		{name: "one bad among good", client: rs("urn:example:rs", "https://api.example/", "/bad"), resource: true},
		{name: "introspect without resources", client: rs()},
		{name: "introspect with an empty list", client: rs([]string{}...)},
		{name: "introspect by a public client", client: &store.Client{ID: "rs", GrantTypes: []string{store.GrantAuthorizationCode},
			Resources: []string{"https://api.example/"}, Introspect: true}},
	} {
		err := c.client.Validate()
		if !errors.Is(err, store.ErrInvalidClientMetadata) || errors.Is(err, store.ErrInvalidResource) != c.resource {
			t.Errorf("%s: %v", c.name, err)
		}
	}
	for _, c := range []struct {
		name   string
		client *store.Client
	}{
		{"https", rs("https://api.example/v1")},
		{"urn", rs("urn:example:resource-server")},
		{"several, with query and port", rs("https://api.example:8443/v1?tenant=a&x=1", "urn:ietf:params:oauth:rs", "http://127.0.0.1:9000/")},
		{"longest", rs("https://api.example/" + strings.Repeat("x", store.MaxResourceLen-len("https://api.example/")))},
		{"resources without introspection", &store.Client{ID: "app", GrantTypes: []string{store.GrantAuthorizationCode},
			RedirectURIs: []string{"https://app.example/cb"}, Resources: []string{"https://api.example/"}}},
	} {
		if err := c.client.Validate(); err != nil {
			t.Errorf("%s: %v", c.name, err)
		}
	}
}

func TestValidResource(t *testing.T) {
	long := "https://api.example/" + strings.Repeat("x", store.MaxResourceLen-len("https://api.example/"))
	for _, r := range []string{
		"https://api.example", "https://api.example/v1", "https://api.example:8443/a/b?c=d&e=f", "http://127.0.0.1:9000/",
		"urn:example:resource-server", "urn:ietf:params:oauth:rs", "custom:opaque", long,
	} {
		if err := store.ValidResource(r); err != nil {
			t.Errorf("ValidResource(%q): %v", r, err)
		}
	}
	for _, r := range []string{
		"", "/api", "api", "api.example/v1", "//api.example/v1", "?x=1",
		"https://api.example/#f", "https://api.example/#", "#", "urn:example:rs#part",
		long + "x",
		"https://api.example/a b", " https://api.example/", "https://api.example/\t", "https://api.example/\n",
		"https://api.example/\r", "https://api.example/\x00", "https://api.example/\x1f", "https://api.example/\x7f",
		"https://api.example/%zz", "https://api.example/\xff", "https://api.example/é", "https://ápi.example/",
	} {
		err := store.ValidResource(r)
		if err == nil {
			t.Errorf("ValidResource(%q) accepted it", r)
			continue
		}
		// The error never holds the resource, which may be long or
		// unprintable.
		if r != "" && strings.Contains(err.Error(), r) {
			t.Errorf("ValidResource(%q): the error %q holds the resource", r, err)
		}
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

// Issue 14: a private_key_jwt client registers its keys (JWKS) or where it
// publishes them (JWKSURI), one kind of credential only; the key set is
// bounded and the URI is https (http only on a loopback host).
func TestClientValidateKeys(t *testing.T) {
	key := func(i int) string {
		return fmt.Sprintf(`{"kty":"EC","crv":"P-256","kid":"k%d","x":"f83OJ3D2xF1Bg8vub9tLe1gHMzV76e8Tus9uPHvRVEU","y":"x_FEzRu9m36HLN_tue659LNpXW6pCyStikYjKIWI5a0"}`, i)
	}
	set := func(n int) []byte {
		keys := make([]string, n)
		for i := range keys {
			keys[i] = key(i)
		}
		return []byte(`{"keys":[` + strings.Join(keys, ",") + `]}`)
	}
	client := func(edit func(c *store.Client)) *store.Client {
		c := &store.Client{ID: "jwt", GrantTypes: []string{store.GrantAuthorizationCode, store.GrantClientCredentials},
			RedirectURIs: []string{"https://app.example/cb"}}
		edit(c)
		return c
	}
	big := `{"keys":[` + key(0) + `],"padding":"` + strings.Repeat("x", store.MaxClientJWKSBytes) + `"}`
	for _, c := range []struct {
		name string
		edit func(c *store.Client)
	}{
		{"17 keys", func(c *store.Client) { c.JWKS = set(store.MaxClientKeys + 1) }},
		{"not JSON", func(c *store.Client) { c.JWKS = []byte(`{"keys":[`) }},
		{"a JSON array", func(c *store.Client) { c.JWKS = []byte(`[` + key(0) + `]`) }},
		{"a single JWK", func(c *store.Client) { c.JWKS = []byte(key(0)) }},
		{"no keys member", func(c *store.Client) { c.JWKS = []byte(`{"key":[` + key(0) + `]}`) }},
		{"Keys: member names are case-sensitive", func(c *store.Client) { c.JWKS = []byte(`{"Keys":[` + key(0) + `]}`) }},
		{"keys given twice", func(c *store.Client) { c.JWKS = []byte(`{"keys":[` + key(0) + `],"keys":[` + key(1) + `]}`) }},
		{"a null key", func(c *store.Client) { c.JWKS = []byte(`{"keys":[null]}`) }},
		{"jwks_uri not ASCII", func(c *store.Client) { c.JWKSURI = "https://app.example/jwks/é" }},
		{"jwks_uri with a space", func(c *store.Client) { c.JWKSURI = "https://app.example/j wks" }},
		{"empty keys", func(c *store.Client) { c.JWKS = []byte(`{"keys":[]}`) }},
		{"null keys", func(c *store.Client) { c.JWKS = []byte(`{"keys":null}`) }},
		{"keys not objects", func(c *store.Client) { c.JWKS = []byte(`{"keys":["k0"]}`) }},
		{"larger than 64 KiB", func(c *store.Client) { c.JWKS = []byte(big) }},
		{"SecretHash and JWKS", func(c *store.Client) { c.SecretHash, c.JWKS = store.HashSecret("s"), set(1) }},
		{"SecretHash and JWKSURI", func(c *store.Client) { c.SecretHash, c.JWKSURI = store.HashSecret("s"), "https://app.example/jwks" }},
		{"JWKS and JWKSURI", func(c *store.Client) { c.JWKS, c.JWKSURI = set(1), "https://app.example/jwks" }},
		{"http jwks_uri", func(c *store.Client) { c.JWKSURI = "http://app.example/jwks" }},
		{"http jwks_uri on a name that looks local", func(c *store.Client) { c.JWKSURI = "http://127.0.0.1.example.com/jwks" }},
		{"jwks_uri with userinfo", func(c *store.Client) { c.JWKSURI = "https://user:pass@app.example/jwks" }},
		{"jwks_uri with a user", func(c *store.Client) { c.JWKSURI = "https://user@app.example/jwks" }},
		{"jwks_uri with a fragment", func(c *store.Client) { c.JWKSURI = "https://app.example/jwks#keys" }},
		{"jwks_uri with an empty fragment", func(c *store.Client) { c.JWKSURI = "https://app.example/jwks#" }},
		{"relative jwks_uri", func(c *store.Client) { c.JWKSURI = "/jwks" }},
		{"scheme-relative jwks_uri", func(c *store.Client) { c.JWKSURI = "//app.example/jwks" }},
		{"jwks_uri without host", func(c *store.Client) { c.JWKSURI = "https:///jwks" }},
		{"jwks_uri of another scheme", func(c *store.Client) { c.JWKSURI = "ftp://app.example/jwks" }},
		{"jwks_uri not a URL", func(c *store.Client) { c.JWKSURI = "https://app.example/%zz" }},
	} {
		err := client(c.edit).Validate()
		if !errors.Is(err, store.ErrInvalidClientMetadata) {
			t.Errorf("%s: %v, want ErrInvalidClientMetadata", c.name, err)
		}
	}
	if n := len(big); n <= store.MaxClientJWKSBytes {
		t.Fatalf("the large JWKS has %d bytes", n)
	}
	for _, c := range []struct {
		name string
		edit func(c *store.Client)
	}{
		{"one key", func(c *store.Client) { c.JWKS = set(1) }},
		{"16 keys", func(c *store.Client) { c.JWKS = set(store.MaxClientKeys) }},
		{"unknown members kept", func(c *store.Client) { c.JWKS = []byte(`{"keys":[` + key(0) + `],"x-note":"hi"}`) }},
		{"https jwks_uri", func(c *store.Client) { c.JWKSURI = "https://app.example/.well-known/jwks.json?v=2" }},
		{"https jwks_uri with a port", func(c *store.Client) { c.JWKSURI = "https://app.example:8443/jwks" }},
		{"http jwks_uri on 127.0.0.1", func(c *store.Client) { c.JWKSURI = "http://127.0.0.1:8765/jwks" }},
		{"http jwks_uri on ::1", func(c *store.Client) { c.JWKSURI = "http://[::1]:8765/jwks" }},
		{"http jwks_uri on localhost", func(c *store.Client) { c.JWKSURI = "http://localhost/jwks" }},
	} {
		cl := client(c.edit)
		if err := cl.Validate(); err != nil {
			t.Errorf("%s: %v", c.name, err)
			continue
		}
		// A client with keys is confidential: it may use client_credentials.
		if cl.Public() || !cl.KeyAuthenticated() {
			t.Errorf("%s: Public %v, KeyAuthenticated %v; want false, true", c.name, cl.Public(), cl.KeyAuthenticated())
		}
	}
	for _, c := range []*store.Client{
		{ID: "secret", SecretHash: store.HashSecret("s")},
		{ID: "public"},
		{ID: "empty keys", JWKS: []byte{}},
	} {
		if c.KeyAuthenticated() {
			t.Errorf("%s: KeyAuthenticated", c.ID)
		}
	}
	// Clone copies the key set.
	c := client(func(c *store.Client) { c.JWKS = set(1) })
	d := c.Clone()
	d.JWKS[0] = '['
	if string(c.JWKS) != string(set(1)) {
		t.Error("Clone shares JWKS")
	}
}
