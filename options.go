package dpop

import (
	"errors"
	"fmt"
	"strings"
	"time"

	"github.com/dpopkit/dpop/internal/jose"
)

// JWS algorithms a proof may be signed with (RFC 7518 §3.1, RFC 8037 §3.1,
// RFC 9864 §2.2).
// Only asymmetric algorithms exist here: `none` and the HMAC algorithms can
// never be configured (RFC 9449 §4.3).
const (
	ES256 = "ES256"
	ES384 = "ES384"
	ES512 = "ES512"
	EdDSA = "EdDSA" // with an Ed25519 key (RFC 8037; deprecated by RFC 9864)
	// Ed25519 is the fully-specified name of EdDSA with an Ed25519 key
	// (RFC 9864 §2.2), which current clients such as oauth4webapi send.
	Ed25519 = "Ed25519"
	PS256   = "PS256"
	PS384   = "PS384"
	PS512   = "PS512"
	RS256   = "RS256"
	RS384   = "RS384"
	RS512   = "RS512"
)

// DefaultAlgorithms returns the allow-list used when VerifierOptions.Algorithms is
// empty: the asymmetric algorithms real DPoP clients use whose worst-case
// check costs at most 10× an ES256 check, so that no proof a client chooses
// to send makes the server work much harder than for the common case (RFC
// 9449 §11.6 leaves the choice of acceptable algorithms to the server). It is
// what the handlers advertise as dpop_signing_alg_values_supported and the
// middleware as algs (RFC 9449 §5.1, §7.1).
//
// ES512 (P-521, about 25× an ES256 check) is not in the list; it is still
// supported when listed explicitly in VerifierOptions.Algorithms. RSA keys
// (RS256/384/512, PS256/384/512) must have a modulus of 2048 to 4096 bits
// and the public exponent 65537, with this list or any other (RFC 7518 §3.3,
// NIST SP 800-131A): larger keys or exponents would make a single check
// cost up to about 40× an ES256 one.
//
// Each call returns a new slice, so that no caller can change the default of
// another by writing to it.
func DefaultAlgorithms() []string {
	return []string{ES256, ES384, Ed25519, EdDSA, PS256, PS384, PS512, RS256, RS384, RS512}
}

// Defaults of VerifierOptions.
const (
	DefaultMaxAge       = 60 * time.Second
	DefaultLeeway       = 10 * time.Second
	DefaultMaxProofSize = 8 << 10
	DefaultMaxJTILength = 256
	DefaultKeyCacheSize = 1024
)

// VerifierOptions configures [NewVerifier]. The zero value of every field but
// BaseURL selects the documented default; NewVerifier normalises the options
// once and refuses a configuration that could not be enforced.
type VerifierOptions struct {
	// BaseURL is the public address of the server as clients see it, such as
	// "https://api.example.com". Required. VerifyHTTP builds the expected htu
	// from it and the request path, never from the Host or X-Forwarded-*
	// headers a client controls (RFC 9449 §4.3 check 9). A path in BaseURL is put in front of the request path, for
	// servers mounted under a prefix that a proxy strips.
	BaseURL string

	// Algorithms is the allow-list of JWS algorithms. Default
	// DefaultAlgorithms. Unknown, symmetric and `none` entries are refused.
	Algorithms []string

	// MaxAge is how old a proof's iat may be. Default DefaultMaxAge (60s);
	// at most an hour.
	MaxAge time.Duration
	// Leeway is how far in the future a proof's iat may be, for clients whose
	// clocks run ahead. Default DefaultLeeway (10s); at most MaxAge.
	Leeway time.Duration
	// Now is the clock. Default time.Now.
	Now func() time.Time

	// ReplayCache records accepted proofs (RFC 9449 §11.1). Default: a new
	// MemoryReplayCache of DefaultReplayCacheCapacity entries, which protects
	// this process only; use a shared store when several instances serve
	// the same URLs. There is no way to turn replay protection off.
	ReplayCache ReplayCache

	// Nonces, when set, makes server nonces mandatory (RFC 9449 §8, §9):
	// proofs must carry a nonce it accepts. A valid nonce also establishes
	// freshness, so a proof with a stale iat but a valid nonce is accepted,
	// and one with a stale iat and no valid nonce is answered with
	// use_dpop_nonce: clients with wrong clocks recover. Default nil: off.
	Nonces NonceSource

	// MaxProofSize bounds the DPoP header value in bytes. Default
	// DefaultMaxProofSize (8 KiB, room for an RSA 4096 key); at least 512.
	MaxProofSize int
	// MaxJTILength bounds the jti claim in bytes. Default
	// DefaultMaxJTILength (256); at least 16.
	MaxJTILength int
	// Quota bounds the replay-cache room one party may take (see [Quota]):
	// proofs are charged to the Client and Grant a caller names in
	// [Request]. Zero fields take the defaults: a tenth of the replay
	// cache per client and a twentieth per grant or token (DefaultClientQuota
	// and DefaultTokenQuota when the cache does not tell its capacity); the
	// handlers package gives each grant at its token endpoint
	// DefaultGrantQuota.
	Quota Quota

	// KeyCacheSize is the number of distinct protected headers whose parsed
	// key and thumbprint are kept (an LRU keyed by the exact header bytes).
	// Default DefaultKeyCacheSize (1024). Memory is bounded by
	// KeyCacheSize × MaxProofSize.
	KeyCacheSize int
}

// normalize applies defaults and validates; it works on a copy.
func (o VerifierOptions) normalize() (VerifierOptions, error) {
	if o.BaseURL == "" {
		return o, errors.New("dpop: VerifierOptions.BaseURL is required")
	}
	base, err := NormalizeHTU(o.BaseURL)
	if err != nil {
		return o, fmt.Errorf("dpop: VerifierOptions.BaseURL: %w", err)
	}
	if strings.ContainsAny(o.BaseURL, "?#") {
		return o, errors.New("dpop: VerifierOptions.BaseURL must not have a query or fragment")
	}
	o.BaseURL = strings.TrimSuffix(base, "/")

	if len(o.Algorithms) == 0 {
		o.Algorithms = DefaultAlgorithms()
	}
	algs := make([]string, 0, len(o.Algorithms))
	for _, a := range o.Algorithms {
		if _, ok := jose.Lookup(a); !ok {
			return o, fmt.Errorf("dpop: algorithm %q is not supported (asymmetric JWS algorithms only)", a)
		}
		algs = append(algs, a)
	}
	o.Algorithms = algs

	switch {
	case o.MaxAge < 0 || o.Leeway < 0:
		return o, errors.New("dpop: negative MaxAge or Leeway")
	case o.MaxAge > time.Hour:
		return o, errors.New("dpop: MaxAge above one hour")
	}
	if o.MaxAge == 0 {
		o.MaxAge = DefaultMaxAge
	}
	if o.Leeway == 0 {
		o.Leeway = min(DefaultLeeway, o.MaxAge)
	}
	if o.Leeway > o.MaxAge {
		return o, errors.New("dpop: Leeway above MaxAge")
	}
	if o.Now == nil {
		o.Now = time.Now
	}
	if o.ReplayCache == nil {
		c, err := NewMemoryReplayCache(MemoryReplayCacheOptions{})
		if err != nil {
			return o, err
		}
		o.ReplayCache = c
	}

	switch {
	case o.MaxProofSize < 0 || o.MaxJTILength < 0 || o.KeyCacheSize < 0:
		return o, errors.New("dpop: negative size limit")
	case o.MaxProofSize != 0 && o.MaxProofSize < 512:
		return o, errors.New("dpop: MaxProofSize below 512 bytes")
	case o.MaxJTILength != 0 && o.MaxJTILength < 16:
		return o, errors.New("dpop: MaxJTILength below 16 bytes")
	}
	if o.MaxProofSize == 0 {
		o.MaxProofSize = DefaultMaxProofSize
	}
	if o.MaxJTILength == 0 {
		o.MaxJTILength = DefaultMaxJTILength
	}
	if o.KeyCacheSize == 0 {
		o.KeyCacheSize = DefaultKeyCacheSize
	}
	if o.Quota, err = o.Quota.withDefaults(o.ReplayCache); err != nil {
		return o, err
	}
	return o, nil
}
