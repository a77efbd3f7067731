package jose

import (
	"crypto"
	"crypto/ecdsa"
	"crypto/ed25519"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/rsa"
	"errors"
	"math/big"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/lestrrat-go/jwx/v2/jwk"
)

// testKeys are generated once: RSA generation is slow.
var testKeys = sync.OnceValue(func() map[string]crypto.Signer {
	p256, _ := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	p384, _ := ecdsa.GenerateKey(elliptic.P384(), rand.Reader)
	p521, _ := ecdsa.GenerateKey(elliptic.P521(), rand.Reader)
	r2048, _ := rsa.GenerateKey(rand.Reader, 2048)
	_, ed, _ := ed25519.GenerateKey(rand.Reader)
	return map[string]crypto.Signer{"P-256": p256, "P-384": p384, "P-521": p521, "RSA": r2048, "Ed25519": ed}
})

// keyFor is the test key each algorithm signs with.
func keyFor(alg string) crypto.Signer {
	k := testKeys()
	switch alg {
	case "ES256":
		return k["P-256"]
	case "ES384":
		return k["P-384"]
	case "ES512":
		return k["P-521"]
	case "EdDSA", "Ed25519":
		return k["Ed25519"]
	}
	return k["RSA"]
}

func mustLookup(t testing.TB, alg string) Spec {
	t.Helper()
	s, ok := Lookup(alg)
	if !ok {
		t.Fatalf("%s not in the profile", alg)
	}
	return s
}

func TestAllowList(t *testing.T) {
	for _, alg := range []string{"none", "HS256", "HS384", "HS512", "es256", "ES256K", "RSA-OAEP", ""} {
		if _, ok := Lookup(alg); ok {
			t.Errorf("%q is in the profile", alg)
		}
		if _, err := AllowList("test", []string{"ES256", alg}); err == nil {
			t.Errorf("AllowList took %q", alg)
		}
	}
	all, err := AllowList("test", nil)
	if err != nil || len(all) != len(Names()) {
		t.Fatalf("empty list = %d algorithms, %v; want all %d", len(all), err, len(Names()))
	}
	for name, s := range all {
		if s.Name != name {
			t.Errorf("spec of %s named %q", name, s.Name)
		}
	}
	n := Names()
	n[0] = "HS256"
	if Names()[0] != "ES256" {
		t.Error("Names shares its slice")
	}
}

func TestCheckPublicKey(t *testing.T) {
	k := testKeys()
	rsaPub := k["RSA"].Public().(*rsa.PublicKey)
	bits := func(n int) *big.Int { return new(big.Int).SetBit(new(big.Int).SetBit(new(big.Int), n-1, 1), 0, 1) }
	ed := k["Ed25519"].Public().(ed25519.PublicKey)
	tests := []struct {
		name string
		alg  string
		pub  crypto.PublicKey
		want error
	}{
		{"P-256 for ES256", "ES256", k["P-256"].Public(), nil},
		{"P-384 for ES384", "ES384", k["P-384"].Public(), nil},
		{"P-521 for ES512", "ES512", k["P-521"].Public(), nil},
		{"P-384 for ES256", "ES256", k["P-384"].Public(), ErrCurve},
		{"P-256 for ES512", "ES512", k["P-256"].Public(), ErrCurve},
		{"point off the curve", "ES256", &ecdsa.PublicKey{Curve: elliptic.P256(), X: big.NewInt(1), Y: big.NewInt(1)}, ErrKeyInvalid},
		{"P-256 for RS256", "RS256", k["P-256"].Public(), ErrKeyType},
		{"RSA 2048 for PS384", "PS384", rsaPub, nil},
		{"RSA for ES256", "ES256", rsaPub, ErrKeyType},
		{"RSA 2047 bits", "RS256", &rsa.PublicKey{N: bits(2047), E: RSAExponent}, ErrRSASize},
		{"RSA 1024 bits", "RS256", &rsa.PublicKey{N: bits(1024), E: RSAExponent}, ErrRSASize},
		{"RSA 4096 bits", "RS256", &rsa.PublicKey{N: bits(4096), E: RSAExponent}, nil},
		{"RSA 4097 bits", "RS256", &rsa.PublicKey{N: bits(4097), E: RSAExponent}, ErrRSASize},
		{"RSA without modulus", "RS256", &rsa.PublicKey{E: RSAExponent}, ErrRSASize},
		{"RSA e=3", "RS256", &rsa.PublicKey{N: rsaPub.N, E: 3}, ErrRSAExponent},
		{"RSA even e", "RS256", &rsa.PublicKey{N: rsaPub.N, E: 65536}, ErrRSAExponent},
		{"Ed25519 for EdDSA", "EdDSA", ed, nil},
		{"Ed25519 for Ed25519", "Ed25519", ed, nil},
		{"Ed25519 short", "EdDSA", ed[:31], ErrKeyInvalid},
		{"Ed25519 for ES256", "ES256", ed, ErrKeyType},
		{"a private key", "ES256", k["P-256"], ErrKeyType},
		{"a secret", "ES256", []byte("secret"), ErrKeyType},
		{"nil", "ES256", nil, ErrKeyType},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			if err := CheckPublicKey(mustLookup(t, tc.alg), tc.pub); err != tc.want {
				t.Errorf("CheckPublicKey = %v, want %v", err, tc.want)
			}
		})
	}
}

func TestSignVerify(t *testing.T) {
	const input = "eyJhbGciOiJFUzI1NiJ9.eyJzdWIiOiJhIn0"
	for _, alg := range Names() {
		t.Run(alg, func(t *testing.T) {
			spec, key := mustLookup(t, alg), keyFor(alg)
			sig, err := Sign(spec, key, input)
			if err != nil {
				t.Fatal(err)
			}
			if !Verify(spec, key.Public(), input, sig) {
				t.Fatal("own signature does not verify")
			}
			if Verify(spec, key.Public(), input+"x", sig) {
				t.Error("signature verifies another input")
			}
			if Verify(spec, key.Public(), input, sig[:len(sig)-1]) {
				t.Error("short signature verifies")
			}
			if Verify(spec, key.Public(), input, append(slices.Clone(sig), 0)) {
				t.Error("long signature verifies")
			}
		})
	}
	// A key of another type or curve than the spec never verifies (and
	// never panics), whatever the caller checked.
	sig, _ := Sign(mustLookup(t, "ES256"), keyFor("ES256"), input)
	for _, alg := range []string{"ES384", "RS256", "EdDSA"} {
		if Verify(mustLookup(t, alg), keyFor("ES256").Public(), input, sig) {
			t.Errorf("an ES256 signature verifies as %s", alg)
		}
	}
	if Verify(Spec{}, keyFor("ES256").Public(), input, sig) {
		t.Error("verifies with no spec")
	}
	if _, err := Sign(Spec{Name: "HS256"}, keyFor("ES256"), input); err == nil {
		t.Error("signs outside the profile")
	}
}

// ECDSA signatures are the fixed r||s of RFC 7518 §3.4: a zero r or s, or
// DER, never verifies.
func TestVerifyECDSAForms(t *testing.T) {
	const input = "a.b"
	spec, key := mustLookup(t, "ES256"), keyFor("ES256")
	sig, err := Sign(spec, key, input)
	if err != nil {
		t.Fatal(err)
	}
	zeroR := slices.Clone(sig)
	clear(zeroR[:32])
	zeroS := slices.Clone(sig)
	clear(zeroS[32:])
	der, err := key.Sign(rand.Reader, Digest(spec.Hash, input), spec.Hash)
	if err != nil {
		t.Fatal(err)
	}
	for name, s := range map[string][]byte{"r zero": zeroR, "s zero": zeroS, "both zero": make([]byte, 64), "DER": der} {
		if Verify(spec, key.Public(), input, s) {
			t.Errorf("%s verifies", name)
		}
	}
}

func TestSplit(t *testing.T) {
	for _, tc := range []struct {
		in      string
		h, p, s string
	}{
		{"a.b.c", "a", "b", "c"},
		{"eyJ-_0.AA.9_-z", "eyJ-_0", "AA", "9_-z"},
	} {
		h, p, s, ok := Split(tc.in)
		if !ok || h != tc.h || p != tc.p || s != tc.s {
			t.Errorf("Split(%q) = %q %q %q %v", tc.in, h, p, s, ok)
		}
	}
	for _, in := range []string{
		"", ".", "..", "a.b", "a.b.c.d", ".b.c", "a..c", "a.b.",
		"a.b.c=", "a=.b.c", " a.b.c", "a.b.c ", "a\n.b.c", "a.b\r.c", "a.b.c\t",
		"a+.b.c", "a/.b.c", "a.b.é", "a\x00.b.c",
		`{"payload":"b","protected":"a","signature":"c"}`,
	} {
		if _, _, _, ok := Split(in); ok {
			t.Errorf("Split(%q) accepted", in)
		}
	}
}

func TestParseHeader(t *testing.T) {
	enc := func(s string) string { return B64.EncodeToString([]byte(s)) }
	h, err := ParseHeader(enc(`{"typ":"at+jwt","alg":"ES256","kid":"k\u0031","jwk":{"kty":"EC"},"x5u":1}`))
	if err != nil || h.Typ != "at+jwt" || h.Alg != "ES256" || h.Kid != "k1" || string(h.JWK) != `{"kty":"EC"}` {
		t.Fatalf("ParseHeader = %+v, %v", h, err)
	}
	h, err = ParseHeader(enc(`{"typ":["at+jwt"],"alg":1,"kid":null}`))
	if err != nil || h.Typ != "" || h.Alg != "" || h.Kid != "" {
		t.Errorf("mistyped members = %+v, %v; want them empty", h, err)
	}
	var dup *MemberError
	for _, tc := range []struct {
		name, seg string
		want      func(error) bool
	}{
		{"duplicate alg", enc(`{"alg":"HS256","alg":"ES256"}`), func(err error) bool { return errors.As(err, &dup) && dup.Name == "alg" }},
		{"duplicate alg, escaped", enc(`{"alg":"ES256","\u0061lg":"none"}`), func(err error) bool { return errors.As(err, &dup) }},
		{"duplicate typ", enc(`{"typ":"a","typ":"b"}`), func(err error) bool { return errors.As(err, &dup) }},
		{"duplicate kid", enc(`{"kid":"a","kid":"b"}`), func(err error) bool { return errors.As(err, &dup) }},
		{"duplicate jwk", enc(`{"jwk":{},"jwk":{}}`), func(err error) bool { return errors.As(err, &dup) }},
		{"crit", enc(`{"alg":"ES256","crit":["exp"]}`), func(err error) bool { return err == ErrCrit }},
		{"b64", enc(`{"alg":"ES256","b64":false}`), func(err error) bool { return err == ErrB64 }},
		{"not base64url", "eyJ!", func(err error) bool { return err == ErrHeaderBase64 }},
		{"trailing bits set", enc(`{}`)[:2] + "1", func(err error) bool { return err == ErrHeaderBase64 }},
		{"padded", enc(`{}`) + "=", func(err error) bool { return err == ErrHeaderBase64 }},
		{"an array", enc(`[]`), func(err error) bool { return err == ErrNotObject }},
		{"two objects", enc(`{}{}`), func(err error) bool { return err == ErrNotObject }},
	} {
		if _, err := ParseHeader(tc.seg); !tc.want(err) {
			t.Errorf("%s: %v", tc.name, err)
		}
	}
}

func TestNumericDate(t *testing.T) {
	for raw, want := range map[string]bool{
		`0`: true, `1800000000`: true, `1800000000.5`: true, `253402300799`: true,
		`253402300799.5`: false, `253402300800`: false, `1e12`: false, `-1`: false, `-0.5`: false,
		`1e400`: false, `"1800000000"`: false, `null`: false, `true`: false, ``: false,
	} {
		if _, ok := NumericDate([]byte(raw)); ok != want {
			t.Errorf("NumericDate(%s) = %v, want %v", raw, ok, want)
		}
	}
	if got := Time(1800000000.25); !got.Equal(time.Unix(1800000000, 250_000_000)) {
		t.Errorf("Time = %v", got)
	}
	if got := Time(MaxNumericDate).UTC().Format(time.RFC3339); got != "9999-12-31T23:59:59Z" {
		t.Errorf("MaxNumericDate is %s", got)
	}
}

func TestObject(t *testing.T) {
	o, err := ParseObject([]byte(`{"s":"x","n":1,"b":true,"f":false,"aud1":"a","aud2":["a","b"],"aud0":[],"d":1.5,"cnf":{"jkt":"t"}}`))
	if err != nil {
		t.Fatal(err)
	}
	if s, err := o.StringMember("s"); s != "x" || err != nil {
		t.Errorf("s = %q, %v", s, err)
	}
	if s, err := o.StringMember("absent"); s != "" || err != nil {
		t.Errorf("absent = %q, %v", s, err)
	}
	if _, err := o.StringMember("n"); err == nil || err.Error() != "n is malformed" {
		t.Errorf("number as string: %v", err)
	}
	if v, present, err := o.BoolMember("b"); !v || !present || err != nil {
		t.Errorf("b = %v %v %v", v, present, err)
	}
	if v, present, err := o.BoolMember("f"); v || !present || err != nil {
		t.Errorf("f = %v %v %v", v, present, err)
	}
	if _, present, err := o.BoolMember("s"); !present || err == nil {
		t.Errorf("string as bool: %v %v", present, err)
	}
	if _, present, _ := o.BoolMember("absent"); present {
		t.Error("absent bool present")
	}
	for name, want := range map[string][]string{"aud1": {"a"}, "aud2": {"a", "b"}, "aud0": {}, "absent": nil} {
		if got, err := o.AudienceMember(name); err != nil || !slices.Equal(got, want) || (got == nil) != (want == nil) {
			t.Errorf("%s = %q, %v; want %q", name, got, err, want)
		}
	}
	for _, bad := range []string{`{"aud":1}`, `{"aud":["a",1]}`, `{"aud":{"a":"b"}}`, `{"aud":[["a"]]}`, `{"aud":null}`} {
		o, _ := ParseObject([]byte(bad))
		if _, err := o.AudienceMember("aud"); err == nil {
			t.Errorf("%s: accepted", bad)
		}
	}
	if d, err := o.DateMember("d"); err != nil || !d.Equal(time.Unix(1, 500_000_000)) {
		t.Errorf("d = %v, %v", d, err)
	}
	if d, err := o.DateMember("absent"); err != nil || !d.IsZero() {
		t.Errorf("absent date = %v, %v", d, err)
	}
	if jkt, err := o.CnfJKT(); jkt != "t" || err != nil {
		t.Errorf("cnf = %q, %v", jkt, err)
	}
	for _, bad := range []string{`{"cnf":"t"}`, `{"cnf":{}}`, `{"cnf":{"jkt":""}}`, `{"cnf":{"jkt":1}}`, `{"cnf":{"jkt":"t","jwk":{}}}`, `{"cnf":{"x5t#S256":"t"}}`, `{"cnf":{"jkt":"t","jkt":"u"}}`} {
		o, _ := ParseObject([]byte(bad))
		if _, err := o.CnfJKT(); err == nil || err.Error() != "cnf is malformed" {
			t.Errorf("%s: %v", bad, err)
		}
	}
	var dup *MemberError
	if _, err := ParseObject([]byte(`{"a":1,"\u0061":2}`)); !errors.As(err, &dup) || !dup.Duplicate || err.Error() != "a is given twice" {
		t.Errorf("duplicate: %v", err)
	}
	for _, name := range []string{`a\nb`, `a b`, strings.Repeat("a", 33), `\u00e9`} {
		_, err := ParseObject([]byte(`{"` + name + `":1,"` + name + `":2}`))
		if err == nil || err.Error() != "a member is given twice" {
			t.Errorf("duplicate %q: %v, want the name left out", name, err)
		}
	}
	for _, bad := range []string{`[]`, `null`, `"x"`, `{`, ``} {
		if _, err := ParseObject([]byte(bad)); err != ErrNotObject {
			t.Errorf("%q: %v", bad, err)
		}
	}
}

// signingSet is a JWK Set of one private key with kid and alg.
func signingJWK(t *testing.T, raw any, kid, alg string, extra map[string]any) jwk.Key {
	t.Helper()
	k, err := jwk.FromRaw(raw)
	if err != nil {
		t.Fatal(err)
	}
	for name, v := range map[string]any{jwk.KeyIDKey: kid, jwk.AlgorithmKey: alg} {
		if v != "" {
			k.Set(name, v)
		}
	}
	for name, v := range extra {
		if err := k.Set(name, v); err != nil {
			t.Fatal(err)
		}
	}
	return k
}

func TestKeyFor(t *testing.T) {
	k := testKeys()
	r1024, _ := rsa.GenerateKey(rand.Reader, 1024)
	pub := func(raw any, extra map[string]any) jwk.Key {
		key := signingJWK(t, raw, "", "", extra)
		p, err := key.PublicKey()
		if err != nil {
			t.Fatal(err)
		}
		return p
	}
	tests := []struct {
		name string
		key  jwk.Key
		alg  string
		want bool
	}{
		{"P-256 for ES256", pub(k["P-256"], nil), "ES256", true},
		{"P-384 for ES384", pub(k["P-384"], nil), "ES384", true},
		{"P-384 for ES256", pub(k["P-384"], nil), "ES256", false},
		{"P-256 for ES512", pub(k["P-256"], nil), "ES512", false},
		{"P-256 for RS256", pub(k["P-256"], nil), "RS256", false},
		{"RSA 2048 for RS256", pub(k["RSA"], nil), "RS256", true},
		{"RSA 2048 for PS384", pub(k["RSA"], nil), "PS384", true},
		{"RSA 1024 for RS256", pub(r1024, nil), "RS256", false},
		{"RSA for ES256", pub(k["RSA"], nil), "ES256", false},
		{"Ed25519 for EdDSA", pub(k["Ed25519"], nil), "EdDSA", true},
		{"Ed25519 for Ed25519", pub(k["Ed25519"], nil), "Ed25519", true},
		{"Ed25519 for ES256", pub(k["Ed25519"], nil), "ES256", false},
		{"private key reduced to public", signingJWK(t, k["P-256"], "", "", nil), "ES256", true},
		{"key alg PS256, token RS256", pub(k["RSA"], map[string]any{jwk.AlgorithmKey: "PS256"}), "RS256", false},
		{"key alg EdDSA, token Ed25519", pub(k["Ed25519"], map[string]any{jwk.AlgorithmKey: "EdDSA"}), "Ed25519", false},
		{"key alg ES256, token ES256", pub(k["P-256"], map[string]any{jwk.AlgorithmKey: "ES256"}), "ES256", true},
		{"use enc", pub(k["P-256"], map[string]any{jwk.KeyUsageKey: "enc"}), "ES256", false},
		{"use sig", pub(k["P-256"], map[string]any{jwk.KeyUsageKey: "sig"}), "ES256", true},
		{"key_ops sign only", pub(k["P-256"], map[string]any{jwk.KeyOpsKey: jwk.KeyOperationList{jwk.KeyOpSign}}), "ES256", false},
		{"key_ops verify", pub(k["P-256"], map[string]any{jwk.KeyOpsKey: jwk.KeyOperationList{jwk.KeyOpVerify}}), "ES256", true},
		{"symmetric", signingJWK(t, []byte("0123456789abcdef0123456789abcdef"), "", "", nil), "ES256", false},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			_, err := KeyFor(tc.key, mustLookup(t, tc.alg), jwk.KeyOpVerify)
			if (err == nil) != tc.want {
				t.Errorf("KeyFor = %v, want fit %v", err, tc.want)
			}
			if err != nil && !errors.Is(err, ErrKeyFit) {
				t.Errorf("%v does not wrap ErrKeyFit", err)
			}
		})
	}
}

func TestPickKey(t *testing.T) {
	k := testKeys()
	set := jwk.NewSet()
	for _, key := range []jwk.Key{
		signingJWK(t, k["P-256"], "a", "ES256", nil),
		signingJWK(t, k["P-384"], "twin", "", nil),
		signingJWK(t, k["P-256"], "twin", "", nil),
		signingJWK(t, k["RSA"], "enc", "", map[string]any{jwk.KeyUsageKey: "enc"}),
	} {
		p, _ := key.PublicKey()
		set.AddKey(p)
	}
	es256 := mustLookup(t, "ES256")
	if pub, err := PickKey(set, "a", es256); err != nil || CheckPublicKey(es256, pub) != nil {
		t.Errorf("PickKey(a) = %v, %v", pub, err)
	}
	for kid, want := range map[string]error{"nope": ErrUnknownKid, "twin": ErrAmbiguousKid, "enc": ErrUnknownKid} {
		if _, err := PickKey(set, kid, es256); err != want {
			t.Errorf("PickKey(%s) = %v, want %v", kid, err, want)
		}
	}
	if _, err := PickKey(set, "a", mustLookup(t, "ES384")); err != ErrKeyFit {
		t.Errorf("PickKey(a, ES384) = %v, want ErrKeyFit", err)
	}
}

func TestSigningKey(t *testing.T) {
	k := testKeys()
	pubOnly, _ := signingJWK(t, k["P-256"], "p", "ES256", nil).PublicKey()
	for name, key := range map[string]jwk.Key{
		"no kid":         signingJWK(t, k["P-256"], "", "ES256", nil),
		"no alg":         signingJWK(t, k["P-256"], "k", "", nil),
		"alg HS256":      signingJWK(t, []byte("0123456789abcdef0123456789abcdef"), "k", "HS256", nil),
		"symmetric":      signingJWK(t, []byte("0123456789abcdef0123456789abcdef"), "k", "ES256", nil),
		"public":         pubOnly,
		"curve":          signingJWK(t, k["P-256"], "k", "ES384", nil),
		"key_ops verify": signingJWK(t, k["P-256"], "k", "ES256", map[string]any{jwk.KeyOpsKey: jwk.KeyOperationList{jwk.KeyOpVerify}}),
	} {
		if _, _, err := SigningKey(key); err == nil {
			t.Errorf("%s: accepted", name)
		}
	}
	spec, signer, err := SigningKey(signingJWK(t, k["Ed25519"], "k", "Ed25519", nil))
	if err != nil || spec.Name != "Ed25519" || signer == nil {
		t.Errorf("Ed25519 key: %v %v %v", spec.Name, signer, err)
	}
}

func TestVerifyAccessToken(t *testing.T) {
	k := testKeys()
	key := signingJWK(t, k["P-256"], "k1", "ES256", nil)
	spec, signer, err := SigningKey(key)
	if err != nil {
		t.Fatal(err)
	}
	pub, _ := key.PublicKey()
	set := jwk.NewSet()
	set.AddKey(pub)
	all, _ := AllowList("test", nil)
	keys := func(kid string, spec Spec) (crypto.PublicKey, error) { return PickKey(set, kid, spec) }
	claims := map[string]any{"iss": "i", "sub": "s", "aud": []string{"a"}, "exp": 4102444800, "nbf": 1, "iat": 2, "jti": "j", "client_id": "c", "scope": "x y", "cnf": map[string]any{"jkt": "t"}}
	tok, err := SignAccessToken(spec, "k1", signer, claims)
	if err != nil {
		t.Fatal(err)
	}
	c, err := VerifyAccessToken(tok, all, keys)
	if err != nil {
		t.Fatal(err)
	}
	want := AccessTokenClaims{Issuer: "i", Subject: "s", ClientID: "c", Scope: "x y", JTI: "j", Audience: []string{"a"},
		Expiry: time.Unix(4102444800, 0), NotBefore: time.Unix(1, 0), IssuedAt: time.Unix(2, 0), JKT: "t"}
	if c.Issuer != want.Issuer || c.Subject != want.Subject || c.ClientID != want.ClientID || c.Scope != want.Scope || c.JTI != want.JTI ||
		!slices.Equal(c.Audience, want.Audience) || !c.Expiry.Equal(want.Expiry) || !c.NotBefore.Equal(want.NotBefore) || !c.IssuedAt.Equal(want.IssuedAt) || c.JKT != want.JKT {
		t.Errorf("claims %+v, want %+v", *c, want)
	}

	p := strings.Split(tok, ".")
	enc := func(s string) string { return B64.EncodeToString([]byte(s)) }
	resign := func(header, payload string) string {
		in := enc(header) + "." + enc(payload)
		sig, err := Sign(spec, signer, in)
		if err != nil {
			t.Fatal(err)
		}
		return in + "." + B64.EncodeToString(sig)
	}
	const hdr = `{"alg":"ES256","kid":"k1","typ":"at+jwt"}`
	only := func(algs ...string) map[string]Spec { m, _ := AllowList("test", algs); return m }
	var dup *MemberError
	for _, tc := range []struct {
		name  string
		token string
		algs  map[string]Spec
		want  func(error) bool
	}{
		{"empty", "", all, is(ErrSize)},
		{"too large", tok + strings.Repeat("A", MaxJWTBytes), all, is(ErrSize)},
		{"JSON serialization", `{"protected":"` + p[0] + `","payload":"` + p[1] + `","signature":"` + p[2] + `"}`, all, is(ErrCompact)},
		{"empty signature", p[0] + "." + p[1] + ".", all, is(ErrCompact)},
		{"payload not base64url", p[0] + ".A." + p[2], all, is(ErrMalformed)},
		{"signature not base64url", p[0] + "." + p[1] + ".A", all, is(ErrMalformed)},
		{"header not JSON", enc("x") + "." + p[1] + "." + p[2], all, is(ErrMalformed)},
		{"crit", resign(`{"alg":"ES256","kid":"k1","typ":"at+jwt","crit":["x"],"x":1}`, "{}"), all, is(ErrCrit)},
		{"typ JWT", resign(`{"alg":"ES256","kid":"k1","typ":"JWT"}`, "{}"), all, is(ErrTyp)},
		{"alg HS256", resign(`{"alg":"HS256","kid":"k1","typ":"at+jwt"}`, "{}"), all, is(ErrAlgorithm)},
		{"alg not allowed here", tok, only("RS256"), is(ErrAlgorithm)},
		{"no kid", resign(`{"alg":"ES256","typ":"at+jwt"}`, "{}"), all, is(ErrNoKid)},
		{"unknown kid", resign(`{"alg":"ES256","kid":"k2","typ":"at+jwt"}`, "{}"), all, is(ErrUnknownKid)},
		{"key does not fit", resign(`{"alg":"ES384","kid":"k1","typ":"at+jwt"}`, "{}"), all, is(ErrKeyFit)},
		{"tampered payload", p[0] + "." + enc(`{"sub":"m"}`) + "." + p[2], all, is(ErrSignature)},
		{"claims an array", resign(hdr, "[]"), all, is(ErrClaims)},
		{"claims duplicated", resign(hdr, `{"sub":"a","sub":"b"}`), all, func(err error) bool { return errors.As(err, &dup) && dup.Duplicate }},
		{"exp negative", resign(hdr, `{"exp":-1}`), all, func(err error) bool { return err != nil && err.Error() == "exp is malformed" }},
		{"exp beyond 9999", resign(hdr, `{"exp":1e12}`), all, func(err error) bool { return err != nil && err.Error() == "exp is malformed" }},
		{"aud a number", resign(hdr, `{"aud":1}`), all, func(err error) bool { return err != nil && err.Error() == "aud is malformed" }},
	} {
		t.Run(tc.name, func(t *testing.T) {
			if _, err := VerifyAccessToken(tc.token, tc.algs, keys); !tc.want(err) {
				t.Errorf("VerifyAccessToken: %v", err)
			}
		})
	}
	if !AccessTokenType("Application/AT+JWT") || AccessTokenType("JWT") || AccessTokenType("") {
		t.Error("AccessTokenType")
	}
}

func is(target error) func(error) bool { return func(err error) bool { return err == target } }

// The proof path's helpers allocate nothing: the verifier's allocation
// count must not grow because the profile moved here.
func TestProofPathDoesNotAllocate(t *testing.T) {
	jws := "eyJhbGciOiJFUzI1NiJ9.eyJzdWIiOiJhIn0.c2lnbmF0dXJl"
	payload := []byte(`{"jti":"abc","htm":"POST","htu":"https://a.example/t","iat":1800000000}`)
	var n int
	allocs := testing.AllocsPerRun(100, func() {
		if _, _, _, ok := Split(jws); !ok {
			t.Fatal("Split")
		}
		_ = ForEachMember(payload, func(name, value []byte) error {
			switch string(name) {
			case "iat":
				if _, ok := NumericDate(value); ok {
					n++
				}
			}
			return nil
		})
	})
	if allocs != 0 {
		t.Errorf("%v allocations per run, want 0", allocs)
	}
}
