package pgstore

import (
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"encoding/json"
	"github.com/jackc/pgx/v5/pgxpool"
	"io"
	"net/http"
	"net/http/httptest"
	"net/url"
	"strings"
	"testing"
	"time"

	"github.com/dpopkit/dpop"
	"github.com/dpopkit/dpop/adaptertest"
	"github.com/dpopkit/dpop/handlers"
	"github.com/dpopkit/dpop/middleware"
	"github.com/dpopkit/dpop/store"
)

// TestInstances: two instances of a service over one schema (a fresh one
// for each subtest) act as one service. Each instance has a pool of its
// own, as two processes would.
func TestInstances(t *testing.T) {
	pa, pb := testPool(t), testPool(t)
	adaptertest.RunInstances(t, func(t *testing.T) (store.Store, store.Store, func()) {
		schema := freshSchema(t, pa)
		var stores [2]*Store
		for i, pool := range []*pgxpool.Pool{pa, pb} {
			s, err := New(bg, Options{Pool: pool, Schema: schema})
			if err != nil {
				t.Fatal(err)
			}
			stores[i] = s
		}
		return stores[0], stores[1], func() { stores[0].Close(); stores[1].Close() }
	})
}

// A kit, the authorization server and a protected API (handlers and
// middleware), over PostgreSQL, for the outage test and the benchmarks. It
// answers on a loopback httptest server, but its issuer, resource URL and
// therefore every proof's htu are the public URL.

const (
	publicURL  = "https://api.example.test"
	apiPath    = "/api/whoami"
	confID     = "conf"
	confSecret = "conf-secret-0123456789abcdef0123"
)

// kit is a running authorization server and API.
type kit struct {
	url string // where it listens
}

// newKit starts a kit over st.
func newKit(t testing.TB, st store.Store) *kit {
	t.Helper()
	srv, err := handlers.New(handlers.Config{Issuer: publicURL, Store: st})
	if err != nil {
		t.Fatal(err)
	}
	mw, err := middleware.New(middleware.Options{
		ResourceURL: publicURL,
		DPoP:        dpop.VerifierOptions{ReplayCache: st},
		Validator:   middleware.StoreValidator{Store: st},
	})
	if err != nil {
		t.Fatal(err)
	}
	mux := http.NewServeMux()
	srv.Mount(mux)
	mux.Handle(apiPath, mw(http.HandlerFunc(func(http.ResponseWriter, *http.Request) {})))
	ts := httptest.NewServer(mux)
	t.Cleanup(ts.Close)
	return &kit{url: ts.URL}
}

// registerClients saves the confidential client.
func registerClients(t testing.TB, st store.Store) {
	t.Helper()
	c := &store.Client{ID: confID, SecretHash: store.HashSecret(confSecret), GrantTypes: []string{"client_credentials"},
		Scopes: []string{"read"}, DPoPBound: true}
	if err := st.SaveClient(bg, c); err != nil {
		t.Fatal(err)
	}
}

func newSigner(t testing.TB) *dpop.Signer {
	t.Helper()
	k, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	s, err := dpop.NewSigner(k, dpop.SignerOptions{}) // ES256
	if err != nil {
		t.Fatal(err)
	}
	return s
}

// proof is a proof by s for method and path at the public URL.
func proof(t testing.TB, s *dpop.Signer, method, path string, opts dpop.ProofOptions) string {
	t.Helper()
	p, err := s.Proof(method, publicURL+path, opts)
	if err != nil {
		t.Fatal(err)
	}
	return p
}

// reply is a decoded response and how long it took.
type reply struct {
	status int
	body   map[string]any
	raw    string
	took   time.Duration
}

func (r reply) str(k string) string { s, _ := r.body[k].(string); return s }

// send sends a request with a fresh proof by s to k: with token, a call of
// the API; without, a client credentials token request.
func send(t testing.TB, k *kit, s *dpop.Signer, token string) reply {
	t.Helper()
	method, path, body := "GET", apiPath, io.Reader(nil)
	if token == "" {
		method, path = "POST", "/oauth2/token"
		body = strings.NewReader(url.Values{"grant_type": {"client_credentials"}}.Encode())
	}
	req, err := http.NewRequest(method, k.url+path, body)
	if err != nil {
		t.Fatal(err)
	}
	req.Header.Set("DPoP", proof(t, s, method, path, dpop.ProofOptions{AccessToken: token}))
	if token == "" {
		req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
		req.SetBasicAuth(confID, confSecret)
	} else {
		req.Header.Set("Authorization", "DPoP "+token)
	}
	start := time.Now()
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	raw, _ := io.ReadAll(resp.Body)
	r := reply{status: resp.StatusCode, raw: string(raw), took: time.Since(start)}
	json.Unmarshal(raw, &r.body)
	return r
}

func tokenRequest(t testing.TB, k *kit, s *dpop.Signer) reply { t.Helper(); return send(t, k, s, "") }

func apiCall(t testing.TB, k *kit, s *dpop.Signer, token string) reply {
	t.Helper()
	return send(t, k, s, token)
}

func wantStatus(t testing.TB, r reply, status int, code, what string) {
	t.Helper()
	if r.status != status || (code != "" && r.str("error") != code) {
		t.Fatalf("%s: %d %s, want %d %s", what, r.status, strings.TrimSpace(r.raw), status, code)
	}
}

// TestKitOutage takes the database away from a running instance: the token
// endpoint and the API answer 503 server_error within a bounded time, never
// 200 or 401, and the same store serves again once the database is back.
func TestKitOutage(t *testing.T) {
	rawURL := databaseURL(t)
	schema := freshSchema(t, testPool(t))
	p, proxied := newProxy(t, rawURL)
	const timeout = time.Second
	st := openStore(t, newPool(t, proxied, nil), schema, func(o *Options) { o.QueryTimeout = timeout })
	registerClients(t, st)
	k := newKit(t, st)
	signer := newSigner(t)
	r := tokenRequest(t, k, signer)
	wantStatus(t, r, 200, "", "token request")
	tok := r.str("access_token")
	wantStatus(t, apiCall(t, k, signer, tok), 200, "", "API call")

	for _, tc := range []struct {
		name  string
		mode  proxyMode
		bound time.Duration
	}{
		{"ClosedPort", portClosed, 3 * time.Second},
		{"Refused", refuse, 3 * time.Second},
		{"Partition", blackhole, timeout + 2*time.Second},
	} {
		t.Run(tc.name, func(t *testing.T) {
			must(t, p.set(tc.mode))
			for _, r := range []reply{tokenRequest(t, k, signer), apiCall(t, k, signer, tok)} {
				wantStatus(t, r, 503, string(dpop.CodeServerError), "request with the database unreachable")
				if r.took > tc.bound {
					t.Errorf("the refusal took %v, more than %v", r.took, tc.bound)
				}
			}
			must(t, p.set(forward))
			var again reply
			waitFor(t, 10*time.Second, func() bool {
				again = tokenRequest(t, k, signer)
				return again.status == 200
			}, "the token endpoint answers again")
			wantStatus(t, apiCall(t, k, signer, again.str("access_token")), 200, "", "API call with a new token")
			wantStatus(t, apiCall(t, k, signer, tok), 200, "", "API call with the token from before the outage")
		})
	}
}
