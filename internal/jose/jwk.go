package jose

import (
	"crypto"
	"errors"
	"fmt"
	"slices"

	"github.com/lestrrat-go/jwx/v2/jwa"
	"github.com/lestrrat-go/jwx/v2/jwk"
)

// Refusals of a key of a JWK Set (RFC 7517 §5) for a token.
var (
	ErrUnknownKid   = errors.New("unknown kid")
	ErrAmbiguousKid = errors.New("ambiguous kid")
	ErrKeyFit       = errors.New("key does not fit alg")
)

// KeyFor checks that the JWK k may be used with spec for op (sign or
// verify) and returns its public key: its own alg, when present, is spec's
// (RFC 7517 §4.4), its use, when present, is "sig" (§4.2), its key_ops,
// when present, include op (§4.3), and its public key passes
// CheckPublicKey. The error wraps ErrKeyFit and says what does not fit.
func KeyFor(k jwk.Key, spec Spec, op jwk.KeyOperation) (crypto.PublicKey, error) {
	if a := k.Algorithm().String(); a != "" && a != spec.Name {
		return nil, fmt.Errorf("%w: the key's alg is %q, not %s", ErrKeyFit, a, spec.Name)
	}
	if use := k.KeyUsage(); use != "" && use != string(jwk.ForSignature) {
		return nil, fmt.Errorf("%w: the key's use is %q, not sig", ErrKeyFit, use)
	}
	if ops := k.KeyOps(); len(ops) > 0 && !slices.Contains(ops, op) {
		return nil, fmt.Errorf("%w: the key's key_ops lack %s", ErrKeyFit, op)
	}
	if k.KeyType() == jwa.OctetSeq {
		return nil, fmt.Errorf("%w: a symmetric key", ErrKeyFit)
	}
	var raw any
	if err := k.Raw(&raw); err != nil {
		return nil, fmt.Errorf("%w: %w", ErrKeyFit, err)
	}
	pub := raw
	if s, ok := raw.(crypto.Signer); ok {
		pub = s.Public()
	}
	if err := CheckPublicKey(spec, pub); err != nil {
		return nil, fmt.Errorf("%w: %w", ErrKeyFit, KeyProblem(spec, pub, err))
	}
	return pub, nil
}

// PickKey returns the public key of the one signature key of set whose kid
// is kid, if it fits spec for verifying (KeyFor). Keys with use "enc" are
// not candidates; two candidates with the same kid are ambiguous and
// refused rather than tried in turn (ErrAmbiguousKid); none is
// ErrUnknownKid; a key that does not fit is ErrKeyFit, unwrapped.
func PickKey(set jwk.Set, kid string, spec Spec) (crypto.PublicKey, error) {
	var found jwk.Key
	n := 0
	for i := range set.Len() {
		k, ok := set.Key(i)
		if !ok || k.KeyID() != kid || k.KeyUsage() == string(jwk.ForEncryption) {
			continue
		}
		found = k
		n++
	}
	switch {
	case n == 0:
		return nil, ErrUnknownKid
	case n > 1:
		return nil, ErrAmbiguousKid
	}
	pub, err := KeyFor(found, spec, jwk.KeyOpVerify)
	if err != nil {
		return nil, ErrKeyFit
	}
	return pub, nil
}

// SigningKey checks a private JWK for signing JWT access tokens and returns
// its algorithm and signer: a kid (RFC 7515 §4.1.4, needed to pick the key
// from the JWKS), an alg of the profile (RFC 9068 §2.1; "none", the HMAC
// algorithms and unknown names are refused), a private asymmetric key, and
// KeyFor(sign). The error names the problem.
func SigningKey(k jwk.Key) (Spec, crypto.Signer, error) {
	if k.KeyID() == "" {
		return Spec{}, nil, errors.New("the key needs a kid")
	}
	alg := k.Algorithm().String()
	if alg == "" {
		return Spec{}, nil, errors.New("the key needs an alg")
	}
	spec, ok := Lookup(alg)
	if !ok {
		return Spec{}, nil, fmt.Errorf("alg %q is not allowed (asymmetric JWS algorithms only: %v)", alg, names)
	}
	if k.KeyType() == jwa.OctetSeq {
		return Spec{}, nil, errors.New("symmetric keys cannot sign access tokens")
	}
	if private, err := jwk.IsPrivateKey(k); err != nil || !private {
		return Spec{}, nil, errors.New("the key must be a private key")
	}
	if _, err := KeyFor(k, spec, jwk.KeyOpSign); err != nil {
		return Spec{}, nil, err
	}
	var raw any
	if err := k.Raw(&raw); err != nil {
		return Spec{}, nil, err
	}
	signer, ok := raw.(crypto.Signer)
	if !ok {
		return Spec{}, nil, fmt.Errorf("a %T cannot sign", raw)
	}
	return spec, signer, nil
}
