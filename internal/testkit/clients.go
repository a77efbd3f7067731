package testkit

import (
	"context"
	"crypto/rand"
	"encoding/base64"
	"net/url"
	"testing"
	"time"

	"github.com/dpopkit/dpop/handlers"
	"github.com/dpopkit/dpop/store"
)

const (
	// PublicURL is the kit's issuer and resource URL, and so the base of
	// every proof's htu, wherever its listener is: several kits behind one
	// load balancer have the same.
	PublicURL = "https://api.example.test"
	// APIPath is the path of the kit's protected API.
	APIPath = "/api/whoami"
	// ConfID is the confidential client, DPoP-bound, with client
	// credentials; ConfSecret is its secret.
	ConfID     = "conf"
	ConfSecret = "conf-secret-0123456789abcdef0123456789"
	// PubID is the public client, DPoP-bound, with authorization codes
	// (PKCE) and refresh tokens, redirected to RedirectURI.
	PubID       = "pub"
	RedirectURI = "https://app.example/cb"
	// PKCEVerifier is the code verifier of the codes SaveCode saves (RFC
	// 7636, Appendix B).
	PKCEVerifier = "dBjftJeZ4CVP-mB92K27uhbUJU1p1r_wW1gFWFOEjXk"
)

var bg = context.Background()

// TokenPath and RevokePath are the paths of the kit's token and revocation
// endpoints.
var TokenPath, RevokePath = handlers.DefaultPaths.Token, handlers.DefaultPaths.Revoke

// Clients returns the kit's clients: the confidential one (ConfID) and the
// public one (PubID), both with the scope read.
func Clients() []*store.Client {
	return []*store.Client{
		{ID: ConfID, SecretHash: store.HashSecret(ConfSecret), GrantTypes: []string{handlers.GrantClientCredentials},
			Scopes: []string{"read"}, DPoPBound: true},
		{ID: PubID, GrantTypes: []string{handlers.GrantAuthorizationCode, handlers.GrantRefreshToken},
			RedirectURIs: []string{RedirectURI}, Scopes: []string{"read"}, DPoPBound: true},
	}
}

// RegisterClients saves the kit's Clients in s.
func RegisterClients(tb testing.TB, s store.ClientStore) {
	tb.Helper()
	for _, c := range Clients() {
		fatalIf(tb, s.SaveClient(bg, c), "SaveClient")
	}
}

// ClientCredentialsForm is the form of a client credentials token request.
func ClientCredentialsForm() url.Values {
	return url.Values{"grant_type": {handlers.GrantClientCredentials}}
}

// CodeForm is the form that redeems code as the public client, with
// PKCEVerifier.
func CodeForm(code string) url.Values {
	return url.Values{"grant_type": {handlers.GrantAuthorizationCode}, "code": {code},
		"redirect_uri": {RedirectURI}, "code_verifier": {PKCEVerifier}, "client_id": {PubID}}
}

// SaveCode saves an authorization code of the public client in s, with a
// PKCE S256 challenge of PKCEVerifier and a grant of its own, as the
// authorization endpoint would, and returns its value.
func SaveCode(tb testing.TB, s store.CodeStore) string {
	tb.Helper()
	code, grant := RandomToken(), RandomToken()
	fatalIf(tb, s.SaveCode(bg, store.HashToken(code), &store.AuthorizationCode{
		GrantID: grant, ClientID: PubID, RedirectURI: RedirectURI, Scope: "read", Subject: "alice",
		CodeChallenge: handlers.S256Challenge(PKCEVerifier), CodeChallengeMethod: handlers.PKCEMethodS256,
		ExpiresAt: time.Now().Add(time.Minute),
	}), "SaveCode")
	return code
}

// RandomToken is a fresh random token value: 32 random bytes, base64url.
func RandomToken() string {
	var b [32]byte
	rand.Read(b[:])
	return base64.RawURLEncoding.EncodeToString(b[:])
}
