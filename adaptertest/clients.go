package adaptertest

import (
	"errors"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/dpopkit/dpop/store"
)

func testClients(t *testing.T, newStore NewStore) {
	t.Run("RoundTrip", func(t *testing.T) {
		s := open(t, newStore)
		for _, id := range []string{"demo", unicodeID, strings.Repeat("long-id-", 128)} {
			c := sampleClient(id)
			must(t, s.SaveClient(bg, c), "SaveClient")
			got, err := s.GetClient(bg, id)
			must(t, err, "GetClient")
			same(t, got, sampleClient(id), "client "+id[:4])
		}
	})
	t.Run("PublicClientEmptyFields", func(t *testing.T) {
		s := open(t, newStore)
		c := &store.Client{ID: "public"}
		must(t, s.SaveClient(bg, c), "SaveClient")
		got, err := s.GetClient(bg, "public")
		must(t, err, "GetClient")
		same(t, got, c, "public client")
		if !got.Public() || got.DPoPBound {
			t.Fatalf("public client came back as %+v", got)
		}
	})
	t.Run("NotFound", func(t *testing.T) {
		s := open(t, newStore)
		must(t, s.SaveClient(bg, sampleClient("demo")), "SaveClient")
		for _, id := range []string{"nope", "Demo", "demo ", "dem", ""} {
			_, err := s.GetClient(bg, id)
			wantErr(t, err, store.ErrNotFound, "GetClient("+id+")")
		}
	})
	t.Run("Replace", func(t *testing.T) {
		s := open(t, newStore)
		must(t, s.SaveClient(bg, sampleClient("demo")), "SaveClient")
		c := sampleClient("demo")
		// Now public, so without client_credentials or the right to
		// introspect (Client.Validate), and for another resource.
		c.Scopes, c.DPoPBound, c.SecretHash = []string{"only"}, false, nil
		c.GrantTypes = []string{store.GrantAuthorizationCode}
		c.Resources, c.Introspect = []string{"https://other.example/"}, false
		must(t, s.SaveClient(bg, c), "SaveClient again")
		got, err := s.GetClient(bg, "demo")
		must(t, err, "GetClient")
		same(t, got, c, "replaced client")
	})
	t.Run("Copies", func(t *testing.T) {
		s := open(t, newStore)
		c := sampleClient("demo")
		must(t, s.SaveClient(bg, c), "SaveClient")
		c.Scopes[0], c.RedirectURIs[0], c.SecretHash[0] = "admin", "https://evil.example/", c.SecretHash[0]^1
		c.Resources[0] = "https://evil.example/"
		got, err := s.GetClient(bg, "demo")
		must(t, err, "GetClient")
		same(t, got, sampleClient("demo"), "client after the caller changed its copy")
		got.Scopes[0], got.GrantTypes[0], got.Resources[1] = "admin", "password", "https://evil.example/"
		again, err := s.GetClient(bg, "demo")
		must(t, err, "GetClient")
		same(t, again, sampleClient("demo"), "client after a reader changed its copy")
	})
	t.Run("Keys", func(t *testing.T) {
		// private_key_jwt clients: the JWK Set comes back byte for byte,
		// the jwks_uri as saved; a client may change from one credential
		// to another.
		s := open(t, newStore)
		for _, uri := range []bool{false, true} {
			c := sampleKeyClient("keys", uri)
			must(t, s.SaveClient(bg, c), "SaveClient")
			got, err := s.GetClient(bg, "keys")
			must(t, err, "GetClient")
			same(t, got, sampleKeyClient("keys", uri), "private_key_jwt client")
			if got.Public() || !got.KeyAuthenticated() {
				t.Fatalf("private_key_jwt client came back as Public %v, KeyAuthenticated %v", got.Public(), got.KeyAuthenticated())
			}
		}
		must(t, s.SaveClient(bg, sampleClient("keys")), "SaveClient of a secret in place of keys")
		got, err := s.GetClient(bg, "keys")
		must(t, err, "GetClient")
		same(t, got, sampleClient("keys"), "client whose keys were replaced by a secret")
		// Copies: neither the caller that saved the set nor a reader can
		// change the stored one.
		c := sampleKeyClient("copies", false)
		must(t, s.SaveClient(bg, c), "SaveClient")
		c.JWKS[2] = 'X'
		got, err = s.GetClient(bg, "copies")
		must(t, err, "GetClient")
		same(t, got, sampleKeyClient("copies", false), "client after the caller changed its JWK Set")
		got.JWKS[2] = 'X'
		got, err = s.GetClient(bg, "copies")
		must(t, err, "GetClient")
		same(t, got, sampleKeyClient("copies", false), "client after a reader changed its JWK Set")
	})
	t.Run("SecretMatches", func(t *testing.T) {
		s := open(t, newStore)
		must(t, s.SaveClient(bg, sampleClient("demo")), "SaveClient")
		got, err := s.GetClient(bg, "demo")
		must(t, err, "GetClient")
		if !got.SecretMatches("secret of demo") || got.SecretMatches("secret of demo ") || got.SecretMatches("") {
			t.Fatal("stored secret hash does not authenticate exactly the secret")
		}
	})
	t.Run("RefusesInvalid", func(t *testing.T) { testInvalidClients(t, newStore) })
	t.Run("AcceptsValidEdgeCases", func(t *testing.T) {
		s := open(t, newStore)
		for _, c := range validEdgeClients() {
			must(t, s.SaveClient(bg, c), "SaveClient of a valid client "+c.ID)
			got, err := s.GetClient(bg, c.ID)
			must(t, err, "GetClient "+c.ID)
			same(t, got, c, "client "+c.ID)
		}
	})
}

// invalidClients are clients Client.Validate refuses, each under the id
// and with the fault its name says.
func invalidClients() []*store.Client {
	var cs []*store.Client
	add := func(id string, edit func(c *store.Client)) {
		c := sampleClient(id)
		edit(c)
		cs = append(cs, c)
	}
	add("", func(*store.Client) {})
	for _, g := range []string{"password", "implicit", "Authorization_Code", "", "urn:ietf:params:oauth:grant-type:device_code"} {
		add("grant "+g, func(c *store.Client) { c.GrantTypes = append(c.GrantTypes, g) })
	}
	add("public with client_credentials", func(c *store.Client) { c.SecretHash = nil })
	add("public with only client_credentials", func(c *store.Client) {
		c.SecretHash, c.GrantTypes = []byte{}, []string{store.GrantClientCredentials}
	})
	for _, u := range []string{"/callback", "app.example/callback", "//app.example/callback", "", "https://app.example/cb#x",
		"https://app.example/cb#", "https:///cb", "http:cb", "https://app.example/%zz"} {
		add("redirect "+u, func(c *store.Client) { c.RedirectURIs = append(c.RedirectURIs, u) })
	}
	for _, r := range invalidResources() {
		add("resource "+r, func(c *store.Client) { c.Resources = append(c.Resources, r) })
	}
	add("introspect without resources", func(c *store.Client) { c.Resources = nil })
	add("introspect with empty resources", func(c *store.Client) { c.Resources = []string{} })
	add("public with introspect", func(c *store.Client) {
		c.SecretHash, c.GrantTypes = nil, []string{store.GrantAuthorizationCode}
	})
	add("secret and keys", func(c *store.Client) { c.JWKS = []byte(clientJWKS) })
	add("secret and jwks_uri", func(c *store.Client) { c.JWKSURI = "https://app.example/jwks" })
	add("keys and jwks_uri", func(c *store.Client) {
		c.SecretHash, c.JWKS, c.JWKSURI = nil, []byte(clientJWKS), "https://app.example/jwks"
	})
	add("keys not a JWK Set", func(c *store.Client) { c.SecretHash, c.JWKS = nil, []byte(`{"kty":"OKP"}`) })
	add("keys not JSON", func(c *store.Client) { c.SecretHash, c.JWKS = nil, []byte(`{"keys":[`) })
	add("too many keys", func(c *store.Client) { c.SecretHash, c.JWKS = nil, keySet(store.MaxClientKeys+1) })
	for _, u := range []string{"http://app.example/jwks", "https://u:p@app.example/jwks", "https://app.example/jwks#k", "/jwks"} {
		add("jwks_uri "+u, func(c *store.Client) { c.SecretHash, c.JWKSURI = nil, u })
	}
	add("negative access ttl", func(c *store.Client) { c.AccessTokenTTL = -time.Nanosecond })
	add("negative refresh ttl", func(c *store.Client) { c.RefreshTokenTTL = -time.Hour })
	return cs
}

// validEdgeClients are clients near the edges of Client.Validate that it
// accepts.
func validEdgeClients() []*store.Client {
	native := sampleClient("native app")
	native.SecretHash = nil
	native.GrantTypes = []string{store.GrantAuthorizationCode, store.GrantRefreshToken}
	native.RedirectURIs = []string{"com.example.app:/oauth2redirect", "http://[::1]:8080/cb", "https://app.example/cb?next=%2F"}
	native.AccessTokenTTL, native.RefreshTokenTTL = 0, 0
	native.Introspect = false // a resource server authenticates
	rs := &store.Client{ID: "resource server", SecretHash: store.HashSecret("rs"), Introspect: true, Resources: []string{
		"urn:example:rs", "https://api.example:8443/a/b?c=d", "http://127.0.0.1:9000/", "custom:opaque",
		"https://api.example/" + strings.Repeat("x", store.MaxResourceLen-len("https://api.example/")),
	}}
	most := sampleKeyClient("most keys", false)
	most.JWKS = keySet(store.MaxClientKeys)
	loopback := sampleKeyClient("loopback jwks_uri", true)
	loopback.JWKSURI = "http://127.0.0.1:8765/jwks"
	return []*store.Client{native, rs, {ID: "bare"}, {ID: "no grants", SecretHash: store.HashSecret("s")}, most, loopback}
}

// keySet is a JWK Set of n keys.
func keySet(n int) []byte {
	keys := make([]string, n)
	for i := range keys {
		keys[i] = fmt.Sprintf(`{"kty":"OKP","crv":"Ed25519","kid":"%d","x":"11qYAYKxCrfVS_7TyWQHOg7hcvPapiMlrwIaaPcHURo"}`, i)
	}
	return []byte(`{"keys":[` + strings.Join(keys, ",") + `]}`)
}

// invalidResources are resource indicators store.ValidResource refuses
// (RFC 8707 §2): not absolute, with a fragment (an empty one too), too long,
// with a space or a control character, empty.
func invalidResources() []string {
	return []string{"/api", "api.example/v1", "//api.example/v1", "", "https://api.example/#f", "https://api.example/#",
		"https://api.example/" + strings.Repeat("x", store.MaxResourceLen+1-len("https://api.example/")),
		"https://api.example/a b", "https://api.example/\x01", "https://api.example/\x7f", "https://api.example/\n"}
}

// testInvalidClients: SaveClient refuses every client Client.Validate
// refuses, with its error, and changes nothing: neither a new client nor
// the one registered under that id.
func testInvalidClients(t *testing.T, newStore NewStore) {
	s := open(t, newStore)
	for _, c := range invalidClients() {
		if c.Validate() == nil {
			t.Fatalf("adaptertest: client %q is valid", c.ID)
		}
		err := s.SaveClient(bg, c)
		if !errors.Is(err, store.ErrInvalidClientMetadata) {
			t.Fatalf("SaveClient of an invalid client (%s): %v, want an error wrapping store.ErrInvalidClientMetadata, as Client.Validate returns", c.ID, err)
		}
		if c.ID == "" {
			continue
		}
		_, err = s.GetClient(bg, c.ID)
		wantErr(t, err, store.ErrNotFound, "GetClient of a refused client ("+c.ID+")")
	}
	// A registered client stays as it was when a replacement is refused.
	must(t, s.SaveClient(bg, sampleClient("demo")), "SaveClient")
	for _, c := range invalidClients() {
		if c.ID == "" {
			continue // its only fault was the id
		}
		fault := c.ID
		c.ID = "demo"
		if err := s.SaveClient(bg, c); !errors.Is(err, store.ErrInvalidClientMetadata) {
			t.Fatalf("SaveClient of an invalid replacement (%s): %v, want an error wrapping store.ErrInvalidClientMetadata", fault, err)
		}
	}
	got, err := s.GetClient(bg, "demo")
	must(t, err, "GetClient")
	same(t, got, sampleClient("demo"), "client after refused replacements")
}
