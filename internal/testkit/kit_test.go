package testkit_test

import (
	"crypto/rand"
	"errors"
	"fmt"
	"net/http"
	"net/url"
	"testing"
	"time"

	"github.com/dpopkit/dpop"
	"github.com/dpopkit/dpop/internal/testkit"
	"github.com/dpopkit/dpop/internal/testkit/dpoptest"
	"github.com/dpopkit/dpop/store"
)

func newMemory(t testing.TB) *store.Memory {
	t.Helper()
	m, err := store.NewMemory(store.MemoryOptions{})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { m.Close() })
	return m
}

// TestKit: a round trip of the kit over the memory store: a token of the
// confidential client works at the API with a proof of its key only, and a
// replayed proof is refused; a code SaveCode saved is redeemed once, and its
// refresh token rotates; revocation reaches the API.
func TestKit(t *testing.T) {
	m := newMemory(t)
	testkit.RegisterClients(t, m)
	k := testkit.New(t, m, testkit.Options{Name: "K"})
	s := dpoptest.NewSigner(t)

	tok := k.Token(t, s)
	pr := k.Proof(t, s, "GET", testkit.APIPath, tok)
	r := k.API(t, tok, pr)
	testkit.WantStatus(t, "API call", r, http.StatusOK, "")
	if r.Str("sub") != testkit.ConfID || r.Str("client_id") != testkit.ConfID || r.Str("instance") != "K" || r.Took <= 0 {
		t.Fatalf("API answered %s in %v", r.Raw, r.Took)
	}
	testkit.WantStatus(t, "replayed proof", k.API(t, tok, pr), http.StatusUnauthorized, string(dpop.CodeInvalidProof))
	testkit.WantStatus(t, "proof of another key", k.APIWith(t, dpoptest.NewSigner(t), tok), http.StatusUnauthorized, string(dpop.CodeInvalidToken))
	testkit.WantStatus(t, "no proof", k.Post(t, testkit.TokenPath, testkit.ClientCredentialsForm(), true, ""),
		http.StatusBadRequest, string(dpop.CodeInvalidProof))

	code := testkit.SaveCode(t, m)
	r = k.Redeem(t, s, code)
	testkit.WantStatus(t, "code redemption", r, http.StatusOK, "")
	rt := r.Str("refresh_token")
	testkit.WantStatus(t, "API call with the code's token", k.APIWith(t, s, r.Str("access_token")), http.StatusOK, "")
	testkit.WantStatus(t, "second redemption", k.Redeem(t, s, code), http.StatusBadRequest, string(dpop.CodeInvalidGrant))
	m2 := newMemory(t)
	testkit.RegisterClients(t, m2)
	k2 := testkit.New(t, m2, testkit.Options{})
	r = k2.Redeem(t, s, testkit.SaveCode(t, m2))
	testkit.WantStatus(t, "redemption at another kit", r, http.StatusOK, "")
	r = k2.Refresh(t, s, r.Str("refresh_token"))
	testkit.WantStatus(t, "refresh", r, http.StatusOK, "")
	if r.Str("refresh_token") == "" || r.Str("refresh_token") == rt {
		t.Fatalf("refresh answered %s", r.Raw)
	}

	tok = k.Token(t, s)
	testkit.WantStatus(t, "revocation", k.Post(t, testkit.RevokePath, url.Values{"token": {tok}}, true, ""), http.StatusOK, "")
	testkit.WantStatus(t, "API call with a revoked token", k.APIWith(t, s, tok), http.StatusUnauthorized, string(dpop.CodeInvalidToken))
}

// TestKitNonces: with Options.DPoP.Nonces, a proof without a nonce is
// refused with one, and the kit's proofs carry Nonce.
func TestKitNonces(t *testing.T) {
	m := newMemory(t)
	testkit.RegisterClients(t, m)
	secret := make([]byte, 32)
	rand.Read(secret)
	nonces, err := dpop.NewHMACNonceSource(dpop.HMACNonceOptions{Secret: secret})
	if err != nil {
		t.Fatal(err)
	}
	k := testkit.New(t, m, testkit.Options{DPoP: dpop.VerifierOptions{Nonces: nonces}})
	s := dpoptest.NewSigner(t)
	r := k.ClientCredentials(t, s)
	testkit.WantStatus(t, "token request without a nonce", r, http.StatusBadRequest, string(dpop.CodeUseNonce))
	if k.Nonce = r.Header.Get("DPoP-Nonce"); k.Nonce == "" {
		t.Fatal("no DPoP-Nonce")
	}
	testkit.WantStatus(t, "API call with the nonce", k.APIWith(t, s, k.Token(t, s)), http.StatusOK, "")
}

// TestKitDown: PostRequest authenticates only when asked, and Send
// reports a kit that does not answer without failing the test.
func TestKitDown(t *testing.T) {
	k := testkit.New(t, newMemory(t), testkit.Options{})
	req := k.PostRequest(t, testkit.TokenPath, testkit.ClientCredentialsForm(), true, "")
	if user, _, ok := req.BasicAuth(); !ok || user != testkit.ConfID {
		t.Fatalf("PostRequest with basic: %q %v", user, ok)
	}
	req = k.PostRequest(t, testkit.TokenPath, testkit.ClientCredentialsForm(), false, "")
	if _, _, ok := req.BasicAuth(); ok {
		t.Fatal("PostRequest without basic authenticates")
	}
	req.URL.Host = "127.0.0.1:1"
	if _, err := k.Send(req); err == nil {
		t.Fatal("Send to a closed port: no error")
	}
}

// fatalTB records a Fatalf instead of ending the test.
type fatalTB struct {
	testing.TB
	msg string
}

func (f *fatalTB) Helper() {}

func (f *fatalTB) Fatalf(format string, args ...any) { f.msg = fmt.Sprintf(format, args...) }

// TestWantStatus: WantStatus fails on another status, or another error
// code when one is wanted, and names the request.
func TestWantStatus(t *testing.T) {
	r := testkit.Reply{Status: 400, Body: map[string]any{"error": "invalid_grant"}, Raw: `{"error":"invalid_grant"}` + "\n"}
	for _, tc := range []struct {
		status int
		code   string
		fails  bool
	}{{400, "", false}, {400, "invalid_grant", false}, {400, "invalid_request", true}, {200, "", true}} {
		f := &fatalTB{TB: t}
		testkit.WantStatus(f, "request", r, tc.status, tc.code)
		if want := `request: 400 {"error":"invalid_grant"}, want ` + fmt.Sprint(tc.status, " ", tc.code); (f.msg != "") != tc.fails || (tc.fails && f.msg != want) {
			t.Errorf("want %d %q: failure %q", tc.status, tc.code, f.msg)
		}
	}
}

// TestRotateChain: RotateChain leaves the last token live and the ones
// before it consumed.
func TestRotateChain(t *testing.T) {
	m := newMemory(t)
	exp := time.Now().Add(time.Hour)
	hs := testkit.RotateChain(t, m, "g", 3, func(int) time.Time { return exp })
	if len(hs) != 4 {
		t.Fatalf("%d hashes, want 4", len(hs))
	}
	if got, err := m.GetRefreshToken(t.Context(), hs[3]); err != nil || got.GrantID != "g" || !got.ExpiresAt.Equal(exp) {
		t.Fatalf("last token: %+v, %v", got, err)
	}
	for _, h := range hs[:3] {
		if _, err := m.GetRefreshToken(t.Context(), h); !errors.Is(err, store.ErrConsumed) {
			t.Fatalf("rotated token: %v, want ErrConsumed", err)
		}
	}
}

func BenchmarkTokenEndpoint(b *testing.B) {
	testkit.BenchTokenEndpoint(b, testkit.BenchMemory("memory"))
}

func BenchmarkMiddleware(b *testing.B) { testkit.BenchMiddleware(b, testkit.BenchMemory("memory")) }
