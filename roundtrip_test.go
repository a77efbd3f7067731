package dpop

import (
	"crypto"
	"encoding/json"
	"errors"
	"io"
	"net/http"
	"net/http/httptest"
	"net/url"
	"strings"
	"sync/atomic"
	"testing"
	"time"
)

// Proofs from the Signer pass the Verifier, for every key type.
func TestSignerVerifierRoundTrip(t *testing.T) {
	v := newTestVerifier(t, nil)
	for _, alg := range DefaultAlgorithms() {
		t.Run(alg, func(t *testing.T) {
			k := newTestKey(t, alg)
			s, err := NewSigner(k.priv, SignerOptions{Algorithm: alg, Now: func() time.Time { return testNow }})
			if err != nil {
				t.Fatal(err)
			}
			proof, err := s.Proof("GET", "https://server.example.com/api?q=1#f", ProofOptions{AccessToken: "tok", Nonce: "n"})
			if err != nil {
				t.Fatal(err)
			}
			p, err := v.Verify(bg, Request{Method: "GET", URL: "https://server.example.com/api", Proofs: []string{proof}, AccessToken: "tok"})
			if err != nil {
				t.Fatal(err)
			}
			if p.JKT != s.JKT() || p.Algorithm != alg || p.Nonce != "n" {
				t.Fatalf("proof %+v, signer jkt %s", p, s.JKT())
			}
		})
	}
}

// dpopServer is an httptest server that checks proofs with a Verifier that
// requires nonces, answering as a token endpoint (400) on /token and as a
// resource (401) elsewhere.
func dpopServer(t *testing.T) (*httptest.Server, *atomic.Int32) {
	t.Helper()
	var hits atomic.Int32
	var v *Verifier
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		hits.Add(1)
		token := ""
		if a := r.Header.Get("Authorization"); strings.HasPrefix(a, "DPoP ") {
			token = a[len("DPoP "):]
		}
		body, _ := io.ReadAll(r.Body)
		p, err := v.VerifyHTTP(r.Context(), r, token)
		if err != nil {
			var e *Error
			errors.As(err, &e)
			if e.Nonce != "" {
				w.Header().Set("DPoP-Nonce", e.Nonce)
			}
			if r.URL.Path == "/token" {
				w.WriteHeader(http.StatusBadRequest)
				json.NewEncoder(w).Encode(map[string]string{"error": string(e.Code)})
				return
			}
			w.Header().Set("WWW-Authenticate", `DPoP algs="ES256", error="`+string(e.Code)+`"`)
			w.WriteHeader(http.StatusUnauthorized)
			return
		}
		json.NewEncoder(w).Encode(map[string]string{"jkt": p.JKT, "body": string(body), "ath": p.ATH})
	}))
	t.Cleanup(srv.Close)
	nonces := newTestNonces(t)
	nonces.now = time.Now
	var err error
	v, err = NewVerifier(VerifierOptions{BaseURL: srv.URL, Nonces: nonces})
	if err != nil {
		t.Fatal(err)
	}
	return srv, &hits
}

// The Transport, against a server that really verifies proofs and requires
// nonces: the first request learns the nonce and retries once, replaying the
// body; later requests carry the nonce and succeed first time; ath is set for
// a DPoP access token.
func TestTransportAgainstVerifier(t *testing.T) {
	srv, hits := dpopServer(t)
	for _, alg := range []string{ES256, EdDSA, PS256} {
		t.Run(alg, func(t *testing.T) {
			s, err := NewSigner(newTestKey(t, alg).priv.(crypto.Signer), SignerOptions{})
			if err != nil {
				t.Fatal(err)
			}
			client := &http.Client{Transport: NewTransport(s, nil)}
			hits.Store(0)
			form := url.Values{"grant_type": {"client_credentials"}}
			resp, err := client.PostForm(srv.URL+"/token", form)
			if err != nil {
				t.Fatal(err)
			}
			var got map[string]string
			json.NewDecoder(resp.Body).Decode(&got)
			resp.Body.Close()
			if resp.StatusCode != 200 || got["jkt"] != s.JKT() || got["body"] != form.Encode() || hits.Load() != 2 {
				t.Fatalf("status %d, %v, %d requests", resp.StatusCode, got, hits.Load())
			}

			req, _ := http.NewRequest("GET", srv.URL+"/api/hello?x=1", nil)
			req.Header.Set("Authorization", "DPoP the-token")
			resp, err = client.Do(req)
			if err != nil {
				t.Fatal(err)
			}
			json.NewDecoder(resp.Body).Decode(&got)
			resp.Body.Close()
			if resp.StatusCode != 200 || got["ath"] != ATH("the-token") || hits.Load() != 3 {
				t.Fatalf("status %d, %v, %d requests", resp.StatusCode, got, hits.Load())
			}
			if req.Header.Get("DPoP") != "" {
				t.Fatal("caller's request was modified")
			}
		})
	}
}

// Regression (second review): Go leaves '[' and ']' raw in a request path,
// where RFC 3986 does not allow them; the expected htu encodes them, so a
// request to such a path verifies with the kit's own Signer.
func TestVerifyHTTPBracketsInPath(t *testing.T) {
	v := newTestVerifier(t, nil)
	s, err := NewSigner(newTestKey(t, ES256).priv, SignerOptions{Now: func() time.Time { return testNow }})
	if err != nil {
		t.Fatal(err)
	}
	r := httptest.NewRequest("GET", "/items/a[1]", nil)
	r.Header.Set("DPoP", proofFor(t, s, "GET", testBase+"/items/a[1]"))
	if _, err := v.VerifyHTTP(bg, r, ""); err != nil {
		t.Fatal(err)
	}
}

func proofFor(t *testing.T, s *Signer, method, u string) string {
	t.Helper()
	p, err := s.Proof(method, u, ProofOptions{})
	if err != nil {
		t.Fatal(err)
	}
	return p
}
