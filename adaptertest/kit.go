package adaptertest

import (
	"crypto/rand"
	"net/http"
	"testing"

	"github.com/dpopkit/dpop"
	"github.com/dpopkit/dpop/internal/testkit"
	"github.com/dpopkit/dpop/internal/testkit/dpoptest"
	"github.com/dpopkit/dpop/store"
)

// The wiring of RunInstances: instances of one service, each a kit of
// package testkit (the authorization server of package handlers and an API
// behind package middleware), over one store and on a loopback listener of
// its own, as processes behind one load balancer. Every instance has the
// same public URL, which issuer, resource URL and the htu of every proof
// name, while requests go to each instance's own listener.

// pair is instances A and B over one store, with the test clients
// registered.
type pair struct {
	store store.Store
	a, b  *testkit.Kit
}

// NewStores returns two stores over the same data, as two processes would
// have them (two connections to one database, the same key prefix or
// schema), and a function that releases both. A store that lives in the
// process has nothing to share: SameStore gives it to both instances.
type NewStores func(t *testing.T) (a, b store.Store, cleanup func())

// SameStore makes a NewStores that hands the one store newStore returns to
// both instances: for stores that live in the process, such as
// store.Memory.
func SameStore(newStore NewStore) NewStores {
	return func(t *testing.T) (store.Store, store.Store, func()) {
		s, cleanup := newStore(t)
		return s, s, cleanup
	}
}

// newPair starts A over the first and B over the second store of a fresh
// pair from newStores. With nonces, each
// has a nonce source of its own over one shared secret, as processes would,
// and the proofs the helpers make carry a nonce A handed out.
func newPair(t *testing.T, newStores NewStores, nonces bool) *pair {
	t.Helper()
	s, sb, cleanup := newStores(t)
	if s == nil || sb == nil {
		t.Fatal("constructor returned a nil store")
	}
	if cleanup != nil {
		t.Cleanup(cleanup)
	}
	var na, nb dpop.NonceSource
	if nonces {
		secret := make([]byte, 32)
		rand.Read(secret)
		na, nb = nonceSource(t, secret), nonceSource(t, secret)
	}
	p := &pair{store: s, a: instance(t, "A", s, na), b: instance(t, "B", sb, nb)}
	testkit.RegisterClients(t, s)
	if nonces {
		r := p.a.Post(t, testkit.TokenPath, testkit.ClientCredentialsForm(), true,
			testkit.Proof(t, dpoptest.NewSigner(t), "POST", testkit.TokenPath, dpop.ProofOptions{}))
		testkit.WantStatus(t, "token request without a nonce at A", r, http.StatusBadRequest, string(dpop.CodeUseNonce))
		p.a.Nonce = r.Header.Get("DPoP-Nonce")
		if p.a.Nonce == "" {
			t.Fatal("no DPoP-Nonce from A with use_dpop_nonce")
		}
		p.b.Nonce = p.a.Nonce
	}
	return p
}

// instance starts an instance named name over s; nonces, when not nil,
// turns server nonces on at the token endpoint and at the API.
func instance(t *testing.T, name string, s store.Store, nonces dpop.NonceSource) *testkit.Kit {
	t.Helper()
	return testkit.New(t, s, testkit.Options{Name: name, DPoP: dpop.VerifierOptions{Nonces: nonces}})
}

// nonceSource is an HMAC nonce source keyed by secret.
func nonceSource(t *testing.T, secret []byte) dpop.NonceSource {
	t.Helper()
	n, err := dpop.NewHMACNonceSource(dpop.HMACNonceOptions{Secret: secret})
	must(t, err, "NewHMACNonceSource")
	return n
}
