package handlers

import (
	"context"
	"errors"
	"net/http"
	"net/http/httptest"
	"net/url"
	"strings"
	"sync/atomic"
	"testing"
	"time"
)

// Where a jwks_uri (or a redirect from it) may be fetched: https, or http on
// a loopback host when it is the registered URI itself; never with
// userinfo or without a host.
func TestSecureFetchURL(t *testing.T) {
	for _, tc := range []struct {
		uri      string
		redirect bool
		want     bool
	}{
		{"https://client.example/jwks", false, true},
		{"https://client.example/jwks", true, true},
		{"http://127.0.0.1:9000/jwks", false, true},
		{"http://localhost/jwks", false, true},
		{"http://127.0.0.1:9000/jwks", true, false},
		{"http://client.example/jwks", false, false},
		{"https://user@client.example/jwks", false, false},
		{"https:///jwks", false, false},
		{"ftp://client.example/jwks", false, false},
	} {
		p, err := url.Parse(tc.uri)
		if err != nil {
			t.Fatal(err)
		}
		if got := secureFetchURL(p, tc.redirect); got != tc.want {
			t.Errorf("secureFetchURL(%q, redirect %v) = %v, want %v", tc.uri, tc.redirect, got, tc.want)
		}
	}
}

// The fetcher's own client: a timeout of at most 5 s whatever the host
// gives, the host's redirect rule still consulted.
func TestJWKSHTTPClient(t *testing.T) {
	for _, tc := range []struct{ base, want time.Duration }{{0, jwksURITimeout}, {time.Minute, jwksURITimeout}, {time.Second, time.Second}} {
		if got := jwksHTTPClient(&http.Client{Timeout: tc.base}).Timeout; got != tc.want {
			t.Errorf("base timeout %v: got %v, want %v", tc.base, got, tc.want)
		}
	}
	var consulted atomic.Bool
	c := jwksHTTPClient(&http.Client{CheckRedirect: func(*http.Request, []*http.Request) error {
		consulted.Store(true)
		return errors.New("host says no")
	}})
	// A redirect the kit's own rule allows (the same loopback origin), so
	// that the host's rule decides.
	mux := http.NewServeMux()
	mux.Handle("/start", http.RedirectHandler("/jwks", http.StatusFound))
	mux.HandleFunc("/jwks", func(w http.ResponseWriter, r *http.Request) { w.Write([]byte(`{"keys":[]}`)) })
	ts := httptest.NewServer(mux)
	defer ts.Close()
	u := newJWKSURIs(c, time.Now)
	if _, err := u.fetch(context.Background(), ts.URL+"/start"); err == nil || !consulted.Load() {
		t.Errorf("fetch: %v, host's CheckRedirect consulted %v", err, consulted.Load())
	}
}

// What a jwks_uri fetch refuses: an answer other than 200, a document over
// 64 KiB, more than 3 redirects, a redirect from the registered loopback
// http URI to another origin over http, and a URI it may not fetch at all.
// A fetch that fails is ErrClientKeysUnavailable (503, the server cannot
// decide); an unusable document or URI is the client's fault.
func TestJWKSURIFetchRefusals(t *testing.T) {
	es := key(t, "ec256", "ES256", "es")
	doc := jwksOf(t, es)
	hops := 0
	mux := http.NewServeMux()
	mux.HandleFunc("/ok", func(w http.ResponseWriter, r *http.Request) { w.Write(doc) })
	mux.HandleFunc("/big", func(w http.ResponseWriter, r *http.Request) {
		w.Write([]byte(`{"keys":[],"pad":"` + strings.Repeat("x", jwksURIMaxBytes) + `"}`))
	})
	mux.HandleFunc("/fail", func(w http.ResponseWriter, r *http.Request) { http.Error(w, "down", http.StatusInternalServerError) })
	mux.HandleFunc("/hop", func(w http.ResponseWriter, r *http.Request) {
		hops++
		http.Redirect(w, r, "/hop", http.StatusFound)
	})
	mux.HandleFunc("/one-hop", func(w http.ResponseWriter, r *http.Request) { http.Redirect(w, r, "/ok", http.StatusFound) })
	ts := httptest.NewServer(mux)
	defer ts.Close()
	other := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) { w.Write(doc) }))
	defer other.Close()
	mux.HandleFunc("/elsewhere", func(w http.ResponseWriter, r *http.Request) { http.Redirect(w, r, other.URL, http.StatusFound) })

	u := newJWKSURIs(jwksHTTPClient(nil), time.Now)
	for _, tc := range []struct {
		name, uri string
		want      error // nil: a set
	}{
		{"200 with a JWK Set", ts.URL + "/ok", nil},
		{"a redirect on the same loopback origin", ts.URL + "/one-hop", nil},
		{"500", ts.URL + "/fail", ErrClientKeysUnavailable},
		{"over 64 KiB", ts.URL + "/big", errAssertionKeys},
		{"more than 3 redirects", ts.URL + "/hop", ErrClientKeysUnavailable},
		{"a redirect to another origin over http", ts.URL + "/elsewhere", ErrClientKeysUnavailable},
		{"http on a host that is not loopback", "http://client.example/jwks", errAssertionKeys},
		{"not a URL", "://jwks", errAssertionKeys},
	} {
		t.Run(tc.name, func(t *testing.T) {
			set, err := u.fetch(context.Background(), tc.uri)
			switch {
			case tc.want == nil && (err != nil || set == nil || set.Len() != 1):
				t.Fatalf("got %v, %v; want the set", set, err)
			case tc.want != nil && !errors.Is(err, tc.want):
				t.Fatalf("got %v, %v; want %v", set, err, tc.want)
			}
		})
	}
	if hops != jwksURIMaxRedirects {
		t.Errorf("%d redirects followed, want %d", hops, jwksURIMaxRedirects)
	}
}

// A fresh set is read without waiting for a fetch in progress: a forged
// assertion naming a client (an unknown kid starts a refetch before any
// signature is checked) must not hold up that client's real requests for
// the fetch's duration.
func TestJWKSURIFreshSetWhileFetching(t *testing.T) {
	doc := jwksOf(t, key(t, "ec256", "ES256", "es"))
	release := make(chan struct{})
	var calls atomic.Int32
	ts := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if calls.Add(1) > 1 {
			<-release
		}
		w.Write(doc)
	}))
	defer ts.Close()
	defer close(release)
	var offset atomic.Int64
	now := func() time.Time { return time.Now().Add(time.Duration(offset.Load())) }
	u := newJWKSURIs(jwksHTTPClient(nil), now)
	if _, err := u.keys(context.Background(), ts.URL, false); err != nil {
		t.Fatal(err)
	}
	offset.Store(int64(jwksURIRefetch + time.Second)) // a refetch is allowed again; the set is still fresh
	go u.keys(context.Background(), ts.URL, true)
	for calls.Load() < 2 {
		time.Sleep(time.Millisecond)
	}
	done := make(chan error, 1)
	go func() { _, err := u.keys(context.Background(), ts.URL, false); done <- err }()
	select {
	case err := <-done:
		if err != nil {
			t.Fatal(err)
		}
	case <-time.After(time.Second):
		t.Fatal("a read of the fresh set waited for the fetch in progress")
	}
}
