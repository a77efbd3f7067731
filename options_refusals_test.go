package dpop

import (
	"errors"
	"testing"
	"time"
)

// fullOptions is a valid configuration with every field set explicitly, so
// that a refusal below can only come from the check of the one field a case
// changes: were that check to let the option through, nothing left at its
// zero value (KeyCacheSize, Algorithms, ...) would make NewVerifier fail for
// another reason.
func fullOptions() VerifierOptions {
	return VerifierOptions{
		BaseURL:      testBase,
		Algorithms:   []string{ES256},
		MaxAge:       time.Minute,
		Leeway:       10 * time.Second,
		Now:          func() time.Time { return testNow },
		MaxProofSize: 1024,
		MaxJTILength: 64,
		KeyCacheSize: 16,
		Quota:        Quota{PerClient: 10, PerGrant: 5, MaxParties: 100},
	}
}

// Each invalid option is refused by NewVerifier with its own error, naming
// what is wrong, and no verifier.
func TestNewVerifierRefusesEachInvalidOption(t *testing.T) {
	if _, err := NewVerifier(fullOptions()); err != nil {
		t.Fatalf("the base configuration is refused: %v", err)
	}
	tests := []struct {
		name  string
		edit  func(o *VerifierOptions)
		want  string
		cause error // when the error wraps one
	}{
		{"no BaseURL", func(o *VerifierOptions) { o.BaseURL = "" },
			"dpop: VerifierOptions.BaseURL is required", nil},
		{"relative BaseURL", func(o *VerifierOptions) { o.BaseURL = "/api" },
			"dpop: VerifierOptions.BaseURL: " + errHTUNoScheme.Error(), errHTUNoScheme},
		{"ftp BaseURL", func(o *VerifierOptions) { o.BaseURL = "ftp://example.com" },
			"dpop: VerifierOptions.BaseURL: " + errHTUScheme.Error(), errHTUScheme},
		{"BaseURL with query", func(o *VerifierOptions) { o.BaseURL = "https://example.com/?a=b" },
			"dpop: VerifierOptions.BaseURL must not have a query or fragment", nil},
		{"BaseURL with fragment", func(o *VerifierOptions) { o.BaseURL = "https://example.com/#x" },
			"dpop: VerifierOptions.BaseURL must not have a query or fragment", nil},
		{"alg none", func(o *VerifierOptions) { o.Algorithms = []string{"none"} },
			`dpop: algorithm "none" is not supported (asymmetric JWS algorithms only)`, nil},
		{"alg HS256 after a good one", func(o *VerifierOptions) { o.Algorithms = []string{ES256, "HS256"} },
			`dpop: algorithm "HS256" is not supported (asymmetric JWS algorithms only)`, nil},
		{"alg in the wrong case", func(o *VerifierOptions) { o.Algorithms = []string{"es256"} },
			`dpop: algorithm "es256" is not supported (asymmetric JWS algorithms only)`, nil},
		{"negative MaxAge", func(o *VerifierOptions) { o.MaxAge = -time.Second },
			"dpop: negative MaxAge or Leeway", nil},
		{"negative Leeway", func(o *VerifierOptions) { o.Leeway = -time.Nanosecond },
			"dpop: negative MaxAge or Leeway", nil},
		{"MaxAge above an hour", func(o *VerifierOptions) { o.MaxAge = time.Hour + time.Nanosecond },
			"dpop: MaxAge above one hour", nil},
		{"Leeway above MaxAge", func(o *VerifierOptions) { o.MaxAge = time.Second; o.Leeway = time.Second + 1 },
			"dpop: Leeway above MaxAge", nil},
		{"Leeway above the default MaxAge", func(o *VerifierOptions) { o.MaxAge = 0; o.Leeway = DefaultMaxAge + 1 },
			"dpop: Leeway above MaxAge", nil},
		{"negative MaxProofSize", func(o *VerifierOptions) { o.MaxProofSize = -1 },
			"dpop: negative size limit", nil},
		{"negative MaxJTILength", func(o *VerifierOptions) { o.MaxJTILength = -1 },
			"dpop: negative size limit", nil},
		{"negative KeyCacheSize", func(o *VerifierOptions) { o.KeyCacheSize = -1 },
			"dpop: negative size limit", nil},
		{"MaxProofSize below 512", func(o *VerifierOptions) { o.MaxProofSize = 511 },
			"dpop: MaxProofSize below 512 bytes", nil},
		{"MaxJTILength below 16", func(o *VerifierOptions) { o.MaxJTILength = 15 },
			"dpop: MaxJTILength below 16 bytes", nil},
		{"negative Quota.MaxParties", func(o *VerifierOptions) { o.Quota.MaxParties = -1 },
			"dpop: negative Quota.MaxParties", nil},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			o := fullOptions()
			tc.edit(&o)
			v, err := NewVerifier(o)
			if err == nil {
				t.Fatalf("accepted (BaseURL %q, MaxAge %v, Leeway %v, sizes %d/%d/%d)", v.opts.BaseURL,
					v.opts.MaxAge, v.opts.Leeway, v.opts.MaxProofSize, v.opts.MaxJTILength, v.opts.KeyCacheSize)
			}
			if v != nil {
				t.Errorf("a verifier was returned with the error %v", err)
			}
			if err.Error() != tc.want {
				t.Errorf("error %q, want %q", err, tc.want)
			}
			if tc.cause != nil && !errors.Is(err, tc.cause) {
				t.Errorf("error %v does not wrap %v", err, tc.cause)
			}
		})
	}
}

// The limits themselves are allowed: the refusals above are not off by one.
func TestNewVerifierAcceptsOptionLimits(t *testing.T) {
	for name, edit := range map[string]func(o *VerifierOptions){
		"MaxAge one hour":     func(o *VerifierOptions) { o.MaxAge = time.Hour },
		"Leeway equal MaxAge": func(o *VerifierOptions) { o.MaxAge = time.Second; o.Leeway = time.Second },
		"MaxProofSize 512":    func(o *VerifierOptions) { o.MaxProofSize = 512 },
		"MaxJTILength 16":     func(o *VerifierOptions) { o.MaxJTILength = 16 },
		"KeyCacheSize 1":      func(o *VerifierOptions) { o.KeyCacheSize = 1 },
		"every algorithm":     func(o *VerifierOptions) { o.Algorithms = append(DefaultAlgorithms(), ES512) },
	} {
		o := fullOptions()
		edit(&o)
		if _, err := NewVerifier(o); err != nil {
			t.Errorf("%s: refused: %v", name, err)
		}
	}
}
