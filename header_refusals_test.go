package dpop

import (
	"encoding/base64"
	"testing"
)

// Refusals of a proof's jwk header (RFC 9449 §4.3 checks 6 and 7) that share
// one cause, ErrKey: the description tells which check refused, and each
// proof is validly signed by the key it names (where it names one), so that
// a check that was skipped would let it through or be refused by another
// check, with another description.

// refusalJWKVariant returns a copy of k's public JWK with edit applied.
func refusalJWKVariant(k *testKey, edit func(j map[string]any)) map[string]any {
	j := make(map[string]any, len(k.jwk))
	for n, x := range k.jwk {
		j[n] = x
	}
	edit(j)
	return j
}

// refusalJWKProof is a proof by k whose header carries jwk (nil: no jwk member).
func refusalJWKProof(t testing.TB, k *testKey, jwk map[string]any) string {
	t.Helper()
	h := map[string]any{"typ": "dpop+jwt", "alg": k.alg}
	if jwk != nil {
		h["jwk"] = jwk
	}
	return k.sign(t, h, defaultClaims())
}

// refusalJWKMember decodes a base64url member of k's JWK.
func refusalJWKMember(t testing.TB, k *testKey, name string) []byte {
	t.Helper()
	b, err := base64.RawURLEncoding.DecodeString(k.jwk[name].(string))
	if err != nil {
		t.Fatal(err)
	}
	return b
}

func TestHeaderJWKRefusalDescriptions(t *testing.T) {
	v := newTestVerifier(t, nil)
	es := newTestKey(t, ES256)
	ed := newTestKey(t, EdDSA)
	ps := newTestKey(t, PS256)
	esX := refusalJWKMember(t, es, "x")
	edX := refusalJWKMember(t, ed, "x")
	for _, tc := range []struct {
		name, description string
		proof             func(t *testing.T) string
	}{
		// No jwk member at all, as opposed to one that is not an object.
		{"jwk absent", "jwk header is missing", func(t *testing.T) string {
			return refusalJWKProof(t, es, nil)
		}},
		{"jwk null", "jwk is not a JSON object", func(t *testing.T) string {
			return es.sign(t, map[string]any{"typ": "dpop+jwt", "alg": ES256, "jwk": nil}, defaultClaims())
		}},

		// Members that pass the strict member walk but that the JWK library
		// cannot make a key of.
		{"EC jwk without y", "jwk cannot be parsed", func(t *testing.T) string {
			return refusalJWKProof(t, es, refusalJWKVariant(es, func(j map[string]any) { delete(j, "y") }))
		}},
		{"EC jwk without crv", "jwk cannot be parsed", func(t *testing.T) string {
			return refusalJWKProof(t, es, refusalJWKVariant(es, func(j map[string]any) { delete(j, "crv") }))
		}},
		{"EC jwk x not base64", "jwk member is not base64url", func(t *testing.T) string {
			return refusalJWKProof(t, es, refusalJWKVariant(es, func(j map[string]any) { j["x"] = "!!!!" }))
		}},

		// A curve name the library reads but cannot build an EC (or OKP)
		// key on: the key is never materialised.
		{"EC jwk on curve Ed25519", "jwk cannot be parsed", func(t *testing.T) string {
			return refusalJWKProof(t, es, refusalJWKVariant(es, func(j map[string]any) { j["crv"] = "Ed25519" }))
		}},
		{"EC jwk on curve X448", "jwk cannot be parsed", func(t *testing.T) string {
			return refusalJWKProof(t, es, refusalJWKVariant(es, func(j map[string]any) { j["crv"] = "X448" }))
		}},
		{"OKP jwk on curve P-256", "jwk cannot be parsed", func(t *testing.T) string {
			return refusalJWKProof(t, ed, refusalJWKVariant(ed, func(j map[string]any) { j["crv"] = "P-256" }))
		}},
		{"OKP jwk on curve Ed448", "jwk cannot be parsed", func(t *testing.T) string {
			return refusalJWKProof(t, ed, refusalJWKVariant(ed, func(j map[string]any) { j["crv"] = "Ed448" }))
		}},

		// The right point, but coordinates not of the field size (RFC 7518
		// §6.2.1.2): the key itself is valid, so only the length check
		// refuses it.
		{"EC x with a leading zero byte", "jwk curve does not match alg", func(t *testing.T) string {
			return refusalJWKProof(t, es, refusalJWKVariant(es, func(j map[string]any) { j["x"] = enc(append([]byte{0}, esX...)) }))
		}},
		{"EC y with a leading zero byte", "jwk curve does not match alg", func(t *testing.T) string {
			y := refusalJWKMember(t, es, "y")
			return refusalJWKProof(t, es, refusalJWKVariant(es, func(j map[string]any) { j["y"] = enc(append([]byte{0}, y...)) }))
		}},
		{"EC x padded base64", "jwk member is not base64url", func(t *testing.T) string {
			return refusalJWKProof(t, es, refusalJWKVariant(es, func(j map[string]any) { j["x"] = base64.URLEncoding.EncodeToString(esX) }))
		}},

		// The standard base64 alphabet, which the JWK library would decode:
		// RFC 7518 §6 wants base64url in every key member.
		{"EC x in the standard alphabet", "jwk member is not base64url", func(t *testing.T) string {
			return refusalJWKProof(t, es, refusalJWKVariant(es, func(j map[string]any) { j["x"] = "+" + enc(esX)[1:] }))
		}},
		{"EC y with a slash", "jwk member is not base64url", func(t *testing.T) string {
			return refusalJWKProof(t, es, refusalJWKVariant(es, func(j map[string]any) { j["y"] = "/" + j["y"].(string)[1:] }))
		}},
		{"EC x with bits past its end", "jwk member is not base64url", func(t *testing.T) string {
			return refusalJWKProof(t, es, refusalJWKVariant(es, func(j map[string]any) { j["x"] = enc(esX)[:42] + "B" }))
		}},
		{"RSA n in the standard alphabet", "jwk member is not base64url", func(t *testing.T) string {
			return refusalJWKProof(t, ps, refusalJWKVariant(ps, func(j map[string]any) { j["n"] = "/" + j["n"].(string)[1:] }))
		}},
		{"RSA e padded", "jwk member is not base64url", func(t *testing.T) string {
			return refusalJWKProof(t, ps, refusalJWKVariant(ps, func(j map[string]any) { j["e"] = "AQAB=" }))
		}},

		// Ed25519: x of the wrong encoded or decoded size.
		{"Ed25519 x padded base64", "jwk member is not base64url", func(t *testing.T) string {
			return refusalJWKProof(t, ed, refusalJWKVariant(ed, func(j map[string]any) { j["x"] = base64.URLEncoding.EncodeToString(edX) }))
		}},
		{"Ed25519 x of 31 bytes", "jwk is not an Ed25519 key", func(t *testing.T) string {
			return refusalJWKProof(t, ed, refusalJWKVariant(ed, func(j map[string]any) { j["x"] = enc(edX[:31]) }))
		}},
		{"Ed25519 x of 33 bytes", "jwk is not an Ed25519 key", func(t *testing.T) string {
			return refusalJWKProof(t, ed, refusalJWKVariant(ed, func(j map[string]any) { j["x"] = enc(append(append([]byte(nil), edX...), 0)) }))
		}},
		{"Ed25519 x missing", "jwk cannot be parsed", func(t *testing.T) string {
			return refusalJWKProof(t, ed, refusalJWKVariant(ed, func(j map[string]any) { delete(j, "x") }))
		}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			p, err := v.Verify(bg, tokenRequest(tc.proof(t)))
			wantDescribed(t, p, err, CodeInvalidProof, ErrKey, tc.description)
		})
	}
	t.Run("the unaltered keys are accepted", func(t *testing.T) {
		for _, k := range []*testKey{es, ed, ps} {
			if _, err := v.Verify(bg, tokenRequest(refusalJWKProof(t, k, k.jwk))); err != nil {
				t.Errorf("%s: %v", k.alg, err)
			}
		}
	})
}
