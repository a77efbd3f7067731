package dpop

import (
	"crypto/ecdsa"
	"crypto/rand"
	"encoding/base64"
	"math/big"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/dpopkit/dpop/internal/jose"
)

// One test per item of section 1 of the DPoP checklist (RFC 9449 §4.3).

type refusalCase struct {
	name  string
	req   func(t *testing.T) Request
	code  ErrorCode
	cause error
}

func runRefusals(t *testing.T, v *Verifier, cases []refusalCase) {
	t.Helper()
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			p, err := v.Verify(bg, tc.req(t))
			wantRefused(t, p, err, tc.code, tc.cause)
		})
	}
}

func proofReq(f func(t *testing.T) string) func(t *testing.T) Request {
	return func(t *testing.T) Request { return tokenRequest(f(t)) }
}

func TestVerifyAcceptsEveryAlgorithm(t *testing.T) {
	v := newTestVerifier(t, nil)
	for _, alg := range DefaultAlgorithms() {
		t.Run(alg, func(t *testing.T) {
			k := newTestKey(t, alg)
			p, err := v.Verify(bg, tokenRequest(k.proof(t, nil)))
			if err != nil {
				t.Fatal(err)
			}
			want, err := Thumbprint(k.priv.Public())
			if err != nil {
				t.Fatal(err)
			}
			if p.JKT != want || p.Algorithm != alg || p.HTM != "POST" || p.HTU != testHTU || !p.IAT.Equal(testNow) {
				t.Errorf("proof = %+v, want jkt %s", p, want)
			}
		})
	}
}

// Checklist 1.1: exactly one DPoP header holding one compact JWS.
func TestCheck1ExactlyOneCompactJWS(t *testing.T) {
	v := newTestVerifier(t, nil)
	k := newTestKey(t, ES256)
	valid := func(t *testing.T) string { return k.proof(t, nil) }
	runRefusals(t, v, []refusalCase{
		{"no header", func(t *testing.T) Request { return tokenRequest() }, CodeInvalidProof, ErrMissingProof},
		{"two headers", func(t *testing.T) Request { return tokenRequest(valid(t), valid(t)) }, CodeInvalidProof, ErrMultipleProofs},
		{"two identical headers", func(t *testing.T) Request { p := valid(t); return tokenRequest(p, p) }, CodeInvalidProof, ErrMultipleProofs},
		{"empty value", proofReq(func(t *testing.T) string { return "" }), CodeInvalidProof, ErrMalformed},
		{"two parts", proofReq(func(t *testing.T) string { p := valid(t); return p[:strings.LastIndexByte(p, '.')] }), CodeInvalidProof, ErrMalformed},
		{"four parts", proofReq(func(t *testing.T) string { return valid(t) + ".AAAA" }), CodeInvalidProof, ErrMalformed},
		{"empty signature", proofReq(func(t *testing.T) string { p := valid(t); return p[:strings.LastIndexByte(p, '.')+1] }), CodeInvalidProof, ErrMalformed},
		{"empty header", proofReq(func(t *testing.T) string { p := valid(t); return p[strings.IndexByte(p, '.'):] }), CodeInvalidProof, ErrMalformed},
		{"JSON serialization", proofReq(func(t *testing.T) string {
			p := strings.Split(valid(t), ".")
			return `{"protected":"` + p[0] + `","payload":"` + p[1] + `","signature":"` + p[2] + `"}`
		}), CodeInvalidProof, ErrMalformed},
		{"padded base64", proofReq(func(t *testing.T) string { return valid(t) + "==" }), CodeInvalidProof, ErrMalformed},
		{"standard base64 alphabet", proofReq(func(t *testing.T) string {
			p := valid(t)
			return strings.Replace(p, p[len(p)-2:], "+/", 1)
		}), CodeInvalidProof, ErrMalformed},
		{"whitespace", proofReq(func(t *testing.T) string { return " " + valid(t) }), CodeInvalidProof, ErrMalformed},
		{"comma-joined list", proofReq(func(t *testing.T) string { return valid(t) + ", " + valid(t) }), CodeInvalidProof, nil},
		{"oversized", proofReq(func(t *testing.T) string {
			return k.proof(t, func(c map[string]any) { c["pad"] = strings.Repeat("a", DefaultMaxProofSize) })
		}), CodeInvalidProof, ErrTooLarge},
		{"payload not JSON", proofReq(func(t *testing.T) string {
			return k.signRaw(t, mustJSON(t, k.header()), []byte("not json"))
		}), CodeInvalidProof, ErrMalformed},
		{"payload a JSON array", proofReq(func(t *testing.T) string {
			return k.signRaw(t, mustJSON(t, k.header()), []byte(`["jti","htm"]`))
		}), CodeInvalidProof, ErrMalformed},
		{"header not JSON", proofReq(func(t *testing.T) string {
			return k.signRaw(t, []byte(`{"typ":"dpop+jwt",`), mustJSON(t, defaultClaims()))
		}), CodeInvalidProof, ErrMalformed},
	})
}

// Checklist 1.2: typ, alg allow-list, jwk public and matching, RSA size, crit.
func TestCheck2Header(t *testing.T) {
	v := newTestVerifier(t, nil)
	es := newTestKey(t, ES256)
	withHeader := func(k *testKey, edit func(h map[string]any)) func(t *testing.T) Request {
		return proofReq(func(t *testing.T) string {
			h := k.header()
			edit(h)
			return k.sign(t, h, defaultClaims())
		})
	}
	withJWK := func(edit func(j map[string]any)) func(t *testing.T) Request {
		return withHeader(es, func(h map[string]any) {
			j := map[string]any{}
			for n, v := range es.jwk {
				j[n] = v
			}
			edit(j)
			h["jwk"] = j
		})
	}
	priv := es.priv.(*ecdsa.PrivateKey)
	privBytes := make([]byte, 32)
	priv.D.FillBytes(privBytes)
	runRefusals(t, v, []refusalCase{
		{"typ missing", withHeader(es, func(h map[string]any) { delete(h, "typ") }), CodeInvalidProof, ErrTyp},
		{"typ JWT", withHeader(es, func(h map[string]any) { h["typ"] = "JWT" }), CodeInvalidProof, ErrTyp},
		{"typ at+jwt", withHeader(es, func(h map[string]any) { h["typ"] = "at+jwt" }), CodeInvalidProof, ErrTyp},
		{"typ upper case", withHeader(es, func(h map[string]any) { h["typ"] = "DPOP+JWT" }), CodeInvalidProof, ErrTyp},
		{"typ with application prefix", withHeader(es, func(h map[string]any) { h["typ"] = "application/dpop+jwt" }), CodeInvalidProof, ErrTyp},
		{"typ not a string", withHeader(es, func(h map[string]any) { h["typ"] = []string{"dpop+jwt"} }), CodeInvalidProof, ErrTyp},
		{"typ duplicated", proofReq(func(t *testing.T) string {
			h := `{"typ":"JWT","typ":"dpop+jwt","alg":"ES256","jwk":` + string(mustJSON(t, es.jwk)) + `}`
			return es.signRaw(t, []byte(h), mustJSON(t, defaultClaims()))
		}), CodeInvalidProof, ErrMalformed},
		{"typ escaped and duplicated", proofReq(func(t *testing.T) string {
			h := `{"typ":"dpop+jwt","t\u0079p":"JWT","alg":"ES256","jwk":` + string(mustJSON(t, es.jwk)) + `}`
			return es.signRaw(t, []byte(h), mustJSON(t, defaultClaims()))
		}), CodeInvalidProof, ErrMalformed},
		{"alg none", proofReq(func(t *testing.T) string {
			h := es.header()
			h["alg"] = "none"
			return enc(mustJSON(t, h)) + "." + enc(mustJSON(t, defaultClaims())) + "."
		}), CodeInvalidProof, nil},
		{"alg none with signature", withHeader(es, func(h map[string]any) { h["alg"] = "none" }), CodeInvalidProof, ErrAlgorithm},
		{"alg HS256 with oct key", proofReq(func(t *testing.T) string {
			h := map[string]any{"typ": "dpop+jwt", "alg": "HS256", "jwk": map[string]any{"kty": "oct", "k": enc([]byte("secret-secret-secret-secret-1234"))}}
			return enc(mustJSON(t, h)) + "." + enc(mustJSON(t, defaultClaims())) + "." + enc(make([]byte, 32))
		}), CodeInvalidProof, ErrAlgorithm},
		{"alg missing", withHeader(es, func(h map[string]any) { delete(h, "alg") }), CodeInvalidProof, ErrAlgorithm},
		{"alg lower case", withHeader(es, func(h map[string]any) { h["alg"] = "es256" }), CodeInvalidProof, ErrAlgorithm},
		{"alg ES256K", withHeader(es, func(h map[string]any) { h["alg"] = "ES256K" }), CodeInvalidProof, ErrAlgorithm},
		{"alg ES384 with a P-256 key", withHeader(es, func(h map[string]any) { h["alg"] = ES384 }), CodeInvalidProof, ErrKey},
		{"alg RS256 with an EC key", withHeader(es, func(h map[string]any) { h["alg"] = RS256 }), CodeInvalidProof, ErrKey},
		{"alg EdDSA with an EC key", withHeader(es, func(h map[string]any) { h["alg"] = EdDSA }), CodeInvalidProof, ErrKey},
		{"alg ES256 with an RSA key", withHeader(newTestKey(t, RS256), func(h map[string]any) { h["alg"] = ES256 }), CodeInvalidProof, ErrKey},
		{"jwk missing", withHeader(es, func(h map[string]any) { delete(h, "jwk") }), CodeInvalidProof, ErrKey},
		{"jwk not an object", withHeader(es, func(h map[string]any) { h["jwk"] = "key" }), CodeInvalidProof, ErrKey},
		{"jwk with d (private key)", withJWK(func(j map[string]any) { j["d"] = enc(privBytes) }), CodeInvalidProof, ErrKey},
		{"jwk with p", withJWK(func(j map[string]any) { j["p"] = "AQAB" }), CodeInvalidProof, ErrKey},
		{"jwk oct", withJWK(func(j map[string]any) { clear(j); j["kty"] = "oct"; j["k"] = "c2VjcmV0" }), CodeInvalidProof, ErrKey},
		{"jwk kty missing", withJWK(func(j map[string]any) { delete(j, "kty") }), CodeInvalidProof, ErrKey},
		{"jwk crv P-384 for ES256", withJWK(func(j map[string]any) { j["crv"] = "P-384" }), CodeInvalidProof, ErrKey},
		{"jwk short x", withJWK(func(j map[string]any) {
			x, _ := base64.RawURLEncoding.DecodeString(j["x"].(string))
			j["x"] = enc(x[1:])
		}), CodeInvalidProof, ErrKey},
		{"jwk point not on curve", withJWK(func(j map[string]any) {
			y, _ := base64.RawURLEncoding.DecodeString(j["y"].(string))
			y[31] ^= 1
			j["y"] = enc(y)
		}), CodeInvalidProof, ErrKey},
		{"jwk duplicate x", proofReq(func(t *testing.T) string {
			j := es.jwk
			h := `{"typ":"dpop+jwt","alg":"ES256","jwk":{"kty":"EC","crv":"P-256","x":"` + j["x"].(string) + `","x":"` + j["y"].(string) + `","y":"` + j["y"].(string) + `"}}`
			return es.signRaw(t, []byte(h), mustJSON(t, defaultClaims()))
		}), CodeInvalidProof, ErrKey},
		{"RSA 1024", proofReq(func(t *testing.T) string { return newTestKey(t, "RSA1024").proof(t, nil) }), CodeInvalidProof, ErrKey},
		{"Ed25519 key with X25519 crv", withHeader(newTestKey(t, EdDSA), func(h map[string]any) {
			j := map[string]any{"kty": "OKP", "crv": "X25519", "x": newTestKey(t, EdDSA).jwk["x"]}
			h["jwk"] = j
		}), CodeInvalidProof, ErrKey},
		{"crit", withHeader(es, func(h map[string]any) { h["crit"] = []string{"exp"}; h["exp"] = 1 }), CodeInvalidProof, ErrCrit},
		{"crit b64", withHeader(es, func(h map[string]any) { h["crit"] = []string{"b64"}; h["b64"] = false }), CodeInvalidProof, ErrCrit},
	})

	t.Run("narrowed allow-list", func(t *testing.T) {
		v := newTestVerifier(t, func(o *VerifierOptions) { o.Algorithms = []string{ES256} })
		if _, err := v.Verify(bg, tokenRequest(es.proof(t, nil))); err != nil {
			t.Fatal(err)
		}
		p, err := v.Verify(bg, tokenRequest(newTestKey(t, EdDSA).proof(t, nil)))
		wantRefused(t, p, err, CodeInvalidProof, ErrAlgorithm)
	})
	t.Run("unknown header parameters are ignored", func(t *testing.T) {
		p := es.sign(t, map[string]any{"typ": "dpop+jwt", "alg": ES256, "jwk": es.jwk, "kid": "x", "x5u": "https://evil"}, defaultClaims())
		if _, err := v.Verify(bg, tokenRequest(p)); err != nil {
			t.Fatal(err)
		}
	})
}

// Checklist 1.3: the signature verifies with the header's jwk; ECDSA in r||s.
func TestCheck3Signature(t *testing.T) {
	v := newTestVerifier(t, nil)
	es := newTestKey(t, ES256)
	other := namedTestKey(t, "other-es256", ES256)
	split := func(p string) []string { return strings.Split(p, ".") }
	runRefusals(t, v, []refusalCase{
		{"tampered payload", proofReq(func(t *testing.T) string {
			p := split(es.proof(t, nil))
			c := defaultClaims()
			c["htm"] = "POST"
			p[1] = enc(mustJSON(t, c))
			return strings.Join(p, ".")
		}), CodeInvalidProof, ErrSignature},
		{"flipped signature bit", proofReq(func(t *testing.T) string {
			p := split(es.proof(t, nil))
			sig, _ := base64.RawURLEncoding.DecodeString(p[2])
			sig[10] ^= 1
			p[2] = enc(sig)
			return strings.Join(p, ".")
		}), CodeInvalidProof, ErrSignature},
		{"signed by another key", proofReq(func(t *testing.T) string {
			return other.signRaw(t, mustJSON(t, es.header()), mustJSON(t, defaultClaims()))
		}), CodeInvalidProof, ErrSignature},
		{"DER ECDSA signature", proofReq(func(t *testing.T) string {
			h, c := enc(mustJSON(t, es.header())), enc(mustJSON(t, defaultClaims()))
			der, err := ecdsa.SignASN1(rand.Reader, es.priv.(*ecdsa.PrivateKey), jose.Digest(specOf(ES256).Hash, h+"."+c))
			if err != nil {
				t.Fatal(err)
			}
			return h + "." + c + "." + enc(der)
		}), CodeInvalidProof, ErrSignature},
		{"zero signature", proofReq(func(t *testing.T) string {
			p := split(es.proof(t, nil))
			p[2] = enc(make([]byte, 64))
			return strings.Join(p, ".")
		}), CodeInvalidProof, ErrSignature},
		{"truncated RSA signature", proofReq(func(t *testing.T) string {
			p := split(newTestKey(t, PS256).proof(t, nil))
			sig, _ := base64.RawURLEncoding.DecodeString(p[2])
			p[2] = enc(sig[:len(sig)-1])
			return strings.Join(p, ".")
		}), CodeInvalidProof, ErrSignature},
		{"RS256 signature under PS256", proofReq(func(t *testing.T) string {
			rs := newTestKey(t, RS256)
			h := rs.header()
			h["alg"] = PS256
			return rs.signRaw(t, mustJSON(t, h), mustJSON(t, defaultClaims())) // signed PKCS#1 v1.5
		}), CodeInvalidProof, ErrSignature},
	})

	// A malleated ECDSA signature (r, n-s) is valid, but the proof it makes is
	// the same proof: the replay cache, keyed by jkt and jti, refuses it.
	t.Run("malleated signature is a replay", func(t *testing.T) {
		p := split(es.proof(t, nil))
		if _, err := v.Verify(bg, tokenRequest(strings.Join(p, "."))); err != nil {
			t.Fatal(err)
		}
		sig, _ := base64.RawURLEncoding.DecodeString(p[2])
		s := new(big.Int).SetBytes(sig[32:])
		s.Sub(es.priv.(*ecdsa.PrivateKey).Curve.Params().N, s)
		s.FillBytes(sig[32:])
		p[2] = enc(sig)
		got, err := v.Verify(bg, tokenRequest(strings.Join(p, ".")))
		wantRefused(t, got, err, CodeInvalidProof, ErrReplay)
	})
}

// Checklist 1.4: required claims with their JSON types, bounded jti.
func TestCheck4Claims(t *testing.T) {
	v := newTestVerifier(t, nil)
	es := newTestKey(t, ES256)
	with := func(edit func(c map[string]any)) func(t *testing.T) Request {
		return proofReq(func(t *testing.T) string { return es.proof(t, edit) })
	}
	raw := func(claims string) func(t *testing.T) Request {
		return proofReq(func(t *testing.T) string { return es.signRaw(t, mustJSON(t, es.header()), []byte(claims)) })
	}
	iat := testNow.Unix()
	runRefusals(t, v, []refusalCase{
		{"jti missing", with(func(c map[string]any) { delete(c, "jti") }), CodeInvalidProof, ErrClaims},
		{"htm missing", with(func(c map[string]any) { delete(c, "htm") }), CodeInvalidProof, ErrClaims},
		{"htu missing", with(func(c map[string]any) { delete(c, "htu") }), CodeInvalidProof, ErrClaims},
		{"iat missing", with(func(c map[string]any) { delete(c, "iat") }), CodeInvalidProof, ErrClaims},
		{"jti number", with(func(c map[string]any) { c["jti"] = 12345 }), CodeInvalidProof, ErrClaims},
		{"jti null", with(func(c map[string]any) { c["jti"] = nil }), CodeInvalidProof, ErrClaims},
		{"jti empty", with(func(c map[string]any) { c["jti"] = "" }), CodeInvalidProof, ErrJTI},
		{"jti too long", with(func(c map[string]any) { c["jti"] = strings.Repeat("j", DefaultMaxJTILength+1) }), CodeInvalidProof, ErrJTI},
		{"htm number", with(func(c map[string]any) { c["htm"] = 1 }), CodeInvalidProof, ErrClaims},
		{"htu array", with(func(c map[string]any) { c["htu"] = []string{testHTU} }), CodeInvalidProof, ErrClaims},
		{"htu object", with(func(c map[string]any) { c["htu"] = map[string]string{"href": testHTU} }), CodeInvalidProof, ErrClaims},
		{"iat string", with(func(c map[string]any) { c["iat"] = "1800000000" }), CodeInvalidProof, ErrClaims},
		{"iat bool", with(func(c map[string]any) { c["iat"] = true }), CodeInvalidProof, ErrClaims},
		{"iat huge", raw(`{"jti":"abcdefghijklmnop","htm":"POST","htu":"` + testHTU + `","iat":1e300}`), CodeInvalidProof, ErrClaims},
		// One NumericDate rule (jose.MaxNumericDate): 0 to 9999-12-31, else
		// the claim is malformed, not merely stale.
		{"iat negative", raw(`{"jti":"abcdefghijklmnop","htm":"POST","htu":"` + testHTU + `","iat":-1e10}`), CodeInvalidProof, ErrClaims},
		{"iat after year 9999", raw(`{"jti":"abcdefghijklmnop","htm":"POST","htu":"` + testHTU + `","iat":253402300800}`), CodeInvalidProof, ErrClaims},
		{"iat overflowing float", raw(`{"jti":"abcdefghijklmnop","htm":"POST","htu":"` + testHTU + `","iat":1e400}`), CodeInvalidProof, ErrClaims},
		{"ath number", with(func(c map[string]any) { c["ath"] = 1 }), CodeInvalidProof, ErrClaims},
		{"nonce object", with(func(c map[string]any) { c["nonce"] = map[string]any{} }), CodeInvalidProof, ErrClaims},
		{"claim names are case-sensitive", raw(`{"JTI":"abcdefghijklmnop","htm":"POST","htu":"` + testHTU + `","iat":` + itoa(iat) + `}`), CodeInvalidProof, ErrClaims},
		{"duplicate htu", raw(`{"jti":"abcdefghijklmnop","htm":"POST","htu":"https://evil.example/","htu":"` + testHTU + `","iat":` + itoa(iat) + `}`), CodeInvalidProof, ErrMalformed},
		{"duplicate via escape", raw(`{"jti":"abcdefghijklmnop","htm":"POST","htu":"` + testHTU + `","h\u0074u":"` + testHTU + `","iat":` + itoa(iat) + `}`), CodeInvalidProof, ErrMalformed},
	})
	t.Run("escaped string values are decoded", func(t *testing.T) {
		claims := `{"jti":"esc-` + freshJTI() + `","htm":"P\u004fST","htu":"https:\/\/server.example.com\/token","iat":` + itoa(iat) + `}`
		if _, err := v.Verify(bg, tokenRequest(es.signRaw(t, mustJSON(t, es.header()), []byte(claims)))); err != nil {
			t.Fatal(err)
		}
	})
	t.Run("fractional iat and extra claims are accepted", func(t *testing.T) {
		p := es.proof(t, func(c map[string]any) { c["iat"] = float64(iat) + 0.5; c["extra"] = map[string]any{"a": []any{1, "}"}} })
		if _, err := v.Verify(bg, tokenRequest(p)); err != nil {
			t.Fatal(err)
		}
	})
}

func itoa(n int64) string { return big.NewInt(n).String() }

// Checklist 1.5: htm equals the request method.
func TestCheck5HTM(t *testing.T) {
	v := newTestVerifier(t, nil)
	es := newTestKey(t, ES256)
	for _, tc := range []struct{ htm, method string }{
		{"GET", "POST"}, {"post", "POST"}, {"POST ", "POST"}, {"", "POST"}, {"POST", "GET"},
	} {
		p, err := v.Verify(bg, Request{Method: tc.method, URL: testHTU, Proofs: []string{es.proof(t, func(c map[string]any) { c["htm"] = tc.htm })}})
		wantRefused(t, p, err, CodeInvalidProof, ErrHTM)
	}
}

// Checklist 1.6: htu equals the request URI after normalisation, and the URI
// comes from configuration, not from the client's Host header.
func TestCheck6HTU(t *testing.T) {
	v := newTestVerifier(t, nil)
	es := newTestKey(t, ES256)
	for _, htu := range []string{
		"HTTPS://Server.Example.COM:443/token",
		"https://server.example.com/token?query=1",
		"https://server.example.com/token#fragment",
		"https://server.example.com/a/../token",
		"https://server.example.com/%74oken",
	} {
		t.Run("equivalent "+htu, func(t *testing.T) {
			if _, err := v.Verify(bg, tokenRequest(es.proof(t, func(c map[string]any) { c["htu"] = htu }))); err != nil {
				t.Fatal(err)
			}
		})
	}
	for _, htu := range []string{
		"http://server.example.com/token",
		"https://server.example.com:8443/token",
		"https://server.example.org/token",
		"https://server.example.com/token/",
		"https://server.example.com/Token",
		"https://server.example.com/other",
		"/token",
		"server.example.com/token",
		"https://user@server.example.com/token",
		"javascript://server.example.com/token",
		"",
	} {
		t.Run("different "+htu, func(t *testing.T) {
			p, err := v.Verify(bg, tokenRequest(es.proof(t, func(c map[string]any) { c["htu"] = htu })))
			wantRefused(t, p, err, CodeInvalidProof, ErrHTU)
		})
	}
	t.Run("VerifyHTTP uses BaseURL, not Host", func(t *testing.T) {
		r := httptest.NewRequest("POST", "http://evil.example/token?x=1", nil)
		r.Header.Set("X-Forwarded-Host", "evil.example")
		r.Header.Set("DPoP", es.proof(t, func(c map[string]any) { c["htu"] = "http://evil.example/token" }))
		p, err := v.VerifyHTTP(bg, r, "")
		wantRefused(t, p, err, CodeInvalidProof, ErrHTU)

		r.Header.Set("DPoP", es.proof(t, nil))
		if _, err := v.VerifyHTTP(bg, r, ""); err != nil {
			t.Fatal(err)
		}
	})
	t.Run("BaseURL path prefix", func(t *testing.T) {
		v := newTestVerifier(t, func(o *VerifierOptions) { o.BaseURL = "https://server.example.com/auth/" })
		r := httptest.NewRequest("POST", "/token", nil)
		r.Header.Set("DPoP", es.proof(t, func(c map[string]any) { c["htu"] = "https://server.example.com/auth/token" }))
		if _, err := v.VerifyHTTP(bg, r, ""); err != nil {
			t.Fatal(err)
		}
	})
}

// Checklist 1.7: iat within MaxAge in the past and Leeway in the future.
func TestCheck7Freshness(t *testing.T) {
	v := newTestVerifier(t, nil)
	es := newTestKey(t, ES256)
	for _, tc := range []struct {
		name string
		iat  float64
		ok   bool
	}{
		{"now", float64(testNow.Unix()), true},
		{"oldest accepted", float64(testNow.Add(-DefaultMaxAge).Unix()), true},
		{"just too old", float64(testNow.Add(-DefaultMaxAge).Unix()) - 0.5, false},
		{"an hour old", float64(testNow.Add(-time.Hour).Unix()), false},
		{"furthest future accepted", float64(testNow.Add(DefaultLeeway).Unix()), true},
		{"just too far ahead", float64(testNow.Add(DefaultLeeway).Unix()) + 0.5, false},
		{"zero", 0, false},
		{"far future", 9e10, false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			p, err := v.Verify(bg, tokenRequest(es.proof(t, func(c map[string]any) { c["iat"] = tc.iat })))
			if tc.ok {
				if err != nil {
					t.Fatal(err)
				}
				return
			}
			wantRefused(t, p, err, CodeInvalidProof, ErrStale)
		})
	}
	t.Run("with nonces a stale iat asks for a nonce, and a valid nonce recovers", func(t *testing.T) {
		nonces := newTestNonces(t)
		v := newTestVerifier(t, func(o *VerifierOptions) { o.Nonces = nonces })
		stale := func(c map[string]any) { c["iat"] = testNow.Add(-2 * time.Hour).Unix() }
		p, err := v.Verify(bg, tokenRequest(es.proof(t, stale)))
		wantRefused(t, p, err, CodeUseNonce, ErrNonce)
		nonce := err.(*Error).Nonce
		if nonce == "" {
			t.Fatal("use_dpop_nonce without a nonce")
		}
		if _, err := v.Verify(bg, tokenRequest(es.proof(t, func(c map[string]any) { stale(c); c["nonce"] = nonce }))); err != nil {
			t.Fatal(err)
		}
	})
}

// Regression (interop with oauth4webapi 3.8): clients sign Ed25519 proofs
// with the fully-specified alg "Ed25519" of RFC 9864 rather than "EdDSA";
// both names are accepted by default, and each can be configured alone.
func TestVerifyEd25519AlgorithmName(t *testing.T) {
	k := newTestKey(t, Ed25519)
	if _, ok := k.priv.(interface{ Seed() []byte }); !ok {
		t.Fatalf("test key for Ed25519 is %T", k.priv)
	}
	if _, err := newTestVerifier(t, nil).Verify(bg, tokenRequest(k.proof(t, nil))); err != nil {
		t.Fatalf("alg Ed25519 refused: %v", err)
	}
	only := newTestVerifier(t, func(o *VerifierOptions) { o.Algorithms = []string{EdDSA} })
	p, err := only.Verify(bg, tokenRequest(k.proof(t, nil)))
	wantRefused(t, p, err, CodeInvalidProof, ErrAlgorithm)
	s, err := NewSigner(k.priv, SignerOptions{Algorithm: Ed25519})
	if err != nil || s.Algorithm() != Ed25519 {
		t.Fatalf("signer: %v", err)
	}
}

// Reading a proof's claims allocates only the strings it keeps (jti, htm,
// htu): the JOSE profile's walker adds nothing on the hot path.
func TestParseClaimsAllocations(t *testing.T) {
	v := newTestVerifier(t, nil)
	payload := []byte(`{"jti":"abcdefghijklmnop","htm":"POST","htu":"` + testHTU + `","iat":1800000000}`)
	allocs := testing.AllocsPerRun(100, func() {
		if _, e := v.parseClaims(payload); e != nil {
			t.Fatal(e)
		}
	})
	if allocs > 3 {
		t.Errorf("%v allocations, want at most 3 (the jti, htm and htu strings)", allocs)
	}
}
