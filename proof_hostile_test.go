package dpop

import (
	"bytes"
	"crypto/rand"
	"crypto/rsa"
	"math/big"
	"strings"
	"sync"
	"testing"
)

// Hostile proofs whose refusal a deleted or loosened check would turn into
// acceptance, or into a refusal for another reason. Each proof is signed over
// its segments exactly as sent, so that it would pass every other check: the
// refusal asserted is the one of the check under test.

// hostileSign returns header.payload.signature, the signature made by k over
// the two segments as given (not re-encoded).
func hostileSign(t testing.TB, k *testKey, header, payload string) string {
	t.Helper()
	return header + "." + payload + "." + enc(k.signature(t, header+"."+payload))
}

// paddedJSON returns the JSON of v followed by one or more spaces (JSON
// allows trailing whitespace) so that its length modulo 3 is rem: with rem 0
// its base64url has no partial final quantum, with rem 1 the final quantum
// encodes one byte, a space, in two characters.
func paddedJSON(t testing.TB, v any, rem int) []byte {
	t.Helper()
	b := append(mustJSON(t, v), ' ')
	for len(b)%3 != rem {
		b = append(b, ' ')
	}
	return b
}

// overlongSegment is the base64url of data (whose length is a multiple of 3)
// with one more character: 4k+1 characters, which no base64 decodes, though
// the first 4k decode to data.
func overlongSegment(t testing.TB, data []byte) string {
	t.Helper()
	if len(data)%3 != 0 {
		t.Fatalf("data of %d bytes", len(data))
	}
	return enc(data) + "A"
}

// trailingBitsSegment is the base64url of data (whose length is 1 modulo 3,
// ending in a space) with a bit set past the end of the data: the strict
// decoder refuses it, a lenient one returns data, and Go's, on that error,
// reports the bytes before the final quantum: data without its last space.
func trailingBitsSegment(t testing.TB, data []byte) string {
	t.Helper()
	if len(data)%3 != 1 {
		t.Fatalf("data of %d bytes", len(data))
	}
	s := enc(data)
	if s[len(s)-1] != 'A' {
		t.Fatalf("final character %q, want A (no trailing bits)", s[len(s)-1])
	}
	return s[:len(s)-1] + "B"
}

// wantDescribed asserts a refusal like wantRefused, and its description:
// where two checks share a code and a cause, the description tells which
// one refused.
func wantDescribed(t testing.TB, p *Proof, err error, code ErrorCode, cause error, description string) {
	t.Helper()
	wantRefused(t, p, err, code, cause)
	if e, ok := err.(*Error); ok && e.Description != description {
		t.Errorf("description %q, want %q", e.Description, description)
	}
}

// Item: a payload segment of base64url characters that does not decode is
// refused as malformed, though its decodable prefix is a valid claims set.
func TestHostilePayloadNotBase64URL(t *testing.T) {
	v := newTestVerifier(t, nil)
	es := newTestKey(t, ES256)
	header := enc(mustJSON(t, es.header()))
	for _, tc := range []struct {
		name    string
		payload func() string
	}{
		{"one character past a whole quantum", func() string { return overlongSegment(t, paddedJSON(t, defaultClaims(), 0)) }},
		{"bits set past the end of the data", func() string { return trailingBitsSegment(t, paddedJSON(t, defaultClaims(), 1)) }},
	} {
		t.Run(tc.name, func(t *testing.T) {
			proof := hostileSign(t, es, header, tc.payload())
			p, err := v.Verify(bg, tokenRequest(proof))
			wantDescribed(t, p, err, CodeInvalidProof, ErrMalformed, "payload is not base64url")
		})
	}
}

// Item: a JOSE header naming alg twice is refused as a duplicate, whichever
// value comes last, and not taken as the last (or first) of them.
func TestHostileDuplicateAlg(t *testing.T) {
	es := newTestKey(t, ES256)
	jwk := string(mustJSON(t, es.jwk))
	for _, tc := range []struct{ name, header string }{
		{"none then ES256", `{"typ":"dpop+jwt","alg":"none","alg":"ES256","jwk":` + jwk + `}`},
		{"ES256 then HS256", `{"typ":"dpop+jwt","alg":"ES256","alg":"HS256","jwk":` + jwk + `}`},
		{"ES256 twice", `{"typ":"dpop+jwt","alg":"ES256","alg":"ES256","jwk":` + jwk + `}`},
		{"escaped name", `{"typ":"dpop+jwt","alg":"none","a\u006cg":"ES256","jwk":` + jwk + `}`},
		{"after the jwk", `{"typ":"dpop+jwt","alg":"RS256","jwk":` + jwk + `,"alg":"ES256"}`},
	} {
		t.Run(tc.name, func(t *testing.T) {
			v := newTestVerifier(t, nil)
			proof := es.signRaw(t, []byte(tc.header), mustJSON(t, defaultClaims()))
			p, err := v.Verify(bg, tokenRequest(proof))
			wantDescribed(t, p, err, CodeInvalidProof, ErrMalformed, "duplicate header parameter")
		})
	}
}

// Item: a header segment with a byte after its base64url (a line break,
// which Go's decoder would skip, padding, a space, or one base64url
// character too many) is refused as malformed, though the signature covers
// the segment as sent.
func TestHostileHeaderTrailingByte(t *testing.T) {
	es := newTestKey(t, ES256)
	whole := paddedJSON(t, es.header(), 0)
	for _, tc := range []struct {
		name, header, description string
	}{
		{"line feed", enc(whole) + "\n", "proof is not a compact JWS"},
		{"carriage return", enc(whole) + "\r", "proof is not a compact JWS"},
		{"CRLF", enc(whole) + "\r\n", "proof is not a compact JWS"},
		{"padding", enc(paddedJSON(t, es.header(), 1)) + "==", "proof is not a compact JWS"},
		{"space", enc(whole) + " ", "proof is not a compact JWS"},
		{"NUL", enc(whole) + "\x00", "proof is not a compact JWS"},
		{"one base64url character too many", overlongSegment(t, whole), "header is not base64url"},
		{"bits set past the end", trailingBitsSegment(t, paddedJSON(t, es.header(), 1)), "header is not base64url"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			v := newTestVerifier(t, nil)
			proof := hostileSign(t, es, tc.header, enc(mustJSON(t, defaultClaims())))
			p, err := v.Verify(bg, tokenRequest(proof))
			wantDescribed(t, p, err, CodeInvalidProof, ErrMalformed, tc.description)
		})
	}
	t.Run("the same header without the byte is accepted", func(t *testing.T) {
		v := newTestVerifier(t, nil)
		if _, err := v.Verify(bg, tokenRequest(hostileSign(t, es, enc(whole), enc(mustJSON(t, defaultClaims()))))); err != nil {
			t.Fatal(err)
		}
	})
}

// Item: every member that only a private or symmetric JWK has (RFC 7518
// §6.2.2, §6.3.2, §6.4) makes the jwk of an EC proof unacceptable, though
// the key it names and the signature are valid.
func TestHostilePrivateJWKMembers(t *testing.T) {
	v := newTestVerifier(t, nil)
	es := newTestKey(t, ES256)
	val := enc(bytes.Repeat([]byte{7}, 32))
	for _, tc := range []struct {
		member string
		value  any
	}{
		{"d", val},
		{"d", nil},
		{"d", 1}, // no key library would read it: still a private member
		{"p", val},
		{"q", val},
		{"dp", val},
		{"dq", val},
		{"qi", val},
		{"oth", []any{map[string]any{"r": val, "d": val, "t": val}}},
		{"oth", []any{}},
		{"k", val},
		{"k", nil},
	} {
		name := tc.member
		switch tc.value.(type) {
		case nil:
			name += " null"
		case int:
			name += " number"
		}
		t.Run(name, func(t *testing.T) {
			jwk := map[string]any{}
			for n, x := range es.jwk {
				jwk[n] = x
			}
			jwk[tc.member] = tc.value
			h := es.header()
			h["jwk"] = jwk
			p, err := v.Verify(bg, tokenRequest(es.sign(t, h, defaultClaims())))
			wantDescribed(t, p, err, CodeInvalidProof, ErrKey, "jwk must be a public key")
		})
	}
	t.Run("the public members alone are accepted", func(t *testing.T) {
		if _, err := v.Verify(bg, tokenRequest(es.proof(t, nil))); err != nil {
			t.Fatal(err)
		}
	})
}

// rsa2047 is a 2047-bit RSA key, one bit under the minimum.
var rsa2047 = sync.OnceValues(func() (*rsa.PrivateKey, error) { return rsa.GenerateKey(rand.Reader, 2047) })

// Item: an RSA jwk with a public exponent other than 65537 (an even one
// here) and a modulus one bit under 2048 are refused as unacceptable keys,
// before the signature is looked at.
func TestHostileRSAKeys(t *testing.T) {
	v := newTestVerifier(t, nil)
	rs := newTestKey(t, RS256)
	withExponent := func(e int64) func(t *testing.T) string {
		return func(t *testing.T) string {
			h := rs.header()
			h["jwk"] = map[string]any{"kty": "RSA", "n": rs.jwk["n"], "e": enc(big.NewInt(e).Bytes())}
			return rs.sign(t, h, defaultClaims())
		}
	}
	for _, tc := range []struct {
		name  string
		proof func(t *testing.T) string
	}{
		{"exponent 65536 (even)", withExponent(65536)},
		{"exponent 65538 (even)", withExponent(65538)},
		{"exponent 2 (even)", withExponent(2)},
		{"exponent 3", withExponent(3)},
		{"2047-bit modulus", func(t *testing.T) string {
			priv, err := rsa2047()
			if err != nil {
				t.Fatal(err)
			}
			if priv.N.BitLen() != 2047 {
				t.Fatalf("modulus of %d bits", priv.N.BitLen())
			}
			k := &testKey{alg: RS256, priv: priv, jwk: publicJWK(priv.Public())}
			return k.proof(t, nil)
		}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			p, err := v.Verify(bg, tokenRequest(tc.proof(t)))
			wantRefused(t, p, err, CodeInvalidProof, ErrKey)
		})
	}
	t.Run("exponent 65537 with the same modulus is accepted", func(t *testing.T) {
		if _, err := v.Verify(bg, tokenRequest(withExponent(65537)(t))); err != nil {
			t.Fatal(err)
		}
	})
}

// Item: an empty payload segment (h..s) is not a compact JWS, and is refused
// as such before anything else is checked: even before the key binding, so
// that a bound request gets ErrMalformed, not ErrKeyMismatch.
func TestHostileEmptyPayload(t *testing.T) {
	es := newTestKey(t, ES256)
	other := namedTestKey(t, "other-es256", ES256)
	otherJKT, err := Thumbprint(other.priv.Public())
	if err != nil {
		t.Fatal(err)
	}
	header := enc(mustJSON(t, es.header()))
	for _, tc := range []struct{ name, proof, bound string }{
		{"signed empty payload", hostileSign(t, es, header, ""), ""},
		{"signed empty payload, bound to another key", hostileSign(t, es, header, ""), otherJKT},
		{"signature of a full proof", func() string {
			s := strings.Split(es.proof(t, nil), ".")
			return s[0] + ".." + s[2]
		}(), ""},
		{"empty payload and signature", header + "..", ""},
	} {
		t.Run(tc.name, func(t *testing.T) {
			v := newTestVerifier(t, nil)
			req := tokenRequest(tc.proof)
			req.BoundJKT = tc.bound
			p, err := v.Verify(bg, req)
			wantDescribed(t, p, err, CodeInvalidProof, ErrMalformed, "proof is not a compact JWS")
		})
	}
}

// Item: an ECDSA signature whose r or s alone is zero (the other a valid
// value) is refused as a bad signature, without a panic.
func TestHostileECDSAZeroHalf(t *testing.T) {
	v := newTestVerifier(t, func(o *VerifierOptions) { o.Algorithms = []string{ES256, ES384, ES512} })
	for _, alg := range []string{ES256, ES384, ES512} {
		k := newTestKey(t, alg)
		for _, half := range []string{"r", "s"} {
			t.Run(alg+" "+half+" zero", func(t *testing.T) {
				parts := strings.Split(k.proof(t, nil), ".")
				sig, err := b64.DecodeString(parts[2])
				if err != nil {
					t.Fatal(err)
				}
				size := len(sig) / 2
				if half == "r" {
					clear(sig[:size])
				} else {
					clear(sig[size:])
				}
				parts[2] = enc(sig)
				p, err := v.Verify(bg, tokenRequest(strings.Join(parts, ".")))
				wantRefused(t, p, err, CodeInvalidProof, ErrSignature)
			})
		}
	}
}
