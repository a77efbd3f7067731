package dpop

import (
	"crypto"
	"crypto/ecdsa"
	"crypto/ed25519"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/rsa"
	"crypto/sha256"
	"encoding/base64"
	"encoding/json"
	"io"
	"math/big"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/lestrrat-go/jwx/v2/jwa"
	"github.com/lestrrat-go/jwx/v2/jwk"
	"github.com/lestrrat-go/jwx/v2/jws"
)

// Test keys are made once: RSA generation is slow under -race.
var (
	testP256 = sync.OnceValue(func() *ecdsa.PrivateKey { return mustECDSA(elliptic.P256()) })
	testP384 = sync.OnceValue(func() *ecdsa.PrivateKey { return mustECDSA(elliptic.P384()) })
	testP521 = sync.OnceValue(func() *ecdsa.PrivateKey { return mustECDSA(elliptic.P521()) })
	testEd   = sync.OnceValue(func() ed25519.PrivateKey {
		_, k, err := ed25519.GenerateKey(rand.Reader)
		if err != nil {
			panic(err)
		}
		return k
	})
	testRSA = sync.OnceValue(func() *rsa.PrivateKey { return mustRSA(2048) })
)

func mustECDSA(c elliptic.Curve) *ecdsa.PrivateKey {
	k, err := ecdsa.GenerateKey(c, rand.Reader)
	if err != nil {
		panic(err)
	}
	return k
}

func mustRSA(bits int) *rsa.PrivateKey {
	k, err := rsa.GenerateKey(rand.Reader, bits)
	if err != nil {
		panic(err)
	}
	return k
}

func newTestSigner(t testing.TB, key crypto.Signer, opts SignerOptions) *Signer {
	t.Helper()
	s, err := NewSigner(key, opts)
	if err != nil {
		t.Fatalf("NewSigner(%T): %v", key, err)
	}
	return s
}

// decodedProof is a proof split into its parts, decoded without the code
// under test.
type decodedProof struct {
	header    map[string]json.RawMessage
	claims    map[string]any
	signature []byte
}

func decodeProof(t testing.TB, proof string) decodedProof {
	t.Helper()
	parts := strings.Split(proof, ".")
	if len(parts) != 3 {
		t.Fatalf("proof has %d parts, want 3", len(parts))
	}
	seg := func(i int) []byte {
		b, err := base64.RawURLEncoding.Strict().DecodeString(parts[i])
		if err != nil {
			t.Fatalf("part %d is not unpadded base64url: %v", i, err)
		}
		return b
	}
	var d decodedProof
	if err := json.Unmarshal(seg(0), &d.header); err != nil {
		t.Fatalf("header: %v", err)
	}
	dec := json.NewDecoder(strings.NewReader(string(seg(1))))
	dec.UseNumber()
	if err := dec.Decode(&d.claims); err != nil {
		t.Fatalf("claims: %v", err)
	}
	d.signature = seg(2)
	return d
}

func (d decodedProof) headerString(t testing.TB, name string) string {
	t.Helper()
	var v string
	if err := json.Unmarshal(d.header[name], &v); err != nil {
		t.Fatalf("header %s: %v", name, err)
	}
	return v
}

func (d decodedProof) claim(name string) string {
	v, _ := d.claims[name].(string)
	return v
}

// verifyWithHeaderJWK checks the proof's signature with jwx and the jwk of its
// own header, as a server would, and returns that key.
func verifyWithHeaderJWK(t testing.TB, proof string, d decodedProof) jwk.Key {
	t.Helper()
	key, err := jwk.ParseKey(d.header["jwk"])
	if err != nil {
		t.Fatalf("header jwk: %v", err)
	}
	alg := jwa.SignatureAlgorithm(d.headerString(t, "alg"))
	if _, err := jws.Verify([]byte(proof), jws.WithKey(alg, key)); err != nil {
		t.Fatalf("jws.Verify with the header jwk: %v", err)
	}
	return key
}

func sha256B64(s string) string {
	sum := sha256.Sum256([]byte(s))
	return base64.RawURLEncoding.EncodeToString(sum[:])
}

func TestSignerProofAllKeyTypes(t *testing.T) {
	iat := time.Unix(1_700_000_000, 0)
	clock := func() time.Time { return iat.Add(900 * time.Millisecond) }
	tests := []struct {
		name    string
		key     func() crypto.Signer
		alg     string
		wantAlg string
		sigLen  int
		jwk     []string // exact members of the public JWK
	}{
		{"P-256", func() crypto.Signer { return testP256() }, "", "ES256", 64, []string{"crv", "kty", "x", "y"}},
		{"P-384", func() crypto.Signer { return testP384() }, "", "ES384", 96, []string{"crv", "kty", "x", "y"}},
		{"P-521", func() crypto.Signer { return testP521() }, "ES512", "ES512", 132, []string{"crv", "kty", "x", "y"}},
		{"Ed25519", func() crypto.Signer { return testEd() }, "", "EdDSA", 64, []string{"crv", "kty", "x"}},
		{"RSA default", func() crypto.Signer { return testRSA() }, "", "PS256", 256, []string{"e", "kty", "n"}},
		{"RSA RS256", func() crypto.Signer { return testRSA() }, "RS256", "RS256", 256, []string{"e", "kty", "n"}},
		{"RSA PS256", func() crypto.Signer { return testRSA() }, "PS256", "PS256", 256, []string{"e", "kty", "n"}},
		{"RSA RS512", func() crypto.Signer { return testRSA() }, "RS512", "RS512", 256, []string{"e", "kty", "n"}},
		{"RSA PS384", func() crypto.Signer { return testRSA() }, "PS384", "PS384", 256, []string{"e", "kty", "n"}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			key := tc.key()
			s := newTestSigner(t, key, SignerOptions{Algorithm: tc.alg, Now: clock})
			if s.Algorithm() != tc.wantAlg {
				t.Fatalf("Algorithm() = %q, want %q", s.Algorithm(), tc.wantAlg)
			}
			const token = "Kz~8mXK1EalYznwH-LC-1fBAo.4Ljp~zsPE_NeO.gxU"
			proof, err := s.Proof("POST", "https://server.example.com/token/a%2Fb?x=1&y=2#frag",
				ProofOptions{AccessToken: token, Nonce: "eyJ7S_zG.eyJH0-Z.HX4w-7v"})
			if err != nil {
				t.Fatal(err)
			}
			d := decodeProof(t, proof)

			if got := d.headerString(t, "typ"); got != "dpop+jwt" {
				t.Errorf("typ = %q", got)
			}
			if got := d.headerString(t, "alg"); got != tc.wantAlg {
				t.Errorf("alg = %q, want %q", got, tc.wantAlg)
			}
			if len(d.header) != 3 {
				t.Errorf("header has %d members, want typ, alg, jwk only", len(d.header))
			}
			var members map[string]json.RawMessage
			if err := json.Unmarshal(d.header["jwk"], &members); err != nil {
				t.Fatal(err)
			}
			for _, private := range []string{"d", "p", "q", "dp", "dq", "qi", "oth", "k"} {
				if _, ok := members[private]; ok {
					t.Errorf("jwk has private member %q", private)
				}
			}
			if len(members) != len(tc.jwk) {
				t.Errorf("jwk members = %d, want %v", len(members), tc.jwk)
			}
			for _, m := range tc.jwk {
				if _, ok := members[m]; !ok {
					t.Errorf("jwk lacks %q", m)
				}
			}
			if string(d.header["jwk"]) != string(s.PublicJWK()) {
				t.Errorf("header jwk %s != PublicJWK %s", d.header["jwk"], s.PublicJWK())
			}

			// Independent checks with jwx: the signer's public key, and the
			// jwk that travels in the header.
			if _, err := jws.Verify([]byte(proof), jws.WithKey(jwa.SignatureAlgorithm(tc.wantAlg), s.PublicKey())); err != nil {
				t.Fatalf("jws.Verify with the public key: %v", err)
			}
			hdrKey := verifyWithHeaderJWK(t, proof, d)
			sum, err := hdrKey.Thumbprint(crypto.SHA256)
			if err != nil {
				t.Fatal(err)
			}
			if got := base64.RawURLEncoding.EncodeToString(sum); got != s.JKT() {
				t.Errorf("jwx thumbprint of header jwk = %s, JKT() = %s", got, s.JKT())
			}
			if want, err := Thumbprint(key.Public()); err != nil || want != s.JKT() {
				t.Errorf("Thumbprint(pub) = %s, %v; JKT() = %s", want, err, s.JKT())
			}

			if len(d.signature) != tc.sigLen {
				t.Errorf("signature is %d bytes, want %d", len(d.signature), tc.sigLen)
			}
			if strings.HasPrefix(tc.wantAlg, "PS") {
				// The salt must be as long as the hash (RFC 7518 §3.5).
				h := map[string]crypto.Hash{"PS256": crypto.SHA256, "PS384": crypto.SHA384}[tc.wantAlg]
				in := proof[:strings.LastIndexByte(proof, '.')]
				w := h.New()
				io.WriteString(w, in)
				opts := &rsa.PSSOptions{SaltLength: h.Size()}
				if err := rsa.VerifyPSS(&testRSA().PublicKey, h, w.Sum(nil), d.signature, opts); err != nil {
					t.Errorf("PSS with salt length %d: %v", h.Size(), err)
				}
			}

			if jti := d.claim("jti"); len(jti) < 16 {
				t.Errorf("jti %q shorter than 16 characters", jti)
			} else if raw, err := base64.RawURLEncoding.DecodeString(jti); err != nil || len(raw) < 12 {
				t.Errorf("jti %q carries fewer than 96 bits", jti)
			}
			if got := d.claim("htm"); got != "POST" {
				t.Errorf("htm = %q", got)
			}
			if got := d.claim("htu"); got != "https://server.example.com/token/a%2Fb" {
				t.Errorf("htu = %q", got)
			}
			if got, _ := d.claims["iat"].(json.Number); got != "1700000000" {
				t.Errorf("iat = %v, want integer 1700000000", d.claims["iat"])
			}
			if got := d.claim("ath"); got != sha256B64(token) || got != ATH(token) {
				t.Errorf("ath = %q, want %q", got, sha256B64(token))
			}
			if got := d.claim("nonce"); got != "eyJ7S_zG.eyJH0-Z.HX4w-7v" {
				t.Errorf("nonce = %q", got)
			}
			if len(d.claims) != 6 {
				t.Errorf("claims = %v, want jti htm htu iat ath nonce", d.claims)
			}

			// A changed signature must not verify: the checks above can fail.
			tampered := []byte(proof)
			tampered[len(tampered)-5] ^= 'A' ^ 'B'
			if tampered[len(tampered)-5] == proof[len(proof)-5] {
				tampered[len(tampered)-5] = 'C'
			}
			if _, err := jws.Verify(tampered, jws.WithKey(jwa.SignatureAlgorithm(tc.wantAlg), s.PublicKey())); err == nil {
				t.Error("tampered proof verified")
			}
		})
	}
}

func TestSignerOptionalClaimsOmitted(t *testing.T) {
	s := newTestSigner(t, testP256(), SignerOptions{})
	before := time.Now().Unix()
	proof, err := s.Proof("GET", "https://resource.example.org/r", ProofOptions{})
	if err != nil {
		t.Fatal(err)
	}
	d := decodeProof(t, proof)
	for _, name := range []string{"ath", "nonce"} {
		if _, ok := d.claims[name]; ok {
			t.Errorf("claim %s present without being asked for", name)
		}
	}
	iat, err := d.claims["iat"].(json.Number).Int64()
	if err != nil || iat < before || iat > time.Now().Unix() {
		t.Errorf("iat = %v with the default clock", d.claims["iat"])
	}
}

func TestSignerJTIUnique(t *testing.T) {
	s := newTestSigner(t, testP256(), SignerOptions{})
	seen := make(map[string]bool)
	for range 1000 {
		proof, err := s.Proof("GET", "https://a.example/", ProofOptions{})
		if err != nil {
			t.Fatal(err)
		}
		jti := decodeProof(t, proof).claim("jti")
		if len(jti) < 16 {
			t.Fatalf("jti %q too short", jti)
		}
		if seen[jti] {
			t.Fatalf("jti %q repeated", jti)
		}
		seen[jti] = true
	}
}

func TestSignerHTU(t *testing.T) {
	s := newTestSigner(t, testEd(), SignerOptions{})
	tests := []struct{ in, want string }{
		{"https://a.example/p?q=1#f", "https://a.example/p"},
		{"https://a.example", "https://a.example/"},
		{"https://a.example?x", "https://a.example/"},
		{"HTTPS://a.example/x", "https://a.example/x"},
		{"http://a.example:8080/x/", "http://a.example:8080/x/"},
		{"https://user:secret@a.example/x", "https://a.example/x"},
		{"https://a.example/a%2Fb/c%20d", "https://a.example/a%2Fb/c%20d"},
		{"https://a.example/p?", "https://a.example/p"},
		{"https://a.example/p#", "https://a.example/p"},
		{"https://[2001:db8::1]:443/p", "https://[2001:db8::1]:443/p"},
	}
	for _, tc := range tests {
		proof, err := s.Proof("GET", tc.in, ProofOptions{})
		if err != nil {
			t.Errorf("%s: %v", tc.in, err)
			continue
		}
		if got := decodeProof(t, proof).claim("htu"); got != tc.want {
			t.Errorf("%s: htu = %q, want %q", tc.in, got, tc.want)
		}
	}
}

func TestSignerProofRefused(t *testing.T) {
	s := newTestSigner(t, testP256(), SignerOptions{})
	tests := []struct{ name, method, url string }{
		{"relative path", "GET", "/token"},
		{"relative name", "GET", "token"},
		{"empty URL", "GET", ""},
		{"no host", "GET", "https:///token"},
		{"opaque", "GET", "https:token"},
		{"ftp", "GET", "ftp://a.example/x"},
		{"mailto", "GET", "mailto:a@a.example"},
		{"unparsable", "GET", "https://a.example/%zz"},
		{"empty method", "", "https://a.example/"},
		{"method with space", "GE T", "https://a.example/"},
	}
	for _, tc := range tests {
		if p, err := s.Proof(tc.method, tc.url, ProofOptions{}); err == nil {
			t.Errorf("%s: Proof(%q, %q) = %q, want an error", tc.name, tc.method, tc.url, p)
		}
	}
	for _, nonce := range []string{"a b", `a"b`, `a\b`, "é", "\x00", strings.Repeat("n", 1025)} {
		if p, err := s.Proof("GET", "https://a.example/", ProofOptions{Nonce: nonce}); err == nil {
			t.Errorf("nonce %q: Proof = %q, want an error", nonce, p)
		}
	}
}

// otherSigner is a crypto.Signer of a kind NewSigner does not know.
type otherSigner struct{ crypto.Signer }

func TestNewSignerRefused(t *testing.T) {
	mismatched := *testP256()
	mismatched.PublicKey = testP256Other().PublicKey
	bigN := new(big.Int).Lsh(big.NewInt(1), 8200)
	tests := []struct {
		name string
		key  crypto.Signer
		alg  string
	}{
		{"RSA 1024", mustRSA(1024), ""},
		{"RSA 1024 RS256", mustRSA(1024), "RS256"},
		{"RSA above 8192", &rsa.PrivateKey{PublicKey: rsa.PublicKey{N: bigN, E: 65537}}, ""},
		{"P-224", mustECDSA(elliptic.P224()), ""},
		{"P-256 with ES384", testP256(), "ES384"},
		{"P-384 with ES256", testP384(), "ES256"},
		{"P-256 with HS256", testP256(), "HS256"},
		{"P-256 with none", testP256(), "none"},
		{"P-256 with lower-case es256", testP256(), "es256"},
		{"RSA with ES256", testRSA(), "ES256"},
		{"RSA with EdDSA", testRSA(), "EdDSA"},
		{"RSA with none", testRSA(), "none"},
		{"Ed25519 with ES256", testEd(), "ES256"},
		{"Ed25519 with PS256", testEd(), "PS256"},
		{"short Ed25519", ed25519.PrivateKey(testEd()[:32]), ""},
		{"unknown signer", otherSigner{testP256()}, ""},
		{"nil", nil, ""},
		{"nil ECDSA", (*ecdsa.PrivateKey)(nil), ""},
		{"nil RSA", (*rsa.PrivateKey)(nil), ""},
		{"ECDSA without private scalar", &ecdsa.PrivateKey{PublicKey: testP256().PublicKey}, ""},
		{"ECDSA halves from two keys", &mismatched, ""},
	}
	for _, tc := range tests {
		if s, err := NewSigner(tc.key, SignerOptions{Algorithm: tc.alg}); err == nil || s != nil {
			t.Errorf("%s: NewSigner = %v, %v; want an error", tc.name, s, err)
		}
	}
}

var testP256Other = sync.OnceValue(func() *ecdsa.PrivateKey { return mustECDSA(elliptic.P256()) })

func TestSignerPublicJWKIsCopy(t *testing.T) {
	s := newTestSigner(t, testP256(), SignerOptions{})
	a := s.PublicJWK()
	want := string(a)
	a[0] = 'X'
	if got := string(s.PublicJWK()); got != want {
		t.Errorf("PublicJWK changed to %s after the caller modified its copy", got)
	}
	key, err := jwk.ParseKey(s.PublicJWK())
	if err != nil {
		t.Fatal(err)
	}
	var raw ecdsa.PublicKey
	if err := key.Raw(&raw); err != nil || !raw.Equal(s.PublicKey()) {
		t.Errorf("PublicJWK does not hold the public key: %v", err)
	}
}

func TestSignerConcurrent(t *testing.T) {
	s := newTestSigner(t, testEd(), SignerOptions{})
	var wg sync.WaitGroup
	for range 16 {
		wg.Go(func() {
			for range 20 {
				proof, err := s.Proof("GET", "https://a.example/", ProofOptions{Nonce: "n"})
				if err != nil {
					t.Error(err)
					return
				}
				if _, err := jws.Verify([]byte(proof), jws.WithKey(jwa.EdDSA, s.PublicKey())); err != nil {
					t.Error(err)
					return
				}
			}
		})
	}
	wg.Wait()
}
