package redisstore

import (
	"bytes"
	"context"
	"crypto/rand"
	"encoding/hex"
	"encoding/json"
	"os"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/dpopkit/dpop/store"
	"github.com/redis/go-redis/v9"
)

// Records as the first version of the store wrote them, before the members
// resources, introspect, aud and claims: several versions of a service may
// share one Redis during an upgrade, so the new version must read them.
const (
	v1Client = `{"id":"c","secret_hash":"AAECAwQFBgcICQoLDA0ODxAREhMUFRYXGBkaGxwdHh8=","grant_types":["authorization_code"],` +
		`"redirect_uris":["https://app.example/cb"],"scopes":["read"],"dpop_bound":true,"access_token_ttl_ns":60000000000}`
	v1Code = `{"grant_id":"g","client_id":"c","redirect_uri":"https://app.example/cb","scope":"read","sub":"alice",` +
		`"code_challenge":"ch","code_challenge_method":"S256","dpop_jkt":"jkt","exp":"2030-01-02T03:04:05.123456789Z"}`
	v1Token = `{"grant_id":"g","client_id":"c","sub":"alice","scope":"read","jkt":"jkt",` +
		`"iat":"2030-01-02T02:04:05.5Z","exp":"2030-01-02T03:04:05.123456789Z"}`
)

// TestDecodeV1Records: records without the members added since the first
// version decode, with those fields empty and the others as they were.
func TestDecodeV1Records(t *testing.T) {
	exp := time.Date(2030, 1, 2, 3, 4, 5, 123456789, time.UTC)
	c, err := decodeClient([]byte(v1Client))
	if err != nil {
		t.Fatal(err)
	}
	if c.Resources != nil || c.Introspect || c.ID != "c" || len(c.SecretHash) != 32 || !c.DPoPBound ||
		!slices.Equal(c.Scopes, []string{"read"}) || c.AccessTokenTTL != time.Minute {
		t.Errorf("first-version client decoded as %+v", c)
	}
	code, err := decodeCode(v1Code)
	if err != nil {
		t.Fatal(err)
	}
	if code.Resources != nil || code.GrantID != "g" || code.DPoPJKT != "jkt" || !code.ExpiresAt.Equal(exp) {
		t.Errorf("first-version code decoded as %+v", code)
	}
	for _, kind := range []string{"access token", "refresh token"} {
		tok, err := decodeToken(v1Token, kind)
		if err != nil {
			t.Fatal(err)
		}
		if tok.Audience != nil || tok.Claims != nil || tok.Subject != "alice" || tok.JKT != "jkt" || !tok.ExpiresAt.Equal(exp) {
			t.Errorf("first-version %s decoded as %+v", kind, tok)
		}
	}
}

// TestRecordMembers: the new fields are stored under their names (part of
// the data format), left out when empty, so that a record without them is
// encoded as the first version encoded it, and a token's claims are kept
// byte for byte, whatever the bytes.
func TestRecordMembers(t *testing.T) {
	members := func(data []byte) map[string]json.RawMessage {
		t.Helper()
		var m map[string]json.RawMessage
		if err := json.Unmarshal(data, &m); err != nil {
			t.Fatal(err)
		}
		return m
	}
	has := func(data []byte, want ...string) {
		t.Helper()
		m := members(data)
		for _, name := range []string{"resources", "introspect", "aud", "claims", "jwks", "jwks_uri"} {
			if _, ok := m[name]; ok != slices.Contains(want, name) {
				t.Errorf("%s: member %q present: %v", data, name, ok)
			}
		}
	}
	exp := time.Date(2030, 1, 2, 3, 4, 5, 123456789, time.UTC)

	c := &store.Client{ID: "c", SecretHash: store.HashSecret("s"), Resources: []string{"urn:example:rs", "https://api.example/"}, Introspect: true}
	data, err := encodeClient(c)
	if err != nil {
		t.Fatal(err)
	}
	has(data, "resources", "introspect")
	got, err := decodeClient(data)
	if err != nil || !slices.Equal(got.Resources, c.Resources) || !got.Introspect {
		t.Errorf("client decoded as %+v, %v", got, err)
	}
	data, err = encodeClient(&store.Client{ID: "c"})
	if err != nil {
		t.Fatal(err)
	}
	has(data)
	// A client's JWK Set is kept as the bytes given (order, spacing,
	// escapes), never parsed; its jwks_uri as the string.
	jwks := []byte(`{"keys":[ {"kty":"OKP","crv":"Ed25519","x":"11qYAYKxCrfVS_7TyWQHOg7hcvPapiMlrwIaaPcHURo"} ],"z":"\u00e9"}`)
	for _, c := range []*store.Client{{ID: "k", JWKS: jwks}, {ID: "u", JWKSURI: "https://app.example/jwks?v=1"}} {
		data, err := encodeClient(c)
		if err != nil {
			t.Fatal(err)
		}
		if c.JWKS != nil {
			has(data, "jwks")
		} else {
			has(data, "jwks_uri")
		}
		got, err := decodeClient(data)
		if err != nil || !bytes.Equal(got.JWKS, c.JWKS) || got.JWKSURI != c.JWKSURI {
			t.Errorf("client %s decoded as %+v, %v", c.ID, got, err)
		}
	}
	par := &store.PushedRequest{ClientID: "c", Params: "a=b&c=%20", DPoPJKT: "jkt", ExpiresAt: exp}
	data, err = encodePushed(par)
	if err != nil {
		t.Fatal(err)
	}
	if m := members(data); len(m) != 4 || string(m["params"]) != `"a=b\u0026c=%20"` {
		t.Errorf("pushed request encoded as %s", data)
	}
	gotPar, err := decodePushed(string(data))
	if err != nil || *gotPar != *par {
		t.Errorf("pushed request decoded as %+v, %v", gotPar, err)
	}

	code := &store.AuthorizationCode{GrantID: "g", Resources: []string{"urn:example:rs"}, ExpiresAt: exp}
	data, err = encodeCode(code)
	if err != nil {
		t.Fatal(err)
	}
	has(data, "resources")
	gotCode, err := decodeCode(string(data))
	if err != nil || !slices.Equal(gotCode.Resources, code.Resources) {
		t.Errorf("code decoded as %+v, %v", gotCode, err)
	}
	code.Resources = []string{}
	if data, err = encodeCode(code); err != nil {
		t.Fatal(err)
	}
	has(data)

	// Claims are the host's bytes: JSON normally, but the store neither
	// checks nor rewrites them (order, spacing, escapes, even invalid
	// UTF-8 or NUL come back as they were).
	for _, claims := range [][]byte{
		[]byte(`{"z":1, "a":"\u00e9","n":1.50}`),
		[]byte("{\"bin\":\"\x00\xff\"}"),
		[]byte(strings.Repeat("x", 1000)),
	} {
		tok := store.AccessToken{GrantID: "g", Audience: []string{"urn:example:rs"}, Claims: claims, ExpiresAt: exp}
		data, err := encodeToken(tok)
		if err != nil {
			t.Fatal(err)
		}
		has(data, "aud", "claims")
		got, err := decodeToken(string(data), "access token")
		if err != nil || !bytes.Equal(got.Claims, claims) || !slices.Equal(got.Audience, tok.Audience) {
			t.Errorf("token with claims %q decoded as %+v, %v", claims, got, err)
		}
	}
	data, err = encodeToken(store.AccessToken{GrantID: "g", Audience: []string{}, Claims: []byte{}, ExpiresAt: exp})
	if err != nil {
		t.Fatal(err)
	}
	has(data)
}

// TestV1RecordsInRedis writes records as the first version stored them, in
// its framing and under its keys, and reads and uses them through the
// store: lookups, a redemption and a rotation into a record with the new
// fields.
func TestV1RecordsInRedis(t *testing.T) {
	u := os.Getenv("DPOPKIT_REDIS_URL")
	if u == "" {
		t.Skip("DPOPKIT_REDIS_URL is not set")
	}
	opts, err := redis.ParseURL(u)
	if err != nil {
		t.Fatal(err)
	}
	ctx := context.Background()
	c := redis.NewClient(opts)
	t.Cleanup(func() { c.Close() })
	var b [8]byte
	rand.Read(b[:])
	prefix := "dpoptest:" + hex.EncodeToString(b[:]) + ":"
	s, err := New(Options{Client: c, Prefix: prefix})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		s.Close()
		keys, _ := c.Keys(ctx, prefix+"*").Result() // a fresh prefix: few keys
		if len(keys) > 0 {
			c.Del(ctx, keys...)
		}
	})

	exp := time.Now().Add(time.Hour).Truncate(time.Millisecond).UTC()
	at := exp.Format(time.RFC3339Nano)
	code, access, refresh := store.HashToken("code"), store.HashToken("access"), store.HashToken("refresh")
	oldCode := strings.Replace(v1Code, "2030-01-02T03:04:05.123456789Z", at, 1)
	oldToken := strings.Replace(v1Token, "2030-01-02T03:04:05.123456789Z", at, 1)
	for key, value := range map[string]string{
		s.clientKey("c"):      v1Client,
		s.codeKey(code):       frame(exp.UnixMilli(), "", []byte(oldCode)),
		s.accessKey(access):   frame(exp.UnixMilli(), "g", []byte(oldToken)),
		s.refreshKey(refresh): frame(exp.UnixMilli(), "g", []byte(oldToken)),
	} {
		if err := c.Set(ctx, key, value, time.Hour).Err(); err != nil {
			t.Fatal(err)
		}
	}

	cl, err := s.GetClient(ctx, "c")
	if err != nil || len(cl.Resources) != 0 || cl.Introspect || !cl.DPoPBound {
		t.Errorf("first-version client read as %+v, %v", cl, err)
	}
	cd, err := s.ConsumeCode(ctx, code)
	if err != nil || len(cd.Resources) != 0 || cd.GrantID != "g" || !cd.ExpiresAt.Equal(exp) {
		t.Errorf("first-version code consumed as %+v, %v", cd, err)
	}
	tok, err := s.GetAccessToken(ctx, access)
	if err != nil || len(tok.Audience) != 0 || tok.Claims != nil || tok.Subject != "alice" {
		t.Errorf("first-version access token read as %+v, %v", tok, err)
	}
	next := store.HashToken("next")
	nextRec := &store.RefreshToken{GrantID: "g", ClientID: "c", Audience: []string{"urn:example:rs"}, Claims: []byte(`{"k":"v"}`), ExpiresAt: exp}
	prev, err := s.RotateRefreshToken(ctx, refresh, next, nextRec)
	if err != nil || len(prev.Audience) != 0 || prev.Claims != nil || prev.GrantID != "g" {
		t.Errorf("rotation of a first-version refresh token returned %+v, %v", prev, err)
	}
	rt, err := s.GetRefreshToken(ctx, next)
	if err != nil || !slices.Equal(rt.Audience, nextRec.Audience) || !bytes.Equal(rt.Claims, nextRec.Claims) {
		t.Errorf("rotated token read as %+v, %v", rt, err)
	}
}
