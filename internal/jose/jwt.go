package jose

import (
	"crypto"
	"encoding/json"
	"errors"
	"strings"
	"time"
)

// MaxJWTBytes bounds a JWT access token before anything parses it.
const MaxJWTBytes = 16 << 10

// Refusals of a JWT access token (RFC 9068 §4) before its claims are read.
// Each text is the reason the caller reports.
var (
	// ErrSize: empty, or longer than MaxJWTBytes.
	ErrSize = errors.New("size out of bounds")
	// ErrMalformed: a segment does not decode, or the header is not a
	// JSON object with each parameter once (RFC 7515 §5.2).
	ErrMalformed = errors.New("malformed JWS")
	// ErrTyp: typ is not at+jwt (RFC 9068 §4).
	ErrTyp = errors.New("typ is not at+jwt")
	// ErrAlgorithm: alg is outside the profile or the caller's list
	// (RFC 8725 §3.1).
	ErrAlgorithm = errors.New("alg not allowed")
	// ErrNoKid: no kid to pick the key with (RFC 7515 §4.1.4).
	ErrNoKid = errors.New("kid missing")
	// ErrSignature: the signature does not verify with the key of the kid.
	ErrSignature = errors.New("signature does not verify")
	// ErrClaims: the payload is not one JSON object (RFC 7519 §7.2).
	ErrClaims = errors.New("claims are not a JSON object")
)

// AccessTokenType reports whether typ names a JWT access token: "at+jwt"
// or "application/at+jwt", compared case-insensitively (RFC 9068 §2.1,
// §4; RFC 7515 §4.1.9).
func AccessTokenType(typ string) bool {
	return strings.EqualFold(typ, "at+jwt") || strings.EqualFold(typ, "application/at+jwt")
}

// KeyFunc returns the public key named kid for verifying with spec, checked
// with CheckPublicKey (PickKey does), or an error (ErrUnknownKid,
// ErrAmbiguousKid, ErrKeyFit, or the caller's own).
type KeyFunc func(kid string, spec Spec) (crypto.PublicKey, error)

// VerifyAccessToken checks a JWT access token against the profile and
// returns its claims, decoded but not judged: at most MaxJWTBytes
// (ErrSize); a compact JWS (ErrCompact) whose header decodes (ErrMalformed,
// ErrCrit, ErrB64, a duplicate *MemberError); typ at+jwt (ErrTyp); an alg
// of the profile that allowed holds (ErrAlgorithm); a kid (ErrNoKid); the
// key that key returns for it, fit for the alg (ErrKeyFit); a signature
// that verifies with that key (ErrSignature); claims as
// ParseAccessTokenClaims reads them. Whether the claims make the token
// acceptable (issuer, audience, times) is the caller's policy.
func VerifyAccessToken(token string, allowed map[string]Spec, key KeyFunc) (*AccessTokenClaims, error) {
	j, err := readJWS(token)
	if err != nil {
		return nil, err
	}
	hdr, payload, sig := j.header, j.payload, j.sig
	if !AccessTokenType(hdr.Typ) {
		return nil, ErrTyp
	}
	spec, ok := allowed[hdr.Alg]
	if !ok {
		return nil, ErrAlgorithm
	}
	if hdr.Kid == "" {
		return nil, ErrNoKid
	}
	pub, err := key(hdr.Kid, spec)
	if err != nil {
		return nil, err
	}
	if !Verify(spec, pub, j.signingInput, sig) {
		return nil, ErrSignature
	}
	return ParseAccessTokenClaims(payload)
}

// jws is a compact JWS as readJWS reads it, not yet verified.
type jws struct {
	header       Header
	payload, sig []byte
	// signingInput is the header and payload segments with their dot
	// (RFC 7515 §5.2).
	signingInput string
}

// readJWS is the one reading of a JWT in compact serialization, for access
// tokens and client assertions alike: at most MaxJWTBytes (ErrSize); three
// segments (ErrCompact); a protected header that ParseHeader accepts
// (ErrCrit, ErrB64, else ErrMalformed); a payload and a signature that
// decode as unpadded base64url (ErrMalformed).
func readJWS(token string) (jws, error) {
	if token == "" || len(token) > MaxJWTBytes {
		return jws{}, ErrSize
	}
	h, p, s, ok := Split(token)
	if !ok {
		return jws{}, ErrCompact
	}
	hdr, err := ParseHeader(h)
	switch {
	case errors.Is(err, ErrCrit), errors.Is(err, ErrB64):
		return jws{}, err
	case err != nil:
		return jws{}, ErrMalformed
	}
	payload, err := B64.DecodeString(p)
	if err != nil {
		return jws{}, ErrMalformed
	}
	sig, err := B64.DecodeString(s)
	if err != nil {
		return jws{}, ErrMalformed
	}
	return jws{header: hdr, payload: payload, sig: sig, signingInput: token[:len(h)+1+len(p)]}, nil
}

// AccessTokenClaims are the claims of a JWT access token (RFC 9068 §2.2,
// RFC 7519 §4.1, RFC 9449 §6.1). Times are zero when absent.
type AccessTokenClaims struct {
	Issuer, Subject, ClientID, Scope, JTI string
	Audience                              []string
	Expiry, NotBefore, IssuedAt           time.Time
	// JKT is cnf.jkt, "" for an unbound token.
	JKT string
	// Claims are the members that are not Registered (Object.HostClaims):
	// the host's claims; nil when there are none.
	Claims map[string]any
}

// ParseAccessTokenClaims reads a claims set strictly: one JSON object
// (else ErrClaims) with exact member names, none given twice, and each
// claim of the JSON type RFC 7519 §4.1 and RFC 9068 §2.2 give it (else a
// *MemberError naming it): iss, sub, client_id, scope and jti strings, aud
// a string or an array of strings, exp, nbf and iat NumericDates (see
// MaxNumericDate), cnf an object holding only a non-empty jkt.
func ParseAccessTokenClaims(payload []byte) (*AccessTokenClaims, error) {
	o, err := claimsObject(payload)
	if err != nil {
		return nil, err
	}
	var c AccessTokenClaims
	err = o.registeredClaims([]stringClaim{{"iss", &c.Issuer}, {"sub", &c.Subject}, {"client_id", &c.ClientID}, {"scope", &c.Scope}, {"jti", &c.JTI}},
		&c.Audience, &c.Expiry, &c.NotBefore, &c.IssuedAt)
	if err != nil {
		return nil, err
	}
	if c.JKT, err = o.CnfJKT(); err != nil {
		return nil, err
	}
	if c.Claims, err = o.HostClaims(); err != nil {
		return nil, err
	}
	return &c, nil
}

// claimsObject reads a JWT's claims set as one JSON object (ErrClaims when
// it is not one), with the strict reading of ParseObject.
func claimsObject(payload []byte) (Object, error) {
	o, err := ParseObject(payload)
	if errors.Is(err, ErrNotObject) {
		return nil, ErrClaims
	}
	return o, err
}

// stringClaim is a string claim's name and where it goes.
type stringClaim struct {
	name string
	dst  *string
}

// registeredClaims reads the claims every JWT the kit checks shares
// (RFC 7519 §4.1), in order: the string claims strs, aud (a string or an
// array of strings) and the NumericDates exp, nbf and iat, each into its
// destination; the first claim of another JSON type is a *MemberError
// naming it.
func (o Object) registeredClaims(strs []stringClaim, aud *[]string, exp, nbf, iat *time.Time) error {
	var err error
	for _, f := range strs {
		if *f.dst, err = o.StringMember(f.name); err != nil {
			return err
		}
	}
	if *aud, err = o.AudienceMember("aud"); err != nil {
		return err
	}
	for _, f := range [...]struct {
		name string
		dst  *time.Time
	}{{"exp", exp}, {"nbf", nbf}, {"iat", iat}} {
		if *f.dst, err = o.DateMember(f.name); err != nil {
			return err
		}
	}
	return nil
}

// SignAccessToken makes a JWT access token (RFC 9068 §2): protected header
// {"alg","kid","typ":"at+jwt"}, the claims as JSON, signed with key, which
// SigningKey has checked for spec.
func SignAccessToken(spec Spec, kid string, key crypto.Signer, claims any) (string, error) {
	header, err := json.Marshal(struct {
		Alg string `json:"alg"`
		Kid string `json:"kid"`
		Typ string `json:"typ"`
	}{spec.Name, kid, "at+jwt"})
	if err != nil {
		return "", err
	}
	payload, err := json.Marshal(claims)
	if err != nil {
		return "", err
	}
	input := B64.EncodeToString(header) + "." + B64.EncodeToString(payload)
	sig, err := Sign(spec, key, input)
	if err != nil {
		return "", err
	}
	return input + "." + B64.EncodeToString(sig), nil
}
