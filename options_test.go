package dpop

import (
	"testing"
	"time"
)

func TestVerifierOptionsRefused(t *testing.T) {
	base := func(edit func(o *VerifierOptions)) VerifierOptions {
		o := VerifierOptions{BaseURL: testBase}
		edit(&o)
		return o
	}
	for name, o := range map[string]VerifierOptions{
		"no BaseURL":            {},
		"relative BaseURL":      base(func(o *VerifierOptions) { o.BaseURL = "/api" }),
		"ftp BaseURL":           base(func(o *VerifierOptions) { o.BaseURL = "ftp://example.com" }),
		"BaseURL with query":    base(func(o *VerifierOptions) { o.BaseURL = "https://example.com/?a=b" }),
		"BaseURL with fragment": base(func(o *VerifierOptions) { o.BaseURL = "https://example.com/#x" }),
		"alg none":              base(func(o *VerifierOptions) { o.Algorithms = []string{"none"} }),
		"alg HS256":             base(func(o *VerifierOptions) { o.Algorithms = []string{ES256, "HS256"} }),
		"unknown alg":           base(func(o *VerifierOptions) { o.Algorithms = []string{"ES256K"} }),
		"negative MaxAge":       base(func(o *VerifierOptions) { o.MaxAge = -time.Second }),
		"MaxAge above an hour":  base(func(o *VerifierOptions) { o.MaxAge = 2 * time.Hour }),
		"Leeway above MaxAge":   base(func(o *VerifierOptions) { o.MaxAge = time.Second; o.Leeway = time.Minute }),
		"tiny MaxProofSize":     base(func(o *VerifierOptions) { o.MaxProofSize = 100 }),
		"tiny MaxJTILength":     base(func(o *VerifierOptions) { o.MaxJTILength = 4 }),
		"negative KeyCacheSize": base(func(o *VerifierOptions) { o.KeyCacheSize = -1 }),
		"negative MaxJTILength": base(func(o *VerifierOptions) { o.MaxJTILength = -1 }),
		"negative MaxProofSize": base(func(o *VerifierOptions) { o.MaxProofSize = -1 }),
		"negative Leeway":       base(func(o *VerifierOptions) { o.Leeway = -1 }),
	} {
		if _, err := NewVerifier(o); err == nil {
			t.Errorf("%s: accepted", name)
		}
	}
}

func TestVerifierOptionsDefaults(t *testing.T) {
	v, err := NewVerifier(VerifierOptions{BaseURL: "HTTPS://API.Example.com:443/"})
	if err != nil {
		t.Fatal(err)
	}
	o := v.opts
	if o.BaseURL != "https://api.example.com" || o.MaxAge != DefaultMaxAge || o.Leeway != DefaultLeeway ||
		o.MaxProofSize != DefaultMaxProofSize || o.MaxJTILength != DefaultMaxJTILength ||
		o.KeyCacheSize != DefaultKeyCacheSize || o.ReplayCache == nil || o.Now == nil || o.Nonces != nil {
		t.Fatalf("defaults %+v", o)
	}
	if got := v.Algorithms(); len(got) != len(DefaultAlgorithms()) {
		t.Fatalf("algorithms %v", got)
	}
	v.Algorithms()[0] = "none" // a copy: the verifier is unaffected
	if v.Algorithms()[0] != ES256 {
		t.Fatal("Algorithms returned internal state")
	}
	if v.BaseURL() != "https://api.example.com" {
		t.Fatal(v.BaseURL())
	}
	short, err := NewVerifier(VerifierOptions{BaseURL: testBase, MaxAge: 5 * time.Second})
	if err != nil || short.opts.Leeway != 5*time.Second {
		t.Fatalf("leeway not capped at MaxAge: %v %v", err, short.opts.Leeway)
	}
}

// Issue 12: the exported default cannot be changed behind other callers'
// backs: each call gives a new slice.
func TestDefaultAlgorithmsIsACopy(t *testing.T) {
	a := DefaultAlgorithms()
	a[0] = "none"
	if b := DefaultAlgorithms(); b[0] != ES256 {
		t.Fatalf("a caller's write changed the default: %v", b)
	}
	v := newTestVerifier(t, nil)
	v.Algorithms()[0] = "none"
	if v.Algorithms()[0] != ES256 {
		t.Fatal("a caller's write changed a verifier's algorithms")
	}
}
