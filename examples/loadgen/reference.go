package main

import (
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/sha256"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"math"
	"math/big"
	"net"
	"net/http"
	"strings"
	"time"

	"github.com/dpopkit/dpop/examples/internal/serve"
)

// The reference server answers the demo's two routes doing only the work
// that no DPoP server can skip: decode the compact JWS, turn the header's
// P-256 jwk into an ecdsa.PublicKey, verify the ES256 signature, and check
// htm, htu, iat (and ath at the API). No client authentication, no replay
// cache, no store, no key cache: its throughput is the ceiling a full
// implementation can approach on the same machine. With -reference-replay
// it also records each proof in the kit's shared store (refreplay.go).

// Freshness window of the reference, the same as the kit's defaults
// (dpop.DefaultMaxAge and dpop.DefaultLeeway).
const (
	refMaxAge = 60 * time.Second
	refLeeway = 10 * time.Second
	// refMaxProof bounds the DPoP header, as any server must.
	refMaxProof = 8 << 10
)

// The fixed answers.
var (
	refTokenBody = []byte(`{"access_token":"ref","token_type":"DPoP","expires_in":3600}` + "\n")
	refHelloBody = []byte(`{"message":"hello from the reference"}` + "\n")
)

// referenceServer holds the public base URL the proofs must name.
type referenceServer struct {
	issuer string
	now    func() time.Time
	replay refReplay // nil: none
}

// newReferenceHandler returns the reference routes for a server whose public
// base URL is issuer (no trailing slash); replay, when not nil, records each
// verified proof.
func newReferenceHandler(issuer string, now func() time.Time, replay refReplay) http.Handler {
	if now == nil {
		now = time.Now
	}
	rs := &referenceServer{issuer: strings.TrimSuffix(issuer, "/"), now: now, replay: replay}
	mux := http.NewServeMux()
	mux.HandleFunc("POST /oauth2/token", rs.token)
	mux.HandleFunc("GET /api/hello", rs.hello)
	return mux
}

// errStoreDown wraps a failed call to the replay store: 503, as any server
// that cannot record a proof answers.
var errStoreDown = errors.New("replay store unavailable")

// unavailable answers 503 when err is errStoreDown's and reports whether it
// did.
func unavailable(w http.ResponseWriter, err error) bool {
	if !errors.Is(err, errStoreDown) {
		return false
	}
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(http.StatusServiceUnavailable)
	fmt.Fprintf(w, `{"error":"temporarily_unavailable","error_description":%q}`+"\n", err.Error())
	return true
}

func (rs *referenceServer) token(w http.ResponseWriter, r *http.Request) {
	if err := rs.check(r, rs.issuer+"/oauth2/token", ""); err != nil {
		if unavailable(w, err) {
			return
		}
		w.Header().Set("Content-Type", "application/json")
		w.Header().Set("Cache-Control", "no-store")
		w.WriteHeader(http.StatusBadRequest)
		fmt.Fprintf(w, `{"error":"invalid_dpop_proof","error_description":%q}`+"\n", err.Error())
		return
	}
	w.Header().Set("Content-Type", "application/json")
	w.Header().Set("Cache-Control", "no-store")
	w.Write(refTokenBody)
}

func (rs *referenceServer) hello(w http.ResponseWriter, r *http.Request) {
	scheme, token, _ := strings.Cut(r.Header.Get("Authorization"), " ")
	var err error
	if !strings.EqualFold(scheme, "DPoP") || token == "" {
		err = errors.New("an Authorization: DPoP token is required")
	} else {
		err = rs.check(r, rs.issuer+"/api/hello", token)
	}
	if err != nil {
		if unavailable(w, err) {
			return
		}
		w.Header().Set("WWW-Authenticate", fmt.Sprintf(`DPoP error="invalid_dpop_proof", error_description=%q, algs="ES256"`, err.Error()))
		w.Header().Set("Content-Type", "application/json")
		w.WriteHeader(http.StatusUnauthorized)
		fmt.Fprintf(w, `{"error":"invalid_dpop_proof","error_description":%q}`+"\n", err.Error())
		return
	}
	w.Header().Set("Content-Type", "application/json")
	w.Header().Set("Cache-Control", "no-store")
	w.Write(refHelloBody)
}

// check verifies the request's single DPoP proof for method r.Method at
// htu, bound to accessToken when that is not empty, then, with a replay
// store, records its jti.
func (rs *referenceServer) check(r *http.Request, htu, accessToken string) error {
	proofs := r.Header.Values("DPoP")
	if len(proofs) != 1 {
		return errors.New("exactly one DPoP header is required")
	}
	jti, err := verifyReferenceProof(proofs[0], r.Method, htu, accessToken, rs.now())
	if err != nil || rs.replay == nil {
		return err
	}
	inserted, err := rs.replay.insert(r.Context(), sha256.Sum256([]byte(jti)))
	switch {
	case err != nil:
		return fmt.Errorf("%w: %v", errStoreDown, err)
	case !inserted:
		return errReplayed
	}
	return nil
}

// refHeader and refClaims are the members of a proof the reference reads.
type refHeader struct {
	Typ string `json:"typ"`
	Alg string `json:"alg"`
	JWK struct {
		Kty string `json:"kty"`
		Crv string `json:"crv"`
		X   string `json:"x"`
		Y   string `json:"y"`
		D   string `json:"d"`
	} `json:"jwk"`
}

type refClaims struct {
	JTI string   `json:"jti"`
	HTM string   `json:"htm"`
	HTU string   `json:"htu"`
	IAT *float64 `json:"iat"`
	ATH string   `json:"ath"`
}

var b64url = base64.RawURLEncoding

// verifyReferenceProof is the whole of the reference's proof check; it
// returns the proof's jti.
func verifyReferenceProof(jws, method, htu, accessToken string, now time.Time) (string, error) {
	if len(jws) > refMaxProof {
		return "", errors.New("proof too large")
	}
	hdrSeg, rest, ok1 := strings.Cut(jws, ".")
	paySeg, sigSeg, ok2 := strings.Cut(rest, ".")
	if !ok1 || !ok2 || strings.Contains(sigSeg, ".") {
		return "", errors.New("not a compact JWS")
	}

	hdrJSON, err := b64url.DecodeString(hdrSeg)
	if err != nil {
		return "", errors.New("header is not base64url")
	}
	var h refHeader
	if err := json.Unmarshal(hdrJSON, &h); err != nil {
		return "", errors.New("header is not JSON")
	}
	if h.Typ != "dpop+jwt" || h.Alg != "ES256" {
		return "", errors.New("typ must be dpop+jwt and alg ES256")
	}
	if h.JWK.Kty != "EC" || h.JWK.Crv != "P-256" || h.JWK.D != "" {
		return "", errors.New("jwk must be a public P-256 EC key")
	}
	pub, err := p256Key(h.JWK.X, h.JWK.Y)
	if err != nil {
		return "", err
	}

	payJSON, err := b64url.DecodeString(paySeg)
	if err != nil {
		return "", errors.New("payload is not base64url")
	}
	var c refClaims
	if err := json.Unmarshal(payJSON, &c); err != nil {
		return "", errors.New("payload is not JSON")
	}
	if c.JTI == "" {
		return "", errors.New("jti is missing")
	}
	if c.HTM != method {
		return "", errors.New("htm does not match")
	}
	if c.HTU != htu {
		return "", errors.New("htu does not match")
	}
	if c.IAT == nil || math.IsNaN(*c.IAT) || *c.IAT < 0 || *c.IAT > 1e11 {
		return "", errors.New("iat is missing or out of range")
	}
	iat := time.Unix(0, int64(*c.IAT*1e9))
	if iat.Before(now.Add(-refMaxAge)) || iat.After(now.Add(refLeeway)) {
		return "", errors.New("iat is outside the acceptable window")
	}
	if accessToken != "" {
		sum := sha256.Sum256([]byte(accessToken))
		if c.ATH != b64url.EncodeToString(sum[:]) {
			return "", errors.New("ath does not match the access token")
		}
	}

	sig, err := b64url.DecodeString(sigSeg)
	if err != nil || len(sig) != 64 {
		return "", errors.New("signature is not a 64-byte ES256 signature")
	}
	digest := sha256.Sum256([]byte(jws[:len(hdrSeg)+1+len(paySeg)]))
	rInt := new(big.Int).SetBytes(sig[:32])
	sInt := new(big.Int).SetBytes(sig[32:])
	if !ecdsa.Verify(pub, digest[:], rInt, sInt) {
		return "", errors.New("signature does not verify")
	}
	return c.JTI, nil
}

// p256Key turns the x and y members of a P-256 JWK into a public key,
// refusing points that are not on the curve.
func p256Key(x64, y64 string) (*ecdsa.PublicKey, error) {
	x, errX := b64url.DecodeString(x64)
	y, errY := b64url.DecodeString(y64)
	if errX != nil || errY != nil || len(x) != 32 || len(y) != 32 {
		return nil, errors.New("jwk x and y must be 32 bytes of base64url")
	}
	point := make([]byte, 0, 65)
	point = append(point, 4)
	point = append(point, x...)
	point = append(point, y...)
	pub, err := ecdsa.ParseUncompressedPublicKey(elliptic.P256(), point)
	if err != nil {
		return nil, errors.New("jwk is not a point on P-256")
	}
	return pub, nil
}

// serveReference runs the reference server on addr until ctx is done.
// issuer is the public base URL; empty means "http://" + the bound address.
func serveReference(ctx context.Context, addr, issuer string, replay refReplay, out io.Writer) error {
	ln, err := net.Listen("tcp", addr)
	if err != nil {
		return err
	}
	defer ln.Close()
	if issuer == "" {
		issuer = "http://" + ln.Addr().String()
	}
	srv := &http.Server{
		Handler:           newReferenceHandler(issuer, nil, replay),
		ReadHeaderTimeout: 10 * time.Second,
		ReadTimeout:       30 * time.Second,
		WriteTimeout:      30 * time.Second,
		IdleTimeout:       2 * time.Minute,
	}
	fmt.Fprintf(out, "reference server listening on %s (htu base %s)\n", ln.Addr(), issuer)
	// It stops quietly: its output is the listening line above.
	return serve.Until(ctx, srv, ln, 5*time.Second, slog.New(slog.DiscardHandler))
}
