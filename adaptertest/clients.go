package adaptertest

import (
	"strings"
	"testing"

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
		c.Scopes, c.DPoPBound, c.SecretHash = []string{"only"}, false, nil
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
		got, err := s.GetClient(bg, "demo")
		must(t, err, "GetClient")
		same(t, got, sampleClient("demo"), "client after the caller changed its copy")
		got.Scopes[0], got.GrantTypes[0] = "admin", "password"
		again, err := s.GetClient(bg, "demo")
		must(t, err, "GetClient")
		same(t, again, sampleClient("demo"), "client after a reader changed its copy")
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
}
