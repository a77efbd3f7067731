package main

import (
	"context"
	"crypto"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/x509"
	"encoding/json"
	"encoding/pem"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"net/http"
	"net/url"
	"os"
	"path/filepath"
	"strings"

	"github.com/dpopkit/dpop"
)

// fapi runs the FAPI 2.0 flow as the private_key_jwt client c.clientID:
// PAR with a DPoP proof, the authorization request by reference, the code
// exchange, the API, a refresh and the API again. Client authentication is
// the AssertionTransport's business: no request here carries a secret.
func (c *client) fapi(ctx context.Context) error {
	verifier := randomString()
	state := randomString()
	c.step("pushed authorization request (RFC 9126) as %q, with a DPoP proof that binds the code to the DPoP key (RFC 9449 §10.1)", c.clientID)
	requestURI, err := c.par(ctx, url.Values{
		"response_type":         {"code"},
		"client_id":             {c.clientID},
		"redirect_uri":          {redirectURI},
		"scope":                 {"read write"},
		"state":                 {state},
		"code_challenge":        {sha256Base64URL(verifier)},
		"code_challenge_method": {"S256"},
	})
	if err != nil {
		return err
	}

	// Only client_id and request_uri travel through the browser.
	authURL := c.base + "/oauth2/authorize?" + url.Values{"client_id": {c.clientID}, "request_uri": {requestURI}}.Encode()
	c.step("authorization request by reference, logging in as %s (HTTP Basic)\nGET %s", user, authURL)
	code, err := c.authorize(ctx, authURL, state)
	if err != nil {
		return err
	}

	c.step("token request: authorization_code with the PKCE code_verifier, private_key_jwt")
	tok, err := c.token(ctx, url.Values{
		"grant_type":    {"authorization_code"},
		"code":          {code},
		"redirect_uri":  {redirectURI},
		"client_id":     {c.clientID},
		"code_verifier": {verifier},
	}, "", "")
	if err != nil {
		return err
	}
	if tok.RefreshToken == "" {
		return errors.New("the token response has no refresh_token")
	}
	if err := c.callAPI(ctx, tok.AccessToken, user, c.clientID); err != nil {
		return err
	}

	c.step("token request: refresh_token, private_key_jwt")
	next, err := c.token(ctx, url.Values{
		"grant_type":    {"refresh_token"},
		"refresh_token": {tok.RefreshToken},
		"client_id":     {c.clientID},
	}, "", "")
	if err != nil {
		return err
	}
	if next.AccessToken == tok.AccessToken {
		return errors.New("the refresh returned the same access token")
	}
	return c.callAPI(ctx, next.AccessToken, user, c.clientID)
}

// parResponse is a PAR endpoint's answer (RFC 9126 §2.2).
type parResponse struct {
	RequestURI string `json:"request_uri"`
	ExpiresIn  int64  `json:"expires_in"`
}

// par pushes an authorization request and returns its request_uri. The
// client's transport adds the DPoP proof and the client assertion.
func (c *client) par(ctx context.Context, form url.Values) (string, error) {
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, c.base+"/oauth2/par", strings.NewReader(form.Encode()))
	if err != nil {
		return "", err
	}
	req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	fmt.Fprintf(c.out, "POST %s  %s\n", req.URL, form.Encode())
	resp, err := c.http.Do(req)
	if err != nil {
		return "", err
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(io.LimitReader(resp.Body, 64<<10))
	if err != nil {
		return "", err
	}
	fmt.Fprintf(c.out, "PAR response: %s\n%s\n", resp.Status, indent(body))
	if resp.StatusCode != http.StatusCreated {
		return "", fmt.Errorf("PAR endpoint answered %s, want 201 Created", resp.Status)
	}
	var p parResponse
	if err := json.Unmarshal(body, &p); err != nil {
		return "", fmt.Errorf("PAR response: %w", err)
	}
	if !strings.HasPrefix(p.RequestURI, "urn:ietf:params:oauth:request_uri:") || p.ExpiresIn <= 0 {
		return "", fmt.Errorf("PAR response: request_uri %q, expires_in %d", p.RequestURI, p.ExpiresIn)
	}
	return p.RequestURI, nil
}

// readClientKey reads a PEM private key: PKCS #8 ("PRIVATE KEY"), SEC 1
// ("EC PRIVATE KEY") or PKCS #1 ("RSA PRIVATE KEY").
func readClientKey(path string) (crypto.Signer, error) {
	data, err := os.ReadFile(path)
	if err != nil {
		return nil, err
	}
	block, _ := pem.Decode(data)
	if block == nil {
		return nil, fmt.Errorf("%s: not a PEM file", path)
	}
	var key any
	switch block.Type {
	case "PRIVATE KEY":
		key, err = x509.ParsePKCS8PrivateKey(block.Bytes)
	case "EC PRIVATE KEY":
		key, err = x509.ParseECPrivateKey(block.Bytes)
	case "RSA PRIVATE KEY":
		key, err = x509.ParsePKCS1PrivateKey(block.Bytes)
	default:
		return nil, fmt.Errorf("%s: a PEM %q block, not a private key", path, block.Type)
	}
	if err != nil {
		return nil, fmt.Errorf("%s: %w", path, err)
	}
	s, ok := key.(crypto.Signer)
	if !ok {
		return nil, fmt.Errorf("%s: a %T cannot sign", path, key)
	}
	return s, nil
}

// writeJWKS prints the public JWK Set of the key in path (with kid, use
// sig and the alg the client signs with), creating an ECDSA P-256 key there
// (mode 0600) when the file does not exist.
func writeJWKS(out io.Writer, path, kid string) error {
	if _, err := os.Stat(path); errors.Is(err, fs.ErrNotExist) {
		if err := createClientKey(path); err != nil {
			return err
		}
		fmt.Fprintf(os.Stderr, "client: created a new ECDSA P-256 key in %s\n", path)
	}
	key, err := readClientKey(path)
	if err != nil {
		return err
	}
	signer, err := dpop.NewSigner(key, dpop.SignerOptions{})
	if err != nil {
		return fmt.Errorf("%s: %w", path, err)
	}
	var jwk map[string]any
	if err := json.Unmarshal(signer.PublicJWK(), &jwk); err != nil {
		return err
	}
	jwk["use"], jwk["alg"] = "sig", signer.Algorithm()
	if kid != "" {
		jwk["kid"] = kid
	}
	b, err := json.MarshalIndent(map[string]any{"keys": []any{jwk}}, "", "  ")
	if err != nil {
		return err
	}
	_, err = fmt.Fprintf(out, "%s\n", b)
	return err
}

// createClientKey writes a new ECDSA P-256 key, PKCS #8 PEM, mode 0600.
func createClientKey(path string) error {
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		return err
	}
	der, err := x509.MarshalPKCS8PrivateKey(key)
	if err != nil {
		return err
	}
	if dir := filepath.Dir(path); dir != "." {
		if err := os.MkdirAll(dir, 0o700); err != nil {
			return err
		}
	}
	f, err := os.OpenFile(path, os.O_WRONLY|os.O_CREATE|os.O_EXCL, 0o600)
	if err != nil {
		return err
	}
	werr := pem.Encode(f, &pem.Block{Type: "PRIVATE KEY", Bytes: der})
	if cerr := f.Close(); werr == nil {
		werr = cerr
	}
	if werr != nil {
		os.Remove(path)
	}
	return werr
}
