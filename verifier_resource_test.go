package dpop

import (
	"encoding/json"
	"errors"
	"os"
	"strings"
	"testing"
	"time"

	"github.com/lestrrat-go/jwx/v2/jwk"
)

// Checklist 1.10: at a resource, ath matches the access token and the
// proof's key thumbprint is what the token is bound to.
func TestCheck10ATHAndJKT(t *testing.T) {
	v := newTestVerifier(t, nil)
	es := newTestKey(t, ES256)
	const token = "Kz~8mXK1EalYznwH-LC-1fBAo.4Ljp~zsPE_NeO.gxU"
	resource := func(edit func(c map[string]any)) Request {
		c := defaultClaims()
		c["htm"], c["htu"], c["ath"] = "GET", "https://server.example.com/api", ATH(token)
		if edit != nil {
			edit(c)
		}
		return Request{Method: "GET", URL: "https://server.example.com/api", Proofs: []string{es.sign(t, es.header(), c)}, AccessToken: token}
	}
	p, err := v.Verify(bg, resource(nil))
	if err != nil {
		t.Fatal(err)
	}
	jkt, _ := Thumbprint(es.priv.Public())
	if p.ATH != ATH(token) || p.JKT != jkt {
		t.Fatalf("proof %+v", p)
	}
	for _, tc := range []struct {
		name string
		edit func(c map[string]any)
	}{
		{"ath missing", func(c map[string]any) { delete(c, "ath") }},
		{"ath of another token", func(c map[string]any) { c["ath"] = ATH(token + "x") }},
		{"ath of the token itself", func(c map[string]any) { c["ath"] = token }},
		{"ath padded", func(c map[string]any) { c["ath"] = ATH(token) + "=" }},
		{"ath empty", func(c map[string]any) { c["ath"] = "" }},
	} {
		t.Run(tc.name, func(t *testing.T) {
			p, err := v.Verify(bg, resource(tc.edit))
			wantRefused(t, p, err, CodeInvalidProof, ErrATH)
		})
	}
	t.Run("ath is not required at a token endpoint", func(t *testing.T) {
		if _, err := v.Verify(bg, tokenRequest(es.proof(t, func(c map[string]any) { c["ath"] = "whatever" }))); err != nil {
			t.Fatal(err)
		}
	})
}

// Checklist 1.11: hostile inputs end in refusal, without panics, and cost
// time and memory linear in their (bounded) size.
func TestCheck11HostileInputs(t *testing.T) {
	v := newTestVerifier(t, nil)
	es := newTestKey(t, ES256)
	deep := strings.Repeat("[", 3000) + strings.Repeat("]", 3000)
	cases := map[string]string{
		"deeply nested header":      enc([]byte(`{"typ":"dpop+jwt","x":`+deep+`}`)) + ".e30.AA",
		"deeply nested claims":      es.signRaw(t, mustJSON(t, es.header()), []byte(`{"x":`+deep+`}`)),
		"many header members":       enc([]byte(`{`+strings.Repeat(`"a":1,`, 900)+`"typ":"dpop+jwt"}`)) + ".e30.AA",
		"huge number":               es.signRaw(t, mustJSON(t, es.header()), []byte(`{"iat":`+strings.Repeat("9", 4000)+`}`)),
		"invalid UTF-8 in claims":   es.signRaw(t, mustJSON(t, es.header()), []byte("{\"jti\":\"\xff\xfe\",\"htm\":\"POST\",\"htu\":\""+testHTU+"\",\"iat\":1}")),
		"NUL bytes":                 "\x00.\x00.\x00",
		"dots only":                 "..",
		"unicode dots":              "a。b。c",
		"huge RSA modulus":          hugeRSAProof(t),
		"escaped jwk member names":  enc([]byte(`{"typ":"dpop+jwt","alg":"ES256","jwk":{"kty":"EC","\u0064":"AA","crv":"P-256"}}`)) + ".e30.AA",
		"jwk nested in jwk":         enc([]byte(`{"typ":"dpop+jwt","alg":"ES256","jwk":{"jwk":{"kty":"EC"}}}`)) + ".e30.AA",
		"header is a JSON string":   enc([]byte(`"dpop+jwt"`)) + ".e30.AA",
		"header is null":            enc([]byte(`null`)) + ".e30.AA",
		"trailing data after JSON":  enc([]byte(`{"typ":"dpop+jwt"}{}`)) + ".e30.AA",
		"long header, bad base64":   strings.Repeat("!", DefaultMaxProofSize-10) + ".e30.AA",
		"exactly at the size limit": strings.Repeat("A", DefaultMaxProofSize-6) + ".e30.A",
	}
	for name, proof := range cases {
		t.Run(name, func(t *testing.T) {
			p, err := v.Verify(bg, tokenRequest(proof))
			var e *Error
			if err == nil || !errors.As(err, &e) || e.Code != CodeInvalidProof || p != nil {
				t.Fatalf("got %v, %v", p, err)
			}
			if len(e.Description) > 80 || strings.ContainsAny(e.Description, "\x00{\"") {
				t.Errorf("description %q echoes input or is long", e.Description)
			}
		})
	}
}

// hugeRSAProof is a proof whose jwk has a 12,000-bit modulus: refused before
// any signature work.
func hugeRSAProof(t *testing.T) string {
	n := make([]byte, 1500)
	n[0] = 0xc5
	n[len(n)-1] = 1
	h := map[string]any{"typ": "dpop+jwt", "alg": RS256, "jwk": map[string]any{"kty": "RSA", "n": enc(n), "e": "AQAB"}}
	return enc(mustJSON(t, h)) + "." + enc(mustJSON(t, defaultClaims())) + "." + enc(n)
}

type rfcVectors struct {
	ExampleJWK map[string]any `json:"example_public_jwk"`
	ExampleJKT string         `json:"example_jkt"`
	Proofs     []rfcProof     `json:"proofs"`
	RFC7638    struct {
		JWK        map[string]any `json:"jwk"`
		Thumbprint string         `json:"thumbprint_sha256"`
	} `json:"rfc7638_example"`
	AccessJWT struct {
		CnfJKT string `json:"cnf_jkt"`
	} `json:"jwt_access_token_example"`
}

type rfcProof struct {
	Name, HTM, HTU, JTI, Proof, ATH string
	AccessToken                     string `json:"access_token"`
	IAT                             int64
}

func loadVectors(t testing.TB) rfcVectors {
	t.Helper()
	b, err := os.ReadFile("testdata/rfc9449-vectors.json")
	if err != nil {
		t.Fatal(err)
	}
	var v rfcVectors
	if err := json.Unmarshal(b, &v); err != nil {
		t.Fatal(err)
	}
	if len(v.Proofs) != 3 {
		t.Fatalf("vectors: %d proofs", len(v.Proofs))
	}
	return v
}

// The RFC 9449 example proofs verify with an injected clock and are stale
// with the real one; the published thumbprints and ath come out.
func TestRFC9449Vectors(t *testing.T) {
	vec := loadVectors(t)
	for _, pr := range vec.Proofs {
		t.Run(pr.Name, func(t *testing.T) {
			req := Request{Method: pr.HTM, URL: pr.HTU, Proofs: []string{pr.Proof}, AccessToken: pr.AccessToken}
			at := func(now time.Time) *Verifier {
				return newTestVerifier(t, func(o *VerifierOptions) { o.Now = func() time.Time { return now } })
			}
			p, err := at(time.Unix(pr.IAT, 0).Add(5*time.Second)).Verify(bg, req)
			if err != nil {
				t.Fatal(err)
			}
			if p.JTI != pr.JTI || p.JKT != vec.ExampleJKT || p.Algorithm != ES256 || p.IAT.Unix() != pr.IAT || p.ATH != pr.ATH {
				t.Errorf("proof %+v", p)
			}
			got, err := newTestVerifier(t, func(o *VerifierOptions) { o.Now = time.Now }).Verify(bg, req)
			wantRefused(t, got, err, CodeInvalidProof, ErrStale)
		})
	}
	t.Run("RFC 7638 thumbprint", func(t *testing.T) {
		b, _ := json.Marshal(vec.RFC7638.JWK)
		k, err := jwk.ParseKey(b)
		if err != nil {
			t.Fatal(err)
		}
		if got, _ := Thumbprint(k); got != vec.RFC7638.Thumbprint {
			t.Errorf("thumbprint %s, want %s", got, vec.RFC7638.Thumbprint)
		}
	})
	t.Run("Figure 13 ath", func(t *testing.T) {
		if got := ATH(vec.Proofs[2].AccessToken); got != vec.Proofs[2].ATH || got != "fUHyO2r2Z3DZ53EsNrWBb0xWXoaNy59IiKCAqksmQEo" {
			t.Errorf("ath %s", got)
		}
	})
	t.Run("Figure 9 cnf.jkt is the proof key's thumbprint", func(t *testing.T) {
		if vec.AccessJWT.CnfJKT != vec.ExampleJKT {
			t.Errorf("cnf.jkt %s", vec.AccessJWT.CnfJKT)
		}
	})
	t.Run("refreshed proof reuses the jti: a replay within the window", func(t *testing.T) {
		v := newTestVerifier(t, func(o *VerifierOptions) {
			o.MaxAge = time.Hour
			o.Now = func() time.Time { return time.Unix(vec.Proofs[1].IAT, 0) }
		})
		// Figure 2's proof at iat 1562262616 is 44 minutes older than the
		// refresh proof of Figure 7; with a one-hour window both are fresh,
		// and the second, with the same key and jti, is a replay.
		first := vec.Proofs[0]
		if _, err := v.Verify(bg, Request{Method: "POST", URL: first.HTU, Proofs: []string{first.Proof}}); err != nil {
			t.Fatal(err)
		}
		second := vec.Proofs[1]
		p, err := v.Verify(bg, Request{Method: "POST", URL: second.HTU, Proofs: []string{second.Proof}})
		wantRefused(t, p, err, CodeInvalidProof, ErrReplay)
	})
}

// A proof by another key than the token's binding is refused before the
// signature check and takes no place in the replay cache: a holder of a
// stolen token cannot fill the cache with proofs of its own key.
func TestVerifyBoundJKT(t *testing.T) {
	cache := mustMemoryCache(t, 16)
	v := newTestVerifier(t, func(o *VerifierOptions) { o.ReplayCache = cache })
	owner, thief := newTestKey(t, ES256), namedTestKey(t, "thief", ES256)
	ownerJKT, _ := Thumbprint(owner.priv.Public())
	const token = "stolen-token"
	req := func(k *testKey) Request {
		c := defaultClaims()
		c["htm"], c["htu"], c["ath"] = "GET", "https://server.example.com/api", ATH(token)
		return Request{Method: "GET", URL: "https://server.example.com/api", Proofs: []string{k.sign(t, k.header(), c)}, AccessToken: token, BoundJKT: ownerJKT}
	}
	for range 20 {
		p, err := v.Verify(bg, req(thief))
		wantRefused(t, p, err, CodeInvalidProof, ErrKeyMismatch)
	}
	if cache.Len() != 0 {
		t.Fatalf("refused proofs took %d replay entries", cache.Len())
	}
	if _, err := v.Verify(bg, req(owner)); err != nil {
		t.Fatal(err)
	}
}
