package handlers

import (
	"context"
	"crypto/rand"
	"crypto/rsa"
	"encoding/json"
	"errors"
	"math/big"
	"net/url"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/dpopkit/dpop/store"
	"github.com/lestrrat-go/jwx/v2/jwk"
)

// atJWTServer is a server issuing JWT access tokens with keys, on a clock
// the test sets.
func atJWTServer(t *testing.T, issuer string, keys jwk.Set, clock *atomic.Pointer[time.Time]) *Server {
	t.Helper()
	m, err := store.NewMemory(store.MemoryOptions{})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { m.Close() })
	cfg := Config{Issuer: issuer, Store: m, AccessTokenFormat: FormatJWT, SigningKeys: keys}
	if clock != nil {
		cfg.Now = func() time.Time { return *clock.Load() }
	}
	srv, err := New(cfg)
	if err != nil {
		t.Fatal(err)
	}
	return srv
}

// Lookup takes a JWT access token for live until its exp and refuses it
// from that second on with store.ErrExpired, not returning its record.
func TestJWTLookupExpiry(t *testing.T) {
	var clock atomic.Pointer[time.Time]
	set := func(tm time.Time) { clock.Store(&tm) }
	start := time.Now().Truncate(time.Second)
	set(start)
	srv := atJWTServer(t, "https://as.example", keySet(esKey(t, "k1")), &clock)
	rec := &store.AccessToken{ClientID: confID, Subject: "alice", Scope: "read", JKT: "jkt-1",
		IssuedAt: start, ExpiresAt: start.Add(time.Minute)}
	tok, err := srv.AccessTokens().Issue(context.Background(), rec)
	if err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct {
		name string
		now  time.Time
		want error // nil: live
	}{
		{"just issued", start, nil},
		{"a second before exp", rec.ExpiresAt.Add(-time.Second), nil},
		{"at exp", rec.ExpiresAt, store.ErrExpired},
		{"an hour after exp", rec.ExpiresAt.Add(time.Hour), store.ErrExpired},
	} {
		t.Run(tc.name, func(t *testing.T) {
			set(tc.now)
			got, err := srv.AccessTokens().Lookup(context.Background(), tok)
			if tc.want != nil {
				if !errors.Is(err, tc.want) || got != nil {
					t.Fatalf("got %+v, %v; want %v", got, err, tc.want)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			want := store.AccessToken{ClientID: confID, Subject: "alice", Scope: "read", JKT: "jkt-1"}
			if got.ClientID != want.ClientID || got.Subject != want.Subject || got.Scope != want.Scope || got.JKT != want.JKT ||
				!got.IssuedAt.Equal(rec.IssuedAt) || !got.ExpiresAt.Equal(rec.ExpiresAt) {
				t.Errorf("record %+v, want %+v issued %v expiring %v", got, want, rec.IssuedAt, rec.ExpiresAt)
			}
		})
	}
}

// A token signed with one of the server's keys but naming another issuer
// (another server sharing the key) is not one of this server's: Lookup
// says store.ErrNotFound, and introspection that it is inactive.
func TestJWTLookupRefusesAnotherIssuer(t *testing.T) {
	keys := keySet(esKey(t, "shared"))
	h := newHarness(t, func(c *Config) { c.AccessTokenFormat, c.SigningKeys = FormatJWT, keys })
	other := atJWTServer(t, "https://other.example", keys, nil)
	rec := rvAccess(confID, rvGrant, h.signer.JKT())
	foreign, err := other.AccessTokens().Issue(context.Background(), rec)
	if err != nil {
		t.Fatal(err)
	}
	// The issuing server reads it back, so the token itself is sound.
	if _, err := other.AccessTokens().Lookup(context.Background(), foreign); err != nil {
		t.Fatalf("the issuer's own Lookup: %v", err)
	}
	if got, err := h.srv.AccessTokens().Lookup(context.Background(), foreign); !errors.Is(err, store.ErrNotFound) || got != nil {
		t.Fatalf("token of https://other.example: %+v, %v; want ErrNotFound", got, err)
	}
	ixWantInactive(t, h.ixPost(url.Values{"token": {foreign}}, rvBearerBasic))
}

// atUnsignable returns a copy of key, as JSON, with its private member
// replaced: a key whose public half is sound but that cannot sign.
func atUnsignable(t *testing.T, key jwk.Key, member, value string) jwk.Key {
	t.Helper()
	raw, err := json.Marshal(key)
	if err != nil {
		t.Fatal(err)
	}
	var m map[string]any
	if err := json.Unmarshal(raw, &m); err != nil {
		t.Fatal(err)
	}
	m[member] = value
	raw, _ = json.Marshal(m)
	k, err := jwk.ParseKey(raw)
	if err != nil {
		t.Fatal(err)
	}
	return k
}

// New signs once with the first key, so that a private key that passes
// the profile's checks (its public half is fine) but cannot sign fails at
// start-up, not at the first token request.
func TestConfigSigningKeyMustSign(t *testing.T) {
	m, err := store.NewMemory(store.MemoryOptions{})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { m.Close() })
	zero := strings.Repeat("A", 43) // 32 zero bytes
	rsaKey, err := rsa.GenerateKey(rand.Reader, 2048)
	if err != nil {
		t.Fatal(err)
	}
	// d no longer matches dp and dq.
	badD := *rsaKey
	badD.D = new(big.Int).Add(rsaKey.D, big.NewInt(2))
	for _, tc := range []struct {
		name string
		key  jwk.Key
	}{
		{"EC private scalar zero", atUnsignable(t, esKey(t, "z"), "d", zero)},
		{"RSA private exponent altered", rawKey(t, &badD, "r", "RS256")},
	} {
		t.Run(tc.name, func(t *testing.T) {
			srv, err := New(Config{Issuer: "https://as.example", Store: m, AccessTokenFormat: FormatJWT, SigningKeys: keySet(tc.key)})
			if err == nil || srv != nil {
				t.Fatalf("got %v, %v; want a refusal", srv, err)
			}
			if !strings.HasPrefix(err.Error(), "handlers: signing key: ") {
				t.Errorf("error %q does not say the signing key failed", err)
			}
		})
	}
}

// atNoPublicHalf is a private EC key (a jwk.Key of the host's own making)
// whose public half cannot be had.
type atNoPublicHalf struct{ jwk.ECDSAPrivateKey }

func (atNoPublicHalf) IsPrivate() bool { return true }

func (atNoPublicHalf) PublicKey() (jwk.Key, error) { return nil, errors.New("no public half here") }

// New refuses a signing key whose public half it cannot publish: the JWKS
// and Lookup need it.
func TestConfigSigningKeyNeedsPublicHalf(t *testing.T) {
	m, err := store.NewMemory(store.MemoryOptions{})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { m.Close() })
	key := atNoPublicHalf{esKey(t, "np").(jwk.ECDSAPrivateKey)}
	srv, err := New(Config{Issuer: "https://as.example", Store: m, AccessTokenFormat: FormatJWT, SigningKeys: keySet(key)})
	if err == nil || srv != nil {
		t.Fatalf("got %v, %v; want a refusal", srv, err)
	}
	if !strings.HasPrefix(err.Error(), "handlers: signing keys: ") || !strings.Contains(err.Error(), "no public half here") {
		t.Errorf("error %q", err)
	}
}
