package dpop

import (
	"crypto/ecdsa"
	"errors"
	"strings"
	"testing"

	"github.com/lestrrat-go/jwx/v2/jwk"
)

// TestThumbprintUnconvertibleKey checks that a value jwx cannot turn into a
// JWK is refused with the reason of that conversion, not with a later
// symptom of having no key.
func TestThumbprintUnconvertibleKey(t *testing.T) {
	for _, v := range []any{nil, "key", 42, &ecdsa.PublicKey{}} {
		_, convErr := jwk.FromRaw(v)
		if convErr == nil {
			t.Fatalf("jwk.FromRaw(%T) succeeded; the case tests nothing", v)
		}
		got, err := Thumbprint(v)
		if err == nil || got != "" {
			t.Errorf("Thumbprint(%T) = %q, %v; want an error", v, got, err)
			continue
		}
		if want := "dpop: thumbprint: " + convErr.Error(); err.Error() != want {
			t.Errorf("Thumbprint(%T) error = %q, want %q", v, err, want)
		}
	}
}

// failingPublicKey is a jwk.Key whose public part cannot be had.
type failingPublicKey struct{ jwk.Key }

var errNoPublicPart = errors.New("no public part")

func (failingPublicKey) PublicKey() (jwk.Key, error) { return nil, errNoPublicPart }

// TestThumbprintPublicKeyFailure checks that a jwk.Key whose public part
// cannot be derived makes Thumbprint fail with that cause, without a panic.
func TestThumbprintPublicKeyFailure(t *testing.T) {
	k, err := jwk.FromRaw(testP256())
	if err != nil {
		t.Fatal(err)
	}
	got, err := Thumbprint(failingPublicKey{k})
	if !errors.Is(err, errNoPublicPart) || got != "" {
		t.Errorf("Thumbprint = %q, %v; want an error wrapping %v", got, err, errNoPublicPart)
	}
}

// TestThumbprintUnknownCurve checks that a parsed JWK whose thumbprint jwx
// cannot compute (an EC key on a curve it does not know) is refused, not
// given an empty thumbprint.
func TestThumbprintUnknownCurve(t *testing.T) {
	k, err := jwk.ParseKey([]byte(`{"kty":"EC","crv":"P-999","x":"AQ","y":"AQ"}`))
	if err != nil {
		t.Fatal(err)
	}
	got, err := Thumbprint(k)
	if err == nil || got != "" {
		t.Fatalf("Thumbprint = %q, %v; want an error", got, err)
	}
	if !strings.HasPrefix(err.Error(), "dpop: thumbprint: ") {
		t.Errorf("Thumbprint error = %q", err)
	}
}

// TestThumbprintPrivateKeyIsPublic checks that a private key, raw or as a
// jwk.Key, has the thumbprint of its public part (RFC 7638 §3).
func TestThumbprintPrivateKeyIsPublic(t *testing.T) {
	want, err := Thumbprint(testP256().Public())
	if err != nil {
		t.Fatal(err)
	}
	privJWK, err := jwk.FromRaw(testP256())
	if err != nil {
		t.Fatal(err)
	}
	for _, v := range []any{testP256(), privJWK} {
		if got, err := Thumbprint(v); err != nil || got != want {
			t.Errorf("Thumbprint(%T) = %q, %v; want %q", v, got, err, want)
		}
	}
}

// TestThumbprintRefusesSymmetricKeys: a secret has no public part, so it has
// no thumbprint to bind to; hashing it would publish a hash of the secret.
func TestThumbprintRefusesSymmetricKeys(t *testing.T) {
	secret := []byte("0123456789abcdef0123456789abcdef")
	oct, err := jwk.FromRaw(secret)
	if err != nil {
		t.Fatal(err)
	}
	for name, key := range map[string]any{"raw secret": secret, "oct JWK": oct} {
		if jkt, err := Thumbprint(key); err == nil || jkt != "" {
			t.Errorf("%s: Thumbprint = %q, %v; want a refusal", name, jkt, err)
		}
	}
}
