package middleware

import (
	"errors"
	"strings"
	"testing"
	"time"

	"github.com/dpopkit/dpop/internal/jose"
)

// FuzzIntrospectionAnswer: whatever JSON an introspection endpoint answers
// (RFC 7662 §2.2), reading it never panics, a refusal wraps ErrInvalidToken,
// and what is accepted said "active": true, expires in the future, is an
// access token whose binding matches its type (RFC 9449 §6.2), and hands the
// host no registered claim.
func FuzzIntrospectionAnswer(f *testing.F) {
	for _, s := range []string{
		`{"active":true,"exp":4102444800,"token_type":"DPoP","cnf":{"jkt":"abc"},"aud":"https://api.example","sub":"a","scope":"read"}`,
		`{"active":true,"exp":4102444800,"token_type":"Bearer","aud":["x","y"],"tenant":"t","roles":["r"]}`,
		`{"active":false}`, `{"active":"true"}`, `{"active":true,"active":true}`,
		`{"active":true,"exp":1,"token_type":"DPoP","cnf":{"jkt":"a"}}`,
		`{"active":true,"exp":4102444800,"token_type":"DPoP","cnf":{"jkt":"a","x5t#S256":"b"}}`,
		`{"active":true,"exp":4102444800,"token_type":"Bearer","aud":[1]}`, `[]`, `null`, ``,
	} {
		f.Add([]byte(s))
	}
	v := &IntrospectionValidator{}
	now := time.Unix(2_000_000_000, 0)
	f.Fuzz(func(t *testing.T, data []byte) {
		m, err := jose.ParseObject(data)
		if err != nil {
			return
		}
		p, inactive, err := v.principal(m, now)
		if err != nil {
			if !errors.Is(err, ErrInvalidToken) {
				t.Fatalf("%s: refusal %v does not wrap ErrInvalidToken", data, err)
			}
			if inactive && !errors.Is(err, ErrTokenInactive) {
				t.Fatalf("%s: inactive with %v", data, err)
			}
			return
		}
		if active, _, _ := m.BoolMember("active"); !active || !now.Before(p.ExpiresAt) {
			t.Fatalf("%s: accepted, active %v, exp %v", data, active, p.ExpiresAt)
		}
		switch typ, _ := m.StringMember("token_type"); {
		case strings.EqualFold(typ, "DPoP") && p.JKT != "":
		case strings.EqualFold(typ, "Bearer") && p.JKT == "":
		default:
			t.Fatalf("%s: accepted token_type %q with jkt %q", data, typ, p.JKT)
		}
		for name := range p.Claims {
			if jose.Registered(name) {
				t.Fatalf("%s: registered claim %q handed to the host", data, name)
			}
		}
	})
}
