package testkit

import (
	"encoding/json"
	"io"
	"net/http"
	"net/url"
	"strings"
	"testing"
	"time"

	"github.com/dpopkit/dpop"
	"github.com/dpopkit/dpop/handlers"
	"github.com/dpopkit/dpop/internal/testkit/dpoptest"
)

// Reply is a response of the kit, decoded.
type Reply struct {
	Status int
	Header http.Header
	// Body is the JSON object the response held, if it was one.
	Body map[string]any
	Raw  string
	// Took is the time from sending the request to reading the whole
	// response.
	Took time.Duration
}

// Str is Body's string member k; "" when it has none.
func (r Reply) Str(k string) string { s, _ := r.Body[k].(string); return s }

// WantStatus fails tb unless r has the status and, when code is not empty,
// that OAuth error code; what names the request.
func WantStatus(tb testing.TB, what string, r Reply, status int, code string) {
	tb.Helper()
	if r.Status != status || (code != "" && r.Str("error") != code) {
		tb.Fatalf("%s: %d %s, want %d %s", what, r.Status, strings.TrimSpace(r.Raw), status, code)
	}
}

// Send sends req to the kit. It does not fail a test, so any goroutine may
// call it.
func (k *Kit) Send(req *http.Request) (Reply, error) {
	start := time.Now()
	resp, err := k.ts.Client().Do(req)
	if err != nil {
		return Reply{}, err
	}
	defer resp.Body.Close()
	raw, err := io.ReadAll(resp.Body)
	r := Reply{Status: resp.StatusCode, Header: resp.Header, Raw: string(raw), Took: time.Since(start)}
	json.Unmarshal(raw, &r.Body)
	return r, err
}

// Do sends req to the kit, failing tb when there is no response.
func (k *Kit) Do(tb testing.TB, req *http.Request) Reply {
	tb.Helper()
	r, err := k.Send(req)
	if err != nil {
		tb.Fatalf("%s: %v", k.Name, err)
	}
	return r
}

// PostRequest is a request that posts form to path with a proof (none when
// empty), authenticated as the confidential client with HTTP Basic when
// basic is set.
func (k *Kit) PostRequest(tb testing.TB, path string, form url.Values, basic bool, proof string) *http.Request {
	tb.Helper()
	req, err := http.NewRequest("POST", k.URL+path, strings.NewReader(form.Encode()))
	fatalIf(tb, err, "NewRequest")
	req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	if basic {
		req.SetBasicAuth(ConfID, ConfSecret)
	}
	if proof != "" {
		req.Header.Set("DPoP", proof)
	}
	return req
}

// Post posts form to path as PostRequest makes it.
func (k *Kit) Post(tb testing.TB, path string, form url.Values, basic bool, proof string) Reply {
	tb.Helper()
	return k.Do(tb, k.PostRequest(tb, path, form, basic, proof))
}

// API calls the API with token and the given proof.
func (k *Kit) API(tb testing.TB, token, proof string) Reply {
	tb.Helper()
	req, err := http.NewRequest("GET", k.URL+APIPath, nil)
	fatalIf(tb, err, "NewRequest")
	req.Header.Set("Authorization", "DPoP "+token)
	req.Header.Set("DPoP", proof)
	return k.Do(tb, req)
}

// Proof is a fresh proof by s for method and path, with the kit's Nonce, and
// for token unless it is empty.
func (k *Kit) Proof(tb testing.TB, s *dpop.Signer, method, path, token string) string {
	tb.Helper()
	return Proof(tb, s, method, path, dpop.ProofOptions{AccessToken: token, Nonce: k.Nonce})
}

// APIWith calls the API with token and a fresh proof by s.
func (k *Kit) APIWith(tb testing.TB, s *dpop.Signer, token string) Reply {
	tb.Helper()
	return k.API(tb, token, k.Proof(tb, s, "GET", APIPath, token))
}

// ClientCredentials asks for a token as the confidential client, with a
// fresh proof by s.
func (k *Kit) ClientCredentials(tb testing.TB, s *dpop.Signer) Reply {
	tb.Helper()
	return k.Post(tb, TokenPath, ClientCredentialsForm(), true, k.Proof(tb, s, "POST", TokenPath, ""))
}

// Token is the access token ClientCredentials gets; anything but a DPoP
// token fails tb.
func (k *Kit) Token(tb testing.TB, s *dpop.Signer) string {
	tb.Helper()
	r := k.ClientCredentials(tb, s)
	WantStatus(tb, "token request at "+k.Name, r, http.StatusOK, "")
	if r.Str("token_type") != handlers.TokenTypeDPoP || r.Str("access_token") == "" {
		tb.Fatalf("token response of %s: %s", k.Name, r.Raw)
	}
	return r.Str("access_token")
}

// Redeem exchanges code, saved by SaveCode, for tokens as the public
// client, with a fresh proof by s.
func (k *Kit) Redeem(tb testing.TB, s *dpop.Signer, code string) Reply {
	tb.Helper()
	return k.Post(tb, TokenPath, CodeForm(code), false, k.Proof(tb, s, "POST", TokenPath, ""))
}

// Refresh uses refresh token rt of the public client, with a fresh proof by
// s.
func (k *Kit) Refresh(tb testing.TB, s *dpop.Signer, rt string) Reply {
	tb.Helper()
	form := url.Values{"grant_type": {handlers.GrantRefreshToken}, "refresh_token": {rt}, "client_id": {PubID}}
	return k.Post(tb, TokenPath, form, false, k.Proof(tb, s, "POST", TokenPath, ""))
}

// Proof is a fresh proof by s for method and path at PublicURL.
func Proof(tb testing.TB, s *dpop.Signer, method, path string, opts dpop.ProofOptions) string {
	tb.Helper()
	return dpoptest.Proof(tb, s, method, PublicURL+path, opts)
}
