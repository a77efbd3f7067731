package dpop

import (
	"crypto"
	"crypto/sha256"
	"crypto/subtle"
	"encoding/base64"
	"errors"
	"fmt"

	"github.com/lestrrat-go/jwx/v2/jwa"
	"github.com/lestrrat-go/jwx/v2/jwk"
)

// Thumbprint returns the JWK SHA-256 thumbprint (RFC 7638 §3) of a public key,
// base64url-encoded without padding: the `jkt` value that DPoP binds access
// tokens to (RFC 9449 §6.1). pub is an *ecdsa.PublicKey, ed25519.PublicKey,
// *rsa.PublicKey or a jwk.Key; a private key is reduced to its public part.
// A symmetric key ([]byte, an "oct" JWK) is refused.
func Thumbprint(pub any) (string, error) {
	k, ok := pub.(jwk.Key)
	if !ok {
		var err error
		if k, err = jwk.FromRaw(pub); err != nil {
			return "", fmt.Errorf("dpop: thumbprint: %w", err)
		}
	}
	if k.KeyType() == jwa.OctetSeq {
		// A symmetric key has no public part: its thumbprint would be a
		// hash of the secret, and no DPoP key is symmetric (RFC 9449 §4.2).
		return "", errors.New("dpop: thumbprint: symmetric key")
	}
	k, err := jwk.PublicKeyOf(k)
	if err != nil {
		return "", fmt.Errorf("dpop: thumbprint: %w", err)
	}
	sum, err := k.Thumbprint(crypto.SHA256)
	if err != nil {
		return "", fmt.Errorf("dpop: thumbprint: %w", err)
	}
	return base64.RawURLEncoding.EncodeToString(sum), nil
}

// ATH returns the `ath` claim for an access token: the base64url encoding,
// without padding, of the SHA-256 hash of the token's ASCII bytes
// (RFC 9449 §4.2).
func ATH(accessToken string) string {
	sum := sha256.Sum256([]byte(accessToken))
	return base64.RawURLEncoding.EncodeToString(sum[:])
}

// equalConstantTime compares two strings in time that depends only on their
// lengths.
func equalConstantTime(a, b string) bool {
	return subtle.ConstantTimeCompare([]byte(a), []byte(b)) == 1
}
