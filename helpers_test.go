package dpop

import (
	"context"
	"crypto"
	"crypto/ecdsa"
	"crypto/ed25519"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/rsa"
	"encoding/base64"
	"encoding/json"
	"errors"
	"math/big"
	"sync"
	"testing"
	"time"

	"github.com/dpopkit/dpop/internal/jose"
)

// Test proofs are built here by hand, independently of the Signer, so that
// hostile variants (wrong types, bad signatures, private keys) can be made.

var testNow = time.Unix(1_800_000_000, 0)

const (
	testBase = "https://server.example.com"
	testHTU  = "https://server.example.com/token"
)

type testKey struct {
	alg  string
	priv crypto.Signer
	jwk  map[string]any
}

var (
	testKeysMu sync.Mutex
	testKeys   = map[string]*testKey{}
)

func enc(b []byte) string { return base64.RawURLEncoding.EncodeToString(b) }

// newTestKey returns a key for alg, cached per name so RSA generation runs once.
func newTestKey(t testing.TB, alg string) *testKey { return namedTestKey(t, alg, alg) }

func namedTestKey(t testing.TB, name, alg string) *testKey {
	t.Helper()
	testKeysMu.Lock()
	defer testKeysMu.Unlock()
	if k, ok := testKeys[name]; ok {
		return k
	}
	var priv crypto.Signer
	var err error
	switch alg {
	case ES256:
		priv, err = ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	case ES384:
		priv, err = ecdsa.GenerateKey(elliptic.P384(), rand.Reader)
	case ES512:
		priv, err = ecdsa.GenerateKey(elliptic.P521(), rand.Reader)
	case EdDSA, Ed25519:
		_, priv, err = ed25519.GenerateKey(rand.Reader)
	case "RSA1024":
		priv, err = rsa.GenerateKey(rand.Reader, 1024)
		alg = RS256
	default:
		priv, err = rsa.GenerateKey(rand.Reader, 2048)
	}
	if err != nil {
		t.Fatal(err)
	}
	k := &testKey{alg: alg, priv: priv, jwk: publicJWK(priv.Public())}
	testKeys[name] = k
	return k
}

// publicJWK writes the public members of a key, as a client would.
func publicJWK(pub crypto.PublicKey) map[string]any {
	switch k := pub.(type) {
	case *ecdsa.PublicKey:
		size := (k.Curve.Params().BitSize + 7) / 8
		return map[string]any{"kty": "EC", "crv": k.Curve.Params().Name,
			"x": enc(k.X.FillBytes(make([]byte, size))), "y": enc(k.Y.FillBytes(make([]byte, size)))}
	case ed25519.PublicKey:
		return map[string]any{"kty": "OKP", "crv": "Ed25519", "x": enc(k)}
	case *rsa.PublicKey:
		return map[string]any{"kty": "RSA", "n": enc(k.N.Bytes()), "e": enc(big.NewInt(int64(k.E)).Bytes())}
	}
	panic("unsupported key")
}

func (k *testKey) header() map[string]any {
	return map[string]any{"typ": "dpop+jwt", "alg": k.alg, "jwk": k.jwk}
}

func freshJTI() string {
	b := make([]byte, 16)
	rand.Read(b)
	return enc(b)
}

func defaultClaims() map[string]any {
	return map[string]any{"jti": freshJTI(), "htm": "POST", "htu": testHTU, "iat": testNow.Unix()}
}

func mustJSON(t testing.TB, v any) []byte {
	t.Helper()
	b, err := json.Marshal(v)
	if err != nil {
		t.Fatal(err)
	}
	return b
}

// sign builds a compact JWS over the given header and claims.
func (k *testKey) sign(t testing.TB, header, claims map[string]any) string {
	t.Helper()
	return k.signRaw(t, mustJSON(t, header), mustJSON(t, claims))
}

// proof is a valid proof with the claims changed by edit (nil: defaults).
func (k *testKey) proof(t testing.TB, edit func(map[string]any)) string {
	t.Helper()
	c := defaultClaims()
	if edit != nil {
		edit(c)
	}
	return k.sign(t, k.header(), c)
}

func (k *testKey) signRaw(t testing.TB, header, claims []byte) string {
	t.Helper()
	input := enc(header) + "." + enc(claims)
	return input + "." + enc(k.signature(t, input))
}

// specOf returns the profile's description of alg.
func specOf(alg string) jose.Spec {
	s, _ := jose.Lookup(alg)
	return s
}

// signature signs input as JWS alg k.alg does (RFC 7518 §3).
func (k *testKey) signature(t testing.TB, input string) []byte {
	t.Helper()
	spec := specOf(k.alg)
	switch priv := k.priv.(type) {
	case *ecdsa.PrivateKey:
		r, s, err := ecdsa.Sign(rand.Reader, priv, jose.Digest(spec.Hash, input))
		if err != nil {
			t.Fatal(err)
		}
		size := (priv.Curve.Params().BitSize + 7) / 8
		out := make([]byte, 2*size)
		r.FillBytes(out[:size])
		s.FillBytes(out[size:])
		return out
	case ed25519.PrivateKey:
		return ed25519.Sign(priv, []byte(input))
	case *rsa.PrivateKey:
		var sig []byte
		var err error
		if spec.PSS {
			sig, err = rsa.SignPSS(rand.Reader, priv, spec.Hash, jose.Digest(spec.Hash, input), &rsa.PSSOptions{SaltLength: rsa.PSSSaltLengthEqualsHash})
		} else {
			sig, err = rsa.SignPKCS1v15(rand.Reader, priv, spec.Hash, jose.Digest(spec.Hash, input))
		}
		if err != nil {
			t.Fatal(err)
		}
		return sig
	}
	t.Fatal("unsupported key")
	return nil
}

// newTestVerifier returns a verifier on testBase with a fixed clock; edit
// adjusts the options.
func newTestVerifier(t testing.TB, edit func(*VerifierOptions)) *Verifier {
	t.Helper()
	o := VerifierOptions{BaseURL: testBase, Now: func() time.Time { return testNow }}
	if edit != nil {
		edit(&o)
	}
	v, err := NewVerifier(o)
	if err != nil {
		t.Fatal(err)
	}
	return v
}

func tokenRequest(proofs ...string) Request {
	return Request{Method: "POST", URL: testHTU, Proofs: proofs}
}

// wantRefused asserts err is an *Error with the code and cause.
func wantRefused(t testing.TB, p *Proof, err error, code ErrorCode, cause error) {
	t.Helper()
	if err == nil {
		t.Fatalf("accepted (jkt %s), want %s / %v", p.JKT, code, cause)
	}
	e, ok := err.(*Error)
	if !ok {
		t.Fatalf("error %T %v is not *Error", err, err)
	}
	if e.Code != code {
		t.Errorf("code = %q, want %q (%v)", e.Code, code, err)
	}
	if cause != nil && !errors.Is(err, cause) {
		t.Errorf("cause = %v, want %v", e.Err, cause)
	}
	if p != nil {
		t.Errorf("refusal returned a proof")
	}
}

var bg = context.Background()
