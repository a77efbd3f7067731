package middleware

import (
	"context"
	"errors"
	"strings"
	"testing"
	"time"

	"github.com/dpopkit/dpop/handlers"
	"github.com/lestrrat-go/jwx/v2/jwk"
)

// Each invalid JWTOptions is refused by NewJWTValidator with its own error,
// whatever the other options (cache on or off, sizes given or not).
func TestNewJWTValidatorOptionErrorsGaps(t *testing.T) {
	as := newJWTTestAS(t)
	keys := as.publicKeys(t)
	jwks := as.ts.URL + handlers.DefaultPaths.JWKS
	const (
		issuer   = "middleware: JWTOptions.Issuer is required"
		negative = "middleware: JWTOptions.Leeway, CacheSize and CacheTTL must not be negative"
		oneOf    = "middleware: set exactly one of JWTOptions.Keys and JWTOptions.JWKSURL"
		insecure = "middleware: JWTOptions.JWKSURL must be an https URL (http only on a loopback address)"
	)
	tests := []struct {
		name string
		opts JWTOptions
		want string
	}{
		{"no issuer", JWTOptions{Keys: keys}, issuer},
		{"no issuer, cache off", JWTOptions{Keys: keys, DisableCache: true}, issuer},
		{"no issuer, cache size given", JWTOptions{Keys: keys, CacheSize: 8}, issuer},
		{"negative leeway", JWTOptions{Issuer: "i", Keys: keys, Leeway: -time.Second}, negative},
		{"negative leeway, cache off", JWTOptions{Issuer: "i", Keys: keys, Leeway: -time.Second, DisableCache: true}, negative},
		{"negative cache TTL, cache size given", JWTOptions{Issuer: "i", Keys: keys, CacheSize: 8, CacheTTL: -time.Second}, negative},
		{"negative cache size", JWTOptions{Issuer: "i", Keys: keys, CacheSize: -1}, negative},
		{"neither keys nor URL", JWTOptions{Issuer: "i", DisableCache: true}, oneOf},
		{"empty key set", JWTOptions{Issuer: "i", Keys: jwk.NewSet(), DisableCache: true}, oneOf},
		{"both keys and URL", JWTOptions{Issuer: "i", Keys: keys, JWKSURL: jwks, CacheSize: 8}, oneOf},
		{"http URL not on loopback", JWTOptions{Issuer: "i", JWKSURL: "http://as.example/jwks"}, insecure},
		{"http URL on a private IP, cache off", JWTOptions{Issuer: "i", JWKSURL: "http://10.0.0.1/jwks", DisableCache: true}, insecure},
		{"URL with user info, cache size given", JWTOptions{Issuer: "i", JWKSURL: "https://u:p@127.0.0.1/jwks", CacheSize: 8}, insecure},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			v, err := NewJWTValidator(t.Context(), tt.opts)
			if err == nil || err.Error() != tt.want || v != nil {
				t.Errorf("NewJWTValidator = %v, %v; want the error %q", v, err, tt.want)
			}
		})
	}
}

// A nil *JWTValidator answers ErrValidatorUnavailable (the middleware's
// 503), never a principal and never a panic.
func TestJWTValidatorNilGaps(t *testing.T) {
	var v *JWTValidator
	p, err := v.Validate(context.Background(), "token")
	if p != nil || !errors.Is(err, ErrValidatorUnavailable) || errors.Is(err, ErrInvalidToken) || !strings.Contains(err.Error(), "jwt: no validator") {
		t.Fatalf("Validate = %v, %v; want ErrValidatorUnavailable", p, err)
	}
}

// With JWKSURL, a nil context is refused (it would bound the key cache's
// life); with Keys none is needed.
func TestNewJWTValidatorNilContextGaps(t *testing.T) {
	as := newJWTTestAS(t)
	var nilCtx context.Context
	v, err := NewJWTValidator(nilCtx, JWTOptions{Issuer: as.ts.URL, JWKSURL: as.ts.URL + handlers.DefaultPaths.JWKS})
	if v != nil || err == nil || err.Error() != "middleware: NewJWTValidator needs a context with JWKSURL" {
		t.Fatalf("NewJWTValidator(nil, JWKSURL) = %v, %v", v, err)
	}
	if v, err := NewJWTValidator(nilCtx, JWTOptions{Issuer: as.ts.URL, Keys: as.publicKeys(t)}); v == nil || err != nil {
		t.Fatalf("NewJWTValidator(nil, Keys) = %v, %v", v, err)
	}
}
