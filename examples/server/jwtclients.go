package main

import (
	"fmt"
	"os"
	"strings"

	"github.com/dpopkit/dpop/handlers"
	"github.com/dpopkit/dpop/store"
)

// jwtClient is a client registered with -jwt-client ID=FILE: confidential,
// authenticated by private_key_jwt (RFC 7523) with the public JWK Set in
// FILE.
type jwtClient struct {
	id   string
	jwks []byte
}

// jwtClientFlags collects the repeatable -jwt-client flag.
type jwtClientFlags []jwtClient

func (f *jwtClientFlags) String() string {
	ids := make([]string, len(*f))
	for i, c := range *f {
		ids[i] = c.id
	}
	return strings.Join(ids, ",")
}

// Set reads ID=FILE: the file must hold a public JWK Set the store accepts
// for a client (store.Client.Validate), and the id must not be one of the
// demo's own clients or given twice.
func (f *jwtClientFlags) Set(v string) error {
	id, file, ok := strings.Cut(v, "=")
	if !ok || id == "" || file == "" {
		return fmt.Errorf("want ID=FILE, not %q", v)
	}
	switch id {
	case demoClient, publicClient, rsClient:
		return fmt.Errorf("client id %q is one of the demo's own", id)
	}
	for _, c := range *f {
		if c.id == id {
			return fmt.Errorf("client id %q given twice", id)
		}
	}
	jwks, err := os.ReadFile(file)
	if err != nil {
		return err
	}
	c := jwtClient{id: id, jwks: jwks}
	if err := c.registration(site{}).Validate(); err != nil {
		return fmt.Errorf("%s: %w", file, err)
	}
	*f = append(*f, c)
	return nil
}

// registration is the client's record for the issuer of s: the demo's
// redirect URI, scopes read and write, every grant, DPoP-bound, tokens for
// both APIs (both without a resource parameter).
func (c jwtClient) registration(s site) *store.Client {
	r := &store.Client{
		ID:           c.id,
		JWKS:         c.jwks,
		GrantTypes:   []string{handlers.GrantAuthorizationCode, handlers.GrantRefreshToken, handlers.GrantClientCredentials},
		RedirectURIs: []string{redirectURI},
		Scopes:       []string{"read", "write"},
		DPoPBound:    true,
	}
	if s.issuer != "" {
		r.Resources = []string{s.resource(apiPrefix), s.resource(billingPrefix)}
	}
	return r
}
