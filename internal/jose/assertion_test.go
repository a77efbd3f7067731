package jose

import (
	"crypto"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"errors"
	"strings"
	"testing"
)

// seg is the base64url of s.
func seg(s string) string { return B64.EncodeToString([]byte(s)) }

// Client assertions: typ, the strict claims set, and the signature over
// the segments as sent.
func TestParseAssertion(t *testing.T) {
	sig := seg("sig")
	for _, tc := range []struct {
		name    string
		header  string
		payload string
		want    error // nil: parsed
		check   func(t *testing.T, a *Assertion)
	}{
		{name: "typ absent", header: `{"alg":"ES256"}`, payload: `{"iss":"c","sub":"c","aud":"https://as","exp":2000000000,"jti":"j"}`,
			check: func(t *testing.T, a *Assertion) {
				c := a.Claims
				if c.Issuer != "c" || c.Subject != "c" || c.JTI != "j" || len(c.Audience) != 1 || c.AudienceArray || c.Expiry.Unix() != 2000000000 {
					t.Fatalf("%+v", c)
				}
			}},
		{name: "typ client-authentication+jwt", header: `{"alg":"ES256","typ":"client-authentication+jwt"}`, payload: `{}`},
		{name: "typ application/client-authentication+jwt", header: `{"alg":"ES256","typ":"application/client-authentication+jwt"}`, payload: `{}`},
		{name: "typ JWT", header: `{"alg":"ES256","typ":"JWT"}`, payload: `{}`},
		{name: "typ at+jwt", header: `{"alg":"ES256","typ":"at+jwt"}`, payload: `{}`, want: ErrAssertionTyp},
		{name: "typ dpop+jwt", header: `{"alg":"ES256","typ":"dpop+jwt"}`, payload: `{}`, want: ErrAssertionTyp},
		{name: "aud one-element array", header: `{"alg":"ES256"}`, payload: `{"aud":["https://as"]}`,
			check: func(t *testing.T, a *Assertion) {
				if !a.Claims.AudienceArray || len(a.Claims.Audience) != 1 {
					t.Fatalf("%+v", a.Claims)
				}
			}},
		{name: "aud a number", header: `{"alg":"ES256"}`, payload: `{"aud":1}`, want: &MemberError{}},
		{name: "iss given twice", header: `{"alg":"ES256"}`, payload: `{"iss":"a","iss":"b"}`, want: &MemberError{}},
		{name: "exp a string", header: `{"alg":"ES256"}`, payload: `{"exp":"2000000000"}`, want: &MemberError{}},
		{name: "jti a number", header: `{"alg":"ES256"}`, payload: `{"jti":7}`, want: &MemberError{}},
		{name: "claims an array", header: `{"alg":"ES256"}`, payload: `[]`, want: ErrClaims},
		{name: "crit", header: `{"alg":"ES256","crit":["x"]}`, payload: `{}`, want: ErrCrit},
		{name: "alg given twice", header: `{"alg":"ES256","alg":"none"}`, payload: `{}`, want: ErrMalformed},
	} {
		t.Run(tc.name, func(t *testing.T) {
			a, err := ParseAssertion(seg(tc.header) + "." + seg(tc.payload) + "." + sig)
			var me *MemberError
			switch {
			case tc.want == nil && err != nil:
				t.Fatal(err)
			case tc.want == nil:
				if tc.check != nil {
					tc.check(t, a)
				}
			case errors.As(tc.want, &me):
				if !errors.As(err, &me) {
					t.Fatalf("got %v, want a *MemberError", err)
				}
			case !errors.Is(err, tc.want):
				t.Fatalf("got %v, want %v", err, tc.want)
			}
		})
	}
	for _, tc := range []struct {
		name, token string
		want        error
	}{
		{"empty", "", ErrSize},
		{"too long", strings.Repeat("a", MaxJWTBytes+1), ErrSize},
		{"two segments", seg("{}") + "." + seg("{}"), ErrCompact},
		{"padding", seg(`{"alg":"ES256"}`) + "=." + seg("{}") + "." + sig, ErrCompact},
	} {
		t.Run(tc.name, func(t *testing.T) {
			if _, err := ParseAssertion(tc.token); !errors.Is(err, tc.want) {
				t.Fatalf("got %v, want %v", err, tc.want)
			}
		})
	}
}

func TestAssertionVerify(t *testing.T) {
	k, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	spec, _ := Lookup("ES256")
	input := seg(`{"alg":"ES256"}`) + "." + seg(`{"sub":"c"}`)
	s, err := Sign(spec, k, input)
	if err != nil {
		t.Fatal(err)
	}
	token := input + "." + B64.EncodeToString(s)
	a, err := ParseAssertion(token)
	if err != nil {
		t.Fatal(err)
	}
	es256, _ := AllowList("test", []string{"ES256"})
	ps256, _ := AllowList("test", []string{"PS256"})
	mine := func(string, Spec) (crypto.PublicKey, error) { return k.Public(), nil }
	if err := a.Verify(es256, mine); err != nil {
		t.Fatal(err)
	}
	if err := a.Verify(ps256, mine); !errors.Is(err, ErrAlgorithm) {
		t.Fatalf("got %v, want ErrAlgorithm", err)
	}
	other, _ := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err := a.Verify(es256, func(string, Spec) (crypto.PublicKey, error) { return other.Public(), nil }); !errors.Is(err, ErrSignature) {
		t.Fatalf("got %v, want ErrSignature", err)
	}
	p384, _ := ecdsa.GenerateKey(elliptic.P384(), rand.Reader)
	if err := a.Verify(es256, func(string, Spec) (crypto.PublicKey, error) { return p384.Public(), nil }); !errors.Is(err, ErrKeyFit) {
		t.Fatalf("got %v, want ErrKeyFit", err)
	}
	if err := a.Verify(es256, func(string, Spec) (crypto.PublicKey, error) { return nil, ErrUnknownKid }); !errors.Is(err, ErrUnknownKid) {
		t.Fatalf("got %v, want ErrUnknownKid", err)
	}
}
