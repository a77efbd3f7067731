package dpop

import (
	"context"
	"crypto"
	"errors"
	"net/http"
	"strings"
	"time"

	"github.com/dpopkit/dpop/internal/jose"
	lru "github.com/hashicorp/golang-lru/v2"
)

// b64 decodes the segments of a proof (jose.B64: strict unpadded base64url).
var b64 = jose.B64

// Request is what a proof is checked against (RFC 9449 §4.3).
type Request struct {
	// Method is the HTTP method of the request; htm must equal it.
	Method string
	// URL is the absolute URL the request was sent to, as the server's public
	// address; its query and fragment are ignored. htu must equal it after
	// normalisation. Build it from configuration, not from client headers.
	URL string
	// Proofs holds every value of the DPoP header (http.Header.Values); there
	// must be exactly one.
	Proofs []string
	// AccessToken is the token presented with the request at a protected
	// resource. When it is non-empty the proof must carry a matching ath
	// (RFC 9449 §4.3 check 12, §7).
	AccessToken string
	// BoundJKT, when set, is the thumbprint the access token is bound to
	// (cnf.jkt, RFC 9449 §6): a proof by another key is refused with
	// ErrKeyMismatch before its signature is checked and before it takes a
	// place in the replay cache.
	BoundJKT string
	// Client and Grant name the parties the proof's replay entry is charged
	// to (VerifierOptions.Quota): the client the request is from, and
	// within it the grant (at a token endpoint) or the access token (at a
	// resource). Name only parties the request has shown its right to act
	// for (an authenticated client, a grant or token it holds), so that no
	// one can spend another's share. Empty: not charged.
	Client, Grant string
}

// Proof is a DPoP proof that passed every check.
type Proof struct {
	JTI   string
	HTM   string
	HTU   string
	IAT   time.Time
	Nonce string // empty unless the proof carried one
	ATH   string // empty unless the proof carried one
	// Algorithm is the JWS alg the proof was signed with.
	Algorithm string
	// PublicKey is the proof's key (*ecdsa.PublicKey, ed25519.PublicKey or
	// *rsa.PublicKey). It is shared with other proofs of the same key and
	// must not be modified.
	PublicKey crypto.PublicKey
	// JKT is the RFC 7638 SHA-256 thumbprint of PublicKey, base64url: the
	// value access tokens are bound to (RFC 9449 §6).
	JKT string

	// What Accept needs: the verifier that checked the proof, its replay
	// entry, and the parties it is charged to.
	by            *Verifier
	replayKey     ReplayKey
	ttl           time.Duration
	client, grant string
}

// Verifier checks DPoP proofs (RFC 9449 §4.3). It is safe for concurrent use;
// create one per public address and share it.
type Verifier struct {
	opts   VerifierOptions
	algs   map[string]jose.Spec
	replay time.Duration // lifetime of a replay entry without a nonce
	keys   *lru.Cache[string, *header]
	quotas *quotas
}

// NewVerifier returns a verifier, or an error if the options are unusable.
func NewVerifier(opts VerifierOptions) (*Verifier, error) {
	o, err := opts.normalize()
	if err != nil {
		return nil, err
	}
	keys, err := lru.New[string, *header](o.KeyCacheSize)
	if err != nil {
		return nil, err
	}
	algs, err := jose.AllowList("dpop", o.Algorithms)
	if err != nil {
		return nil, err
	}
	// A proof passes the freshness check from iat-Leeway to iat+MaxAge, so
	// an entry made at its first use must live MaxAge+Leeway (§11.1).
	// A second more closes the boundary instant, where freshness and the
	// cache's expiry would otherwise disagree.
	replay := o.MaxAge + o.Leeway + time.Second
	q, err := newQuotas(o.Quota, replay)
	if err != nil {
		return nil, err
	}
	return &Verifier{opts: o, algs: algs, replay: replay, keys: keys, quotas: q}, nil
}

// Algorithms returns the accepted JWS algorithms, for
// dpop_signing_alg_values_supported (RFC 9449 §5.1) and the algs parameter of
// WWW-Authenticate (§7.1).
func (v *Verifier) Algorithms() []string { return append([]string(nil), v.opts.Algorithms...) }

// BaseURL returns the normalised public base URL, without a trailing slash.
func (v *Verifier) BaseURL() string { return v.opts.BaseURL }

// NoncesRequired reports whether proofs must carry a server nonce.
func (v *Verifier) NoncesRequired() bool { return v.opts.Nonces != nil }

// Nonce returns a fresh nonce to send in a DPoP-Nonce header (RFC 9449 §8),
// or "" when nonces are off.
func (v *Verifier) Nonce(ctx context.Context) (string, error) {
	if v.opts.Nonces == nil {
		return "", nil
	}
	return v.opts.Nonces.Nonce(ctx)
}

// VerifyHTTP checks the DPoP proof of an HTTP request received by a server:
// the method is r.Method, the expected htu is BaseURL followed by the
// request's path, and the proofs are every DPoP header. accessToken is the
// token the request presented, or "" at a token endpoint.
func (v *Verifier) VerifyHTTP(ctx context.Context, r *http.Request, accessToken string) (*Proof, error) {
	req := v.RequestOf(r)
	req.AccessToken = accessToken
	return v.Verify(ctx, req)
}

// RequestOf returns what a proof sent with r must match: r.Method, BaseURL
// followed by the request's path (never the Host or X-Forwarded-* headers),
// and every DPoP header. Callers add AccessToken and BoundJKT.
func (v *Verifier) RequestOf(r *http.Request) Request {
	path := r.URL.EscapedPath()
	if path == "" {
		path = "/"
	}
	// Go leaves '[' and ']' unescaped in paths; RFC 3986 allows them only in
	// a host, so they are compared in their percent-encoded form.
	if strings.ContainsAny(path, "[]") {
		path = strings.NewReplacer("[", "%5B", "]", "%5D").Replace(path)
	}
	return Request{Method: r.Method, URL: v.opts.BaseURL + path, Proofs: r.Header.Values("DPoP")}
}

// Verify checks a DPoP proof against a request, performing every check of
// RFC 9449 §4.3, and records it in the replay cache: Check followed by
// Accept. Any error is an *Error wrapping one of the sentinel causes.
func (v *Verifier) Verify(ctx context.Context, req Request) (*Proof, error) {
	p, err := v.check(ctx, req)
	if err != nil {
		return nil, err
	}
	if err := v.accept(ctx, p); err != nil {
		return nil, err
	}
	return p, nil
}

// Check performs every check of RFC 9449 §4.3 but the replay check, and
// records nothing: a refused proof, and one that is never accepted, costs no
// shared state. A server that has more to check before it lets a request
// take room in the replay cache (a token endpoint checking the grant) calls
// Check, then its own checks, then Accept. A proof from Check has not passed
// the replay check: never act on it before Accept returns nil. Any error is
// an *Error.
func (v *Verifier) Check(ctx context.Context, req Request) (*Proof, error) {
	p, err := v.check(ctx, req)
	if err != nil {
		return nil, err
	}
	return p, nil
}

// Accept charges a proof that Check returned to its parties' quotas and
// records it in the replay cache (RFC 9449 §11.1). It fails with ErrQuota
// (CodeTemporarilyUnavailable, with RetryAfter) when a party has used its
// share, ErrReplay when the proof was accepted before, and a
// CodeServerError when the cache is full or down; the proof must then be
// refused. Any error is an *Error.
func (v *Verifier) Accept(ctx context.Context, p *Proof) error {
	if err := v.accept(ctx, p); err != nil {
		return err
	}
	return nil
}

// InsertFunc records key for ttl in a replay cache, as ReplayCache.Insert
// does (RFC 9449 §11.1): it reports false when key was recorded before and
// is still live, and an error (ErrReplayCacheFull, or any other when the
// cache is down) when it could not tell.
type InsertFunc func(ctx context.Context, key ReplayKey, ttl time.Duration) (bool, error)

// AcceptWith is Accept with insert standing in for the replay cache's
// Insert: the proof is charged to its parties' quotas, recorded by insert
// (RFC 9449 §11.1), and refunded when insert records nothing, with the
// errors of Accept. A server that writes something else together with the
// replay entry in one atomic step of its store (a token endpoint saving the
// access token it issues, RFC 9449 §5) passes a function that does both;
// insert must record key where every other acceptance of the same proof
// looks: in the verifier's ReplayCache, or, for proofs that are only ever
// accepted through insert (a resource server recording each proof beside
// the access token it is sent with), in a place of its own; either way a
// proof accepted once is refused after. Any error is an *Error.
func (v *Verifier) AcceptWith(ctx context.Context, p *Proof, insert InsertFunc) error {
	if insert == nil {
		insert = v.opts.ReplayCache.Insert
	}
	if err := v.acceptWith(ctx, p, insert); err != nil {
		return err
	}
	return nil
}

func (v *Verifier) accept(ctx context.Context, p *Proof) *Error {
	return v.acceptWith(ctx, p, v.opts.ReplayCache.Insert)
}

func (v *Verifier) acceptWith(ctx context.Context, p *Proof, insert InsertFunc) *Error {
	if p == nil || p.by != v {
		return invalid(ErrNotChecked, "proof was not checked")
	}
	return v.spend(ctx, p.client, p.grant, p.replayKey, p.ttl, insert)
}

// Spend records a one-time value other than a proof's jti in the replay
// cache, under the same rules as Accept: charged to client's share of the
// cache (Quota.PerClient), refused with ErrReplay when it was recorded
// before, and failing closed when the cache is full or down. The token
// endpoint spends a client assertion's jti this way (RFC 7523 §3), so that
// a client's assertions and its proofs share one bounded share and no
// client can fill the cache the others need. key must be of a domain of
// its own (NewReplayKey with a first argument no proof thumbprint can
// equal). Any error is an *Error.
func (v *Verifier) Spend(ctx context.Context, client string, key ReplayKey, ttl time.Duration) error {
	if err := v.spend(ctx, client, "", key, ttl, v.opts.ReplayCache.Insert); err != nil {
		return err
	}
	return nil
}

// spend charges client and grant, then records key for ttl with insert.
func (v *Verifier) spend(ctx context.Context, client, grant string, key ReplayKey, ttl time.Duration, insert InsertFunc) *Error {
	if retry, ok := v.quotas.charge(client, grant, ttl, v.opts.Now()); !ok {
		return &Error{Code: CodeTemporarilyUnavailable, Description: "too many proofs; retry later", RetryAfter: retry, Err: ErrQuota}
	}
	// §11.1: replay, last, so that refused proofs take no room. A proof
	// that takes no entry gives its charge back: someone replaying a
	// captured proof must not spend its owner's share.
	inserted, err := insert(ctx, key, ttl)
	if err != nil || !inserted {
		v.quotas.refund(client, grant, ttl)
	}
	switch {
	case errors.Is(err, ErrReplayCacheFull):
		return &Error{Code: CodeServerError, Description: "replay cache is full", Err: ErrReplayCacheFull}
	case err != nil:
		return &Error{Code: CodeServerError, Description: "replay cache is unavailable", Err: ErrReplayCacheUnavailable}
	case !inserted:
		return invalid(ErrReplay, "proof has already been used")
	}
	return nil
}

func (v *Verifier) check(ctx context.Context, req Request) (*Proof, *Error) {
	// §4.3 check 1: exactly one DPoP header.
	switch len(req.Proofs) {
	case 0:
		return nil, invalid(ErrMissingProof, "DPoP header is missing")
	case 1:
	default:
		return nil, invalid(ErrMultipleProofs, "more than one DPoP header")
	}
	jws := req.Proofs[0]
	if len(jws) > v.opts.MaxProofSize {
		return nil, invalid(ErrTooLarge, "proof is too large")
	}
	// §4.3 check 2: a well-formed JWS in compact serialisation, under the
	// kit's JOSE profile (three non-empty base64url segments).
	headerSeg, payloadSeg, sigSeg, ok := jose.Split(jws)
	if !ok {
		return nil, invalid(ErrMalformed, "proof is not a compact JWS")
	}
	hdr, e := v.header(headerSeg)
	if e != nil {
		return nil, e
	}
	if req.BoundJKT != "" && !equalConstantTime(hdr.jkt, req.BoundJKT) {
		return nil, invalid(ErrKeyMismatch, "the proof key is not the key the token is bound to")
	}
	buf := make([]byte, b64.DecodedLen(len(payloadSeg))+b64.DecodedLen(len(sigSeg)))
	n, err := b64.Decode(buf, []byte(payloadSeg))
	if err != nil {
		return nil, invalid(ErrMalformed, "payload is not base64url")
	}
	payload, rest := buf[:n], buf[n:]
	n, err = b64.Decode(rest, []byte(sigSeg))
	if err != nil {
		return nil, invalid(ErrMalformed, "signature is not base64url")
	}
	sig := rest[:n]

	c, e := v.parseClaims(payload)
	if e != nil {
		return nil, e
	}
	// §4.3 check 8: htm.
	if c.htm != req.Method {
		return nil, invalid(ErrHTM, "htm does not match the request method")
	}
	// §4.3 check 9: htu, after normalisation.
	if e := checkHTU(c.htu, req.URL); e != nil {
		return nil, e
	}
	// §4.3 check 12: ath at a protected resource.
	if req.AccessToken != "" {
		if c.ath == "" {
			return nil, invalid(ErrATH, "ath is missing")
		}
		if !equalConstantTime(c.ath, ATH(req.AccessToken)) {
			return nil, invalid(ErrATH, "ath does not match the access token")
		}
	}
	// §4.3 check 10: the nonce, before the costly signature check, so that
	// a client's first request (which cannot know the nonce) is cheap.
	now := v.opts.Now()
	var nonceUntil time.Time
	if v.opts.Nonces != nil {
		ok := false
		if c.hasNonce {
			nonceUntil, ok = v.opts.Nonces.Check(ctx, c.nonce)
		}
		if !ok {
			return nil, v.useNonce(ctx, ErrNonce, "a valid server nonce is required")
		}
	}
	// §4.3 check 6: the signature, with the key of the header.
	if !jose.Verify(hdr.spec, hdr.key, jws[:len(headerSeg)+1+len(payloadSeg)], sig) {
		return nil, invalid(ErrSignature, "signature does not verify")
	}
	// §4.3 check 11: freshness. A valid nonce proves it, whatever the
	// client's clock says; the entry then lives as long as the nonce is
	// accepted.
	iat := jose.Time(c.iat)
	fresh := !iat.Before(now.Add(-v.opts.MaxAge)) && !iat.After(now.Add(v.opts.Leeway))
	ttl := v.replay
	if v.opts.Nonces != nil {
		fresh = true
		ttl = max(ttl, nonceUntil.Sub(now)+time.Second)
	}
	if !fresh {
		return nil, invalid(ErrStale, "iat is outside the acceptable window")
	}
	return &Proof{
		JTI: c.jti, HTM: c.htm, HTU: c.htu, IAT: iat, Nonce: c.nonce, ATH: c.ath,
		Algorithm: hdr.spec.Name, PublicKey: hdr.key, JKT: hdr.jkt,
		by: v, replayKey: NewReplayKey(hdr.jkt, c.jti), ttl: ttl, client: req.Client, grant: req.Grant,
	}, nil
}

// header returns the checked protected header, from the cache when the same
// header bytes were seen before.
func (v *Verifier) header(segment string) (*header, *Error) {
	if h, ok := v.keys.Get(segment); ok {
		return h, nil
	}
	h, e := v.parseHeader(segment)
	if e != nil {
		return nil, e
	}
	v.keys.Add(strings.Clone(segment), h)
	return h, nil
}

// useNonce builds a use_dpop_nonce error carrying a fresh nonce (§8, §9).
func (v *Verifier) useNonce(ctx context.Context, cause error, description string) *Error {
	nonce, err := v.opts.Nonces.Nonce(ctx)
	if err != nil || nonce == "" {
		return &Error{Code: CodeServerError, Description: "nonce source is unavailable", Err: cause}
	}
	return &Error{Code: CodeUseNonce, Description: description, Nonce: nonce, Err: cause}
}

// checkHTU compares the htu claim with the expected URL (§4.3 check 9).
func checkHTU(claimed, expected string) *Error {
	if claimed == expected && claimed != "" {
		if _, err := NormalizeHTU(claimed); err == nil {
			return nil
		}
	}
	mismatch := func(description, want, got string) *Error {
		e := invalid(ErrHTU, description)
		if len(got) > MaxLoggedURL {
			got = got[:MaxLoggedURL]
		}
		e.Expected, e.Received = want, strings.ToValidUTF8(got, "\uFFFD")
		return e
	}
	want, err := NormalizeHTU(expected)
	if err != nil {
		return mismatch("request URL cannot be normalised", expected, claimed)
	}
	got, err := NormalizeHTU(claimed)
	if err != nil {
		return mismatch("htu is not an absolute http(s) URI", want, claimed)
	}
	if got != want {
		return mismatch("htu does not match the request URL", want, got)
	}
	return nil
}
