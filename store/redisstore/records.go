package redisstore

import (
	"encoding/json"
	"fmt"
	"strconv"
	"time"

	"github.com/dpopkit/dpop/store"
)

// The stored form of records. The field names are part of the data format
// (several versions of a service may share one Redis), so they are spelled
// out instead of following the Go names. Times are RFC 3339 with
// nanoseconds, in UTC; durations are integer nanoseconds.

type clientJSON struct {
	ID              string   `json:"id"`
	SecretHash      []byte   `json:"secret_hash,omitempty"`
	JWKS            []byte   `json:"jwks,omitempty"` // base64 of the document's bytes, never parsed
	JWKSURI         string   `json:"jwks_uri,omitempty"`
	GrantTypes      []string `json:"grant_types,omitempty"`
	RedirectURIs    []string `json:"redirect_uris,omitempty"`
	Scopes          []string `json:"scopes,omitempty"`
	Resources       []string `json:"resources,omitempty"`
	Introspect      bool     `json:"introspect,omitempty"`
	DPoPBound       bool     `json:"dpop_bound,omitempty"`
	AccessTokenTTL  int64    `json:"access_token_ttl_ns,omitempty"`
	RefreshTokenTTL int64    `json:"refresh_token_ttl_ns,omitempty"`
}

type codeJSON struct {
	GrantID             string    `json:"grant_id,omitempty"`
	ClientID            string    `json:"client_id"`
	RedirectURI         string    `json:"redirect_uri,omitempty"`
	Scope               string    `json:"scope,omitempty"`
	Subject             string    `json:"sub,omitempty"`
	CodeChallenge       string    `json:"code_challenge,omitempty"`
	CodeChallengeMethod string    `json:"code_challenge_method,omitempty"`
	DPoPJKT             string    `json:"dpop_jkt,omitempty"`
	Resources           []string  `json:"resources,omitempty"`
	ExpiresAt           time.Time `json:"exp"`
}

// pushedJSON is the stored form of a pushed authorization request
// (RFC 9126).
type pushedJSON struct {
	ClientID  string    `json:"client_id"`
	Params    string    `json:"params,omitempty"`
	DPoPJKT   string    `json:"dpop_jkt,omitempty"`
	ExpiresAt time.Time `json:"exp"`
}

// tokenJSON is the stored form of access and refresh tokens, which have the
// same fields. Claims is []byte, stored as base64, not as embedded JSON: the
// store keeps the host's bytes exactly as given and never parses them.
type tokenJSON struct {
	GrantID   string    `json:"grant_id,omitempty"`
	ClientID  string    `json:"client_id"`
	Subject   string    `json:"sub,omitempty"`
	Scope     string    `json:"scope,omitempty"`
	JKT       string    `json:"jkt,omitempty"`
	Audience  []string  `json:"aud,omitempty"`
	Claims    []byte    `json:"claims,omitempty"`
	IssuedAt  time.Time `json:"iat"`
	ExpiresAt time.Time `json:"exp"`
}

func encodeClient(c *store.Client) ([]byte, error) {
	return json.Marshal(clientJSON{
		ID: c.ID, SecretHash: c.SecretHash, JWKS: c.JWKS, JWKSURI: c.JWKSURI, GrantTypes: c.GrantTypes, RedirectURIs: c.RedirectURIs, Scopes: c.Scopes,
		Resources: c.Resources, Introspect: c.Introspect,
		DPoPBound: c.DPoPBound, AccessTokenTTL: int64(c.AccessTokenTTL), RefreshTokenTTL: int64(c.RefreshTokenTTL),
	})
}

func decodeClient(data []byte) (*store.Client, error) {
	var j clientJSON
	if err := json.Unmarshal(data, &j); err != nil {
		return nil, fmt.Errorf("redisstore: malformed client record: %w", err)
	}
	return &store.Client{
		ID: j.ID, SecretHash: j.SecretHash, JWKS: j.JWKS, JWKSURI: j.JWKSURI, GrantTypes: j.GrantTypes, RedirectURIs: j.RedirectURIs, Scopes: j.Scopes,
		Resources: j.Resources, Introspect: j.Introspect,
		DPoPBound: j.DPoPBound, AccessTokenTTL: time.Duration(j.AccessTokenTTL), RefreshTokenTTL: time.Duration(j.RefreshTokenTTL),
	}, nil
}

func encodeCode(c *store.AuthorizationCode) ([]byte, error) {
	return json.Marshal(codeJSON{
		GrantID: c.GrantID, ClientID: c.ClientID, RedirectURI: c.RedirectURI, Scope: c.Scope, Subject: c.Subject,
		CodeChallenge: c.CodeChallenge, CodeChallengeMethod: c.CodeChallengeMethod, DPoPJKT: c.DPoPJKT,
		Resources: c.Resources, ExpiresAt: c.ExpiresAt.UTC(),
	})
}

func decodeCode(data string) (*store.AuthorizationCode, error) {
	var j codeJSON
	if err := json.Unmarshal([]byte(data), &j); err != nil {
		return nil, fmt.Errorf("redisstore: malformed code record: %w", err)
	}
	return &store.AuthorizationCode{
		GrantID: j.GrantID, ClientID: j.ClientID, RedirectURI: j.RedirectURI, Scope: j.Scope, Subject: j.Subject,
		CodeChallenge: j.CodeChallenge, CodeChallengeMethod: j.CodeChallengeMethod, DPoPJKT: j.DPoPJKT,
		Resources: j.Resources, ExpiresAt: j.ExpiresAt,
	}, nil
}

func encodePushed(r *store.PushedRequest) ([]byte, error) {
	return json.Marshal(pushedJSON{ClientID: r.ClientID, Params: r.Params, DPoPJKT: r.DPoPJKT, ExpiresAt: r.ExpiresAt.UTC()})
}

func decodePushed(data string) (*store.PushedRequest, error) {
	var j pushedJSON
	if err := json.Unmarshal([]byte(data), &j); err != nil {
		return nil, fmt.Errorf("redisstore: malformed pushed request record: %w", err)
	}
	return &store.PushedRequest{ClientID: j.ClientID, Params: j.Params, DPoPJKT: j.DPoPJKT, ExpiresAt: j.ExpiresAt}, nil
}

func encodeToken(t store.AccessToken) ([]byte, error) {
	return json.Marshal(tokenJSON{
		GrantID: t.GrantID, ClientID: t.ClientID, Subject: t.Subject, Scope: t.Scope, JKT: t.JKT,
		Audience: t.Audience, Claims: t.Claims,
		IssuedAt: t.IssuedAt.UTC(), ExpiresAt: t.ExpiresAt.UTC(),
	})
}

func decodeToken(data, kind string) (store.AccessToken, error) {
	var j tokenJSON
	if err := json.Unmarshal([]byte(data), &j); err != nil {
		return store.AccessToken{}, fmt.Errorf("redisstore: malformed %s record: %w", kind, err)
	}
	return store.AccessToken{
		GrantID: j.GrantID, ClientID: j.ClientID, Subject: j.Subject, Scope: j.Scope, JKT: j.JKT,
		Audience: j.Audience, Claims: j.Claims,
		IssuedAt: j.IssuedAt, ExpiresAt: j.ExpiresAt,
	}, nil
}

// Stored values of codes and tokens are a header the scripts read, then the
// JSON record: the state (stateLive or stateConsumed, overwritten in place
// when the record is consumed), the expiry in Unix milliseconds, ':', the
// base64url grant id, ':'.
const (
	stateLive     = 'L'
	stateConsumed = 'C'
)

// frame builds a stored value for a live record.
func frame(expMillis int64, grant string, record []byte) string {
	b := make([]byte, 0, 1+20+1+b64.EncodedLen(len(grant))+1+len(record))
	b = append(b, stateLive)
	b = strconv.AppendInt(b, expMillis, 10)
	b = append(b, ':')
	b = b64.AppendEncode(b, []byte(grant))
	b = append(b, ':')
	return string(append(b, record...))
}
