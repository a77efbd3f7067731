package jose

import (
	"crypto"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"encoding/json"
	"errors"
	"testing"
)

// FuzzParseAssertion: whatever a client_assertion parameter holds,
// ParseAssertion answers without panicking within the size bound, what it
// accepts has exact-typed claims, and Verify never accepts a signature made
// by another key than the one it is given.
func FuzzParseAssertion(f *testing.F) {
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		f.Fatal(err)
	}
	other, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		f.Fatal(err)
	}
	spec, _ := Lookup("ES256")
	mk := func(header, claims string) string {
		in := B64.EncodeToString([]byte(header)) + "." + B64.EncodeToString([]byte(claims))
		sig, err := Sign(spec, key, in)
		if err != nil {
			f.Fatal(err)
		}
		return in + "." + B64.EncodeToString(sig)
	}
	for _, s := range []string{
		mk(`{"alg":"ES256","kid":"k"}`, `{"iss":"c","sub":"c","aud":"https://as.example","exp":4102444800,"jti":"j"}`),
		mk(`{"alg":"ES256","typ":"client-authentication+jwt"}`, `{"iss":"c","sub":"c","aud":["a"],"exp":1,"iat":0,"jti":"j"}`),
		mk(`{"alg":"ES256","typ":"at+jwt"}`, `{}`),
		mk(`{"alg":"ES256","crit":["x"]}`, `{}`),
		mk(`{"alg":"ES256"}`, `{"aud":1}`),
		"a.b.c", "..", "", "eyJhbGciOiJub25lIn0.e30.",
	} {
		f.Add(s)
	}
	allowed := map[string]Spec{"ES256": spec}
	f.Fuzz(func(t *testing.T, token string) {
		a, err := ParseAssertion(token)
		if err != nil {
			if len(token) > MaxJWTBytes && !errors.Is(err, ErrSize) {
				t.Fatalf("oversized token: %v", err)
			}
			return
		}
		if !AssertionType(a.Header.Typ) || len(a.Claims.Audience) > 1 && !a.Claims.AudienceArray {
			t.Fatalf("accepted header %+v claims %+v", a.Header, a.Claims)
		}
		if _, err := json.Marshal(a.Claims); err != nil {
			t.Fatal(err)
		}
		// A signature never verifies under a key that did not make it.
		if a.Verify(allowed, func(string, Spec) (crypto.PublicKey, error) { return &other.PublicKey, nil }) == nil {
			t.Fatalf("verified with another key: %q", token)
		}
	})
}
