package dpop

import (
	"errors"
	"strings"
	"testing"
)

// FuzzVerify feeds arbitrary DPoP header values to the verifier, seeded with
// valid proofs of several key types and with hostile ones. Nothing may panic;
// every refusal is an *Error; anything accepted must really match the request.
func FuzzVerify(f *testing.F) {
	for _, alg := range []string{ES256, EdDSA, RS256, PS256} {
		k := newTestKey(f, alg)
		f.Add(k.proof(f, nil))
		f.Add(k.proof(f, func(c map[string]any) { c["nonce"] = "n"; c["ath"] = ATH("t"); c["x"] = []any{map[string]any{}} }))
	}
	es := newTestKey(f, ES256)
	for _, s := range []string{
		"", ".", "..", "a.b.c", "e30.e30.", "e30.e30.AA",
		enc([]byte(`{"typ":"dpop+jwt","alg":"none","jwk":{}}`)) + "." + enc(mustJSON(f, defaultClaims())) + ".",
		enc([]byte(`{"typ":"dpop+jwt","alg":"HS256","jwk":{"kty":"oct","k":"AAAA"}}`)) + "." + enc(mustJSON(f, defaultClaims())) + ".AAAA",
		es.signRaw(f, []byte(`{"typ":"dpop+jwt","alg":"ES256","jwk":`+string(mustJSON(f, es.jwk))+`,"crit":["x"]}`), mustJSON(f, defaultClaims())),
		es.signRaw(f, mustJSON(f, es.header()), []byte(`{"jti":"a","htm":"POST","htu":"https://server.example.com/a/../token","iat":1.8e9}`)),
		es.signRaw(f, mustJSON(f, es.header()), []byte(`{"jti":1,"htm":["POST"],"htu":null,"iat":"1"}`)),
	} {
		f.Add(s)
	}
	for _, p := range loadVectors(f).Proofs {
		f.Add(p.Proof)
	}
	v := newTestVerifier(f, func(o *VerifierOptions) { o.KeyCacheSize = 16 })
	f.Fuzz(func(t *testing.T, proof string) {
		p, err := v.Verify(bg, tokenRequest(proof))
		if err != nil {
			var e *Error
			if !errors.As(err, &e) || p != nil || e.Code != CodeInvalidProof || e.Err == nil {
				t.Fatalf("refusal %#v, %v", p, err)
			}
			return
		}
		if p.HTM != "POST" || !EqualHTU(p.HTU, testHTU) || p.JKT == "" || p.JTI == "" ||
			p.IAT.Before(testNow.Add(-DefaultMaxAge)) || p.IAT.After(testNow.Add(DefaultLeeway)) ||
			len(proof) > DefaultMaxProofSize || strings.Count(proof, ".") != 2 {
			t.Fatalf("accepted a proof that does not match: %+v", p)
		}
		if _, err := v.Verify(bg, tokenRequest(proof)); !errors.Is(err, ErrReplay) {
			t.Fatalf("second use: %v", err)
		}
	})
}
