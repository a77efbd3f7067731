package dpop

import (
	"crypto/ecdsa"
	"crypto/ed25519"
	"strings"
	"testing"
)

// Check, like Verify, refuses with an *Error and no proof; a refusal is
// never turned into a nil error.
func TestCheckRefusals(t *testing.T) {
	v := newTestVerifier(t, nil)
	es := newTestKey(t, ES256)
	for _, tc := range []struct {
		name  string
		req   Request
		cause error
	}{
		{"no proof", tokenRequest(), ErrMissingProof},
		{"two proofs", tokenRequest(es.proof(t, nil), es.proof(t, nil)), ErrMultipleProofs},
		{"not a JWS", tokenRequest("a.b"), ErrMalformed},
		{"wrong htm", Request{Method: "GET", URL: testHTU, Proofs: []string{es.proof(t, nil)}}, ErrHTM},
		{"stale", tokenRequest(es.proof(t, func(c map[string]any) { c["iat"] = testNow.Unix() - 3600 })), ErrStale},
	} {
		t.Run(tc.name, func(t *testing.T) {
			p, err := v.Check(bg, tc.req)
			wantRefused(t, p, err, CodeInvalidProof, tc.cause)
		})
	}
	t.Run("a checked proof is returned and can be accepted", func(t *testing.T) {
		p, err := v.Check(bg, tokenRequest(es.proof(t, nil)))
		if err != nil || p == nil {
			t.Fatalf("Check = %v, %v", p, err)
		}
		if err := v.Accept(bg, p); err != nil {
			t.Fatal(err)
		}
	})
}

// gapsSetTrailingBit sets the lowest bit of the last character of an unpadded
// base64url segment whose final quantum holds one byte: that bit is past the
// end of the data, so a strict decoder refuses the segment.
func gapsSetTrailingBit(t testing.TB, s string) string {
	t.Helper()
	const alphabet = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_"
	if len(s)%4 != 2 {
		t.Fatalf("segment of %d characters: its final quantum does not hold one byte", len(s))
	}
	i := strings.IndexByte(alphabet, s[len(s)-1])
	if i < 0 || i&15 != 0 {
		t.Fatalf("final character %q has trailing bits", s[len(s)-1])
	}
	return s[:len(s)-1] + alphabet[i|1:i|1+1]
}

// A signature segment of base64url characters that does not decode is
// malformed, even when what decodes of it is the valid signature.
func TestSignatureSegmentNotBase64URL(t *testing.T) {
	v := newTestVerifier(t, nil)
	for _, tc := range []struct {
		name, alg string
		mangle    func(t testing.TB, sig string) string
	}{
		// 96 bytes: a whole number of quanta, then one character more.
		{"ES384, one character past a whole quantum", ES384, func(t testing.TB, sig string) string { return sig + "A" }},
		// 64 bytes: the final quantum holds one byte, with 4 bits to spare.
		{"ES256, bits set past the end of the data", ES256, gapsSetTrailingBit},
		{"Ed25519, bits set past the end of the data", Ed25519, gapsSetTrailingBit},
	} {
		t.Run(tc.name, func(t *testing.T) {
			k := newTestKey(t, tc.alg)
			parts := strings.Split(k.proof(t, nil), ".")
			parts[2] = tc.mangle(t, parts[2])
			p, err := v.Verify(bg, tokenRequest(strings.Join(parts, ".")))
			wantDescribed(t, p, err, CodeInvalidProof, ErrMalformed, "signature is not base64url")
		})
	}
}

// At a resource, a proof without ath is refused as such, not as an ath for
// another token.
func TestResourceATHDescriptions(t *testing.T) {
	v := newTestVerifier(t, nil)
	es := newTestKey(t, ES256)
	const token = "2YotnFZFEjr1zCsicMWpAA"
	const url = "https://server.example.com/api"
	for _, tc := range []struct {
		name, description string
		edit              func(c map[string]any)
	}{
		{"ath missing", "ath is missing", func(c map[string]any) {}},
		{"ath empty", "ath is missing", func(c map[string]any) { c["ath"] = "" }},
		{"ath of another token", "ath does not match the access token", func(c map[string]any) { c["ath"] = ATH(token + "x") }},
	} {
		t.Run(tc.name, func(t *testing.T) {
			proof := es.proof(t, func(c map[string]any) {
				c["htm"], c["htu"] = "GET", url
				tc.edit(c)
			})
			p, err := v.Verify(bg, Request{Method: "GET", URL: url, Proofs: []string{proof}, AccessToken: token})
			wantDescribed(t, p, err, CodeInvalidProof, ErrATH, tc.description)
		})
	}
}

// The htu refusals say which side could not be normalised, and carry what
// was expected and received for the server's logs.
func TestHTURefusalDetails(t *testing.T) {
	v := newTestVerifier(t, nil)
	es := newTestKey(t, ES256)
	for _, tc := range []struct {
		name, url, htu               string
		description, expected, recvd string
	}{
		{"request URL without scheme", "server.example.com/token", testHTU,
			"request URL cannot be normalised", "server.example.com/token", testHTU},
		{"request URL ftp", "ftp://server.example.com/token", testHTU,
			"request URL cannot be normalised", "ftp://server.example.com/token", testHTU},
		// The same invalid string on both sides is no match.
		{"same invalid URL on both sides", "ftp://server.example.com/token", "ftp://server.example.com/token",
			"request URL cannot be normalised", "ftp://server.example.com/token", "ftp://server.example.com/token"},
		{"same URL with a space on both sides", "https://server.example.com/to ken", "https://server.example.com/to ken",
			"request URL cannot be normalised", "https://server.example.com/to ken", "https://server.example.com/to ken"},
		{"empty on both sides", "", "", "request URL cannot be normalised", "", ""},
		{"htu relative", testHTU, "/token",
			"htu is not an absolute http(s) URI", testHTU, "/token"},
		{"htu with a bad percent-encoding", testHTU, "https://server.example.com/%zz",
			"htu is not an absolute http(s) URI", testHTU, "https://server.example.com/%zz"},
		{"htu not normalised and different", testHTU, "HTTPS://Server.Example.COM/other",
			"htu does not match the request URL", testHTU, "https://server.example.com/other"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			proof := es.proof(t, func(c map[string]any) { c["htu"] = tc.htu })
			p, err := v.Verify(bg, Request{Method: "POST", URL: tc.url, Proofs: []string{proof}})
			wantDescribed(t, p, err, CodeInvalidProof, ErrHTU, tc.description)
			if e, ok := err.(*Error); ok && (e.Expected != tc.expected || e.Received != tc.recvd) {
				t.Errorf("expected %q received %q, want %q and %q", e.Expected, e.Received, tc.expected, tc.recvd)
			}
		})
	}
}

// Proofs with the same protected header share the key parsed from it (the
// header cache; Proof.PublicKey is documented as shared), whatever their
// claims.
func TestHeaderCacheSharesTheParsedKey(t *testing.T) {
	v := newTestVerifier(t, nil)
	for _, alg := range []string{ES256, Ed25519} {
		t.Run(alg, func(t *testing.T) {
			k := newTestKey(t, alg)
			p1, err := v.Verify(bg, tokenRequest(k.proof(t, nil)))
			if err != nil {
				t.Fatal(err)
			}
			p2, err := v.Verify(bg, tokenRequest(k.proof(t, func(c map[string]any) { c["iat"] = testNow.Unix() - 1 })))
			if err != nil {
				t.Fatal(err)
			}
			if p1.JKT != p2.JKT {
				t.Fatalf("jkt %s and %s", p1.JKT, p2.JKT)
			}
			switch k1 := p1.PublicKey.(type) {
			case *ecdsa.PublicKey:
				if k2, _ := p2.PublicKey.(*ecdsa.PublicKey); k2 != k1 {
					t.Errorf("two keys parsed for one header: %p and %p", k1, k2)
				}
			case ed25519.PublicKey:
				if k2, _ := p2.PublicKey.(ed25519.PublicKey); len(k2) != len(k1) || &k2[0] != &k1[0] {
					t.Error("two keys parsed for one header")
				}
			default:
				t.Fatalf("key %T", p1.PublicKey)
			}
		})
	}
}
