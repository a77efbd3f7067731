package dpop

import (
	"bytes"
	"crypto"
	"crypto/ecdsa"
	"crypto/ed25519"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/rsa"
	_ "crypto/sha256" // SHA-256 for ES256, RS256, PS256
	_ "crypto/sha512" // SHA-384 and SHA-512 for the other algorithms
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"math/big"
	"net/url"
	"slices"
	"strings"
	"time"

	"github.com/dpopkit/dpop/internal/jose"
)

// RSA modulus sizes, in bits, that NewSigner accepts. RFC 7518 §3.3 and §3.5
// require at least 2048; 8192 is the ceiling, for servers that accept large
// keys. The Verifier of this package is stricter (RFC 9449 §11.6): it accepts
// RSA keys of 2048 to 4096 bits with the public exponent 65537 only (see
// DefaultAlgorithms), so use such a key when proofs go to it. Likewise ES512
// is not in its DefaultAlgorithms: the proofs of a P-521 Signer are accepted
// only by a server that lists ES512 explicitly.
const (
	signerMinRSABits = 2048
	signerMaxRSABits = 8192
)

// jtiBytes is the number of random bytes in a proof's jti: 128 bits, above
// the 96 bits that RFC 9449 §4.2 requires.
const jtiBytes = 16

// SignerOptions configures [NewSigner].
type SignerOptions struct {
	// Algorithm is the JWS alg of the proofs (RFC 9449 §4.2, RFC 7518 §3.1).
	// The default depends on the key: ES256, ES384 or ES512 for ECDSA P-256,
	// P-384 or P-521, EdDSA for Ed25519 (RFC 8037 §3.1) and PS256 for RSA. An
	// RSA key may also use RS256, RS384, RS512, PS384 or PS512. An algorithm
	// that does not fit the key is refused.
	Algorithm string
	// Now is the clock that sets iat (RFC 9449 §4.2). Default time.Now.
	Now func() time.Time
}

// Signer makes DPoP proof JWTs (RFC 9449 §4.2) with one private key. All the
// per-key work (algorithm, public JWK, thumbprint, encoded protected header)
// is done once by [NewSigner]. A Signer is safe for concurrent use.
type Signer struct {
	key    crypto.Signer
	pub    crypto.PublicKey
	alg    string
	spec   jose.Spec // the algorithm, under the kit's JOSE profile
	sigLen int       // bytes of a signature
	jwk    []byte    // public JWK, JSON
	jkt    string    // RFC 7638 thumbprint of the public key
	prefix string    // base64url(protected header) + "."
	now    func() time.Time
}

// NewSigner returns a Signer for key, which must be an *ecdsa.PrivateKey on
// P-256, P-384 or P-521, an ed25519.PrivateKey, or an *rsa.PrivateKey of 2048
// to 8192 bits: RFC 9449 §4.2 requires an asymmetric algorithm. Other keys,
// and an Algorithm that does not fit the key, are refused. The key is checked
// once by signing and verifying a test message.
func NewSigner(key crypto.Signer, opts SignerOptions) (*Signer, error) {
	s := &Signer{key: key, now: opts.Now}
	if s.now == nil {
		s.now = time.Now
	}
	var err error
	switch k := key.(type) {
	case *ecdsa.PrivateKey:
		err = s.initECDSA(k, opts.Algorithm)
	case ed25519.PrivateKey:
		err = s.initEd25519(k, opts.Algorithm)
	case *rsa.PrivateKey:
		err = s.initRSA(k, opts.Algorithm)
	default:
		err = fmt.Errorf("dpop: unsupported key type %T", key)
	}
	if err != nil {
		return nil, err
	}
	s.spec, _ = jose.Lookup(s.alg)
	if s.jkt, err = Thumbprint(s.pub); err != nil {
		return nil, err
	}
	hdr, err := compactJSON(struct {
		Typ string          `json:"typ"`
		Alg string          `json:"alg"`
		JWK json.RawMessage `json:"jwk"`
	}{"dpop+jwt", s.alg, s.jwk})
	if err != nil {
		return nil, fmt.Errorf("dpop: encoding protected header: %w", err)
	}
	s.prefix = encodeB64(hdr) + "."
	if err := s.selfCheck(); err != nil {
		return nil, err
	}
	return s, nil
}

// initECDSA sets up an ES256/ES384/ES512 signer (RFC 7518 §3.4) and the EC
// public JWK (RFC 7518 §6.2.1).
func (s *Signer) initECDSA(k *ecdsa.PrivateKey, alg string) error {
	if k == nil || k.Curve == nil {
		return errors.New("dpop: nil ECDSA key")
	}
	var crv, want string
	var size int // bytes of one coordinate; the signature is twice that
	switch k.Curve {
	case elliptic.P256():
		crv, want, size = "P-256", ES256, 32
	case elliptic.P384():
		crv, want, size = "P-384", ES384, 48
	case elliptic.P521():
		crv, want, size = "P-521", ES512, 66
	default:
		return errors.New("dpop: unsupported ECDSA curve")
	}
	if alg != "" && alg != want {
		return fmt.Errorf("dpop: algorithm %q does not fit an ECDSA %s key", alg, crv)
	}
	if k.X == nil || k.Y == nil || k.D == nil {
		// A key built from the curve and D alone: Bytes would panic.
		return errors.New("dpop: invalid ECDSA public key")
	}
	point, err := k.PublicKey.Bytes() // 0x04 || X || Y, fixed length
	if err != nil || len(point) != 1+2*size {
		return errors.New("dpop: invalid ECDSA public key")
	}
	s.alg, s.pub, s.sigLen = want, &k.PublicKey, 2*size
	s.jwk, err = compactJSON(struct {
		Crv string `json:"crv"`
		Kty string `json:"kty"`
		X   string `json:"x"`
		Y   string `json:"y"`
	}{crv, "EC", encodeB64(point[1 : 1+size]), encodeB64(point[1+size:])})
	return err
}

// initEd25519 sets up an EdDSA signer and the OKP public JWK (RFC 8037 §2,
// §3.1).
func (s *Signer) initEd25519(k ed25519.PrivateKey, alg string) error {
	if len(k) != ed25519.PrivateKeySize {
		return errors.New("dpop: invalid Ed25519 key")
	}
	switch alg {
	case "":
		alg = EdDSA
	case EdDSA, Ed25519:
	default:
		return fmt.Errorf("dpop: algorithm %q does not fit an Ed25519 key", alg)
	}
	pub := slices.Clone(k.Public().(ed25519.PublicKey))
	s.alg, s.pub, s.sigLen = alg, pub, ed25519.SignatureSize
	var err error
	s.jwk, err = compactJSON(struct {
		Crv string `json:"crv"`
		Kty string `json:"kty"`
		X   string `json:"x"`
	}{"Ed25519", "OKP", encodeB64(pub)})
	return err
}

// initRSA sets up an RS* (RFC 7518 §3.3) or PS* (§3.5) signer and the RSA
// public JWK (§6.3.1).
func (s *Signer) initRSA(k *rsa.PrivateKey, alg string) error {
	if k == nil || k.N == nil {
		return errors.New("dpop: nil RSA key")
	}
	if n := k.N.BitLen(); n < signerMinRSABits || n > signerMaxRSABits {
		return fmt.Errorf("dpop: RSA key of %d bits is outside %d to %d", n, signerMinRSABits, signerMaxRSABits)
	}
	if alg == "" {
		alg = PS256
	}
	switch alg {
	case RS256, PS256, RS384, PS384, RS512, PS512:
	default:
		return fmt.Errorf("dpop: algorithm %q does not fit an RSA key", alg)
	}
	if k.E < 3 || k.E%2 == 0 {
		return errors.New("dpop: invalid RSA public exponent")
	}
	s.alg, s.pub, s.sigLen = alg, &k.PublicKey, k.Size()
	var err error
	s.jwk, err = compactJSON(struct {
		E   string `json:"e"`
		Kty string `json:"kty"`
		N   string `json:"n"`
	}{encodeB64(big.NewInt(int64(k.E)).Bytes()), "RSA", encodeB64(k.N.Bytes())})
	return err
}

// selfCheck signs a fixed message and verifies it with the public key, so
// that a key whose private and public halves disagree, or that is malformed
// enough to make the crypto packages panic, is refused up front.
func (s *Signer) selfCheck() (err error) {
	defer func() {
		if recover() != nil {
			err = errors.New("dpop: key self-check failed: malformed private key")
		}
	}()
	msg := s.prefix + "c2VsZi1jaGVjaw"
	sig, err := s.sign(msg)
	if err != nil {
		return err
	}
	ok := jose.Verify(s.spec, s.pub, msg, sig)
	if !ok {
		return errors.New("dpop: key self-check failed: signature does not verify")
	}
	return nil
}

// Algorithm returns the JWS alg of the proofs (RFC 9449 §4.2).
func (s *Signer) Algorithm() string { return s.alg }

// JKT returns the JWK SHA-256 thumbprint of the public key (RFC 7638 §3), the
// value a server binds access tokens to (RFC 9449 §6.1) and that a client
// sends as dpop_jkt (RFC 9449 §10).
func (s *Signer) JKT() string { return s.jkt }

// PublicKey returns the public key whose JWK the proofs carry (RFC 9449 §4.2).
func (s *Signer) PublicKey() crypto.PublicKey { return s.pub }

// PublicJWK returns the public key as a JWK JSON object (RFC 7517 §4), with
// the public members only: the jwk header of every proof (RFC 9449 §4.2).
// The caller may modify the returned slice.
func (s *Signer) PublicJWK() []byte { return slices.Clone(s.jwk) }

// ProofOptions are the optional claims of one proof.
type ProofOptions struct {
	// AccessToken, when set, binds the proof to this access token through
	// the ath claim, ATH(AccessToken) (RFC 9449 §4.2, §7).
	AccessToken string
	// Nonce, when set, is the server-provided nonce the proof carries in its
	// nonce claim (RFC 9449 §8, §9).
	Nonce string
}

// signedClaims is the JWT claims set of a proof (RFC 9449 §4.2).
type signedClaims struct {
	JTI   string `json:"jti"`
	HTM   string `json:"htm"`
	HTU   string `json:"htu"`
	IAT   int64  `json:"iat"`
	ATH   string `json:"ath,omitempty"`
	Nonce string `json:"nonce,omitempty"`
}

// Proof returns a DPoP proof JWT (RFC 9449 §4.2) for a request with the given
// method and URL, in JWS compact serialisation (RFC 7515 §7.1). rawURL must be
// an absolute http or https URL; htu is rawURL without its query, fragment
// and user information, with an empty path written as "/" (RFC 9110 §7.1).
// A Nonce must follow the syntax of RFC 9449 §8.1. Every proof has a fresh
// random jti of 128 bits.
func (s *Signer) Proof(method, rawURL string, opts ProofOptions) (string, error) {
	u, err := url.Parse(rawURL)
	if err != nil {
		return "", errors.New("dpop: proof URL does not parse")
	}
	return s.proof(method, u, opts)
}

// proof is Proof for a parsed URL; u is not modified.
func (s *Signer) proof(method string, u *url.URL, opts ProofOptions) (string, error) {
	if !isMethodToken(method) {
		return "", errors.New("dpop: proof method is not an HTTP method token")
	}
	htu, err := proofHTU(u)
	if err != nil {
		return "", err
	}
	if opts.Nonce != "" && !validNonce(opts.Nonce) {
		return "", errors.New("dpop: nonce is not 1 to 1024 NQCHARs (RFC 9449 §8.1)")
	}
	var jti [jtiBytes]byte
	if _, err := rand.Read(jti[:]); err != nil {
		return "", fmt.Errorf("dpop: jti: %w", err)
	}
	c := signedClaims{JTI: encodeB64(jti[:]), HTM: method, HTU: htu, IAT: s.now().Unix(), Nonce: opts.Nonce}
	if opts.AccessToken != "" {
		c.ATH = ATH(opts.AccessToken)
	}
	payload, err := compactJSON(c)
	if err != nil {
		return "", fmt.Errorf("dpop: encoding claims: %w", err)
	}
	var b strings.Builder
	enc := base64.RawURLEncoding
	b.Grow(len(s.prefix) + enc.EncodedLen(len(payload)) + 1 + enc.EncodedLen(s.sigLen))
	b.WriteString(s.prefix)
	b.WriteString(encodeB64(payload))
	sig, err := s.sign(b.String())
	if err != nil {
		return "", err
	}
	b.WriteByte('.')
	b.WriteString(encodeB64(sig))
	return b.String(), nil
}

// sign returns the JWS signature of the signing input (RFC 7515 §5.1), made
// by the kit's JOSE profile (jose.Sign): ECDSA signatures are the
// fixed-length R || S of RFC 7518 §3.4, not DER; PSS uses a salt as long as
// the hash (RFC 7518 §3.5).
func (s *Signer) sign(input string) ([]byte, error) {
	sig, err := jose.Sign(s.spec, s.key, input)
	if err != nil {
		return nil, fmt.Errorf("dpop: signing proof: %w", err)
	}
	return sig, nil
}

// proofHTU returns the htu of a request to u: scheme, host and path, without
// query, fragment or user information (RFC 9449 §4.2, RFC 9110 §7.1). Only
// absolute http and https URLs are accepted.
func proofHTU(u *url.URL) (string, error) {
	if u == nil || u.Opaque != "" || u.Host == "" {
		return "", errors.New("dpop: proof URL must be absolute")
	}
	scheme := strings.ToLower(u.Scheme)
	if scheme != "http" && scheme != "https" {
		return "", errors.New("dpop: proof URL must be http or https")
	}
	t := url.URL{Path: u.Path, RawPath: u.RawPath}
	path := t.EscapedPath()
	if path == "" {
		path = "/"
	}
	// '[' and ']' are not allowed in a path (RFC 3986 §3.3), though Go
	// leaves them raw; the verifier expects them percent-encoded.
	if strings.ContainsAny(path, "[]") {
		path = strings.NewReplacer("[", "%5B", "]", "%5D").Replace(path)
	}
	return scheme + "://" + u.Host + path, nil
}

// encodeB64 is unpadded base64url (RFC 7515 §2).
func encodeB64(p []byte) string { return base64.RawURLEncoding.EncodeToString(p) }

// compactJSON encodes v compactly without HTML escaping, so that a URL keeps
// its '&' and '<' as they are.
func compactJSON(v any) ([]byte, error) {
	var buf bytes.Buffer
	enc := json.NewEncoder(&buf)
	enc.SetEscapeHTML(false)
	if err := enc.Encode(v); err != nil {
		return nil, err
	}
	return bytes.TrimSuffix(buf.Bytes(), []byte("\n")), nil
}

// isMethodToken reports whether s is a non-empty HTTP token (RFC 9110 §5.6.2), the
// syntax of a method name (RFC 9110 §9.1).
func isMethodToken(s string) bool {
	if s == "" {
		return false
	}
	for i := 0; i < len(s); i++ {
		if !isTokenByte(s[i]) {
			return false
		}
	}
	return true
}

// isTokenByte reports whether c is a tchar (RFC 9110 §5.6.2).
func isTokenByte(c byte) bool {
	switch {
	case 'a' <= c && c <= 'z', 'A' <= c && c <= 'Z', '0' <= c && c <= '9':
		return true
	}
	return strings.IndexByte("!#$%&'*+-.^_`|~", c) >= 0
}
