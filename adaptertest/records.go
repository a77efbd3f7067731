package adaptertest

import (
	"bytes"
	"fmt"
	"slices"
	"strings"
	"time"

	"github.com/dpopkit/dpop/store"
)

// Sample records with every field set to a distinct, non-empty value, so
// that a field lost or swapped in a round trip shows.

func sampleClient(id string) *store.Client {
	return &store.Client{
		ID:              id,
		SecretHash:      store.HashSecret("secret of " + id),
		GrantTypes:      []string{"authorization_code", "client_credentials", "refresh_token"},
		RedirectURIs:    []string{"https://app.example/callback", "http://127.0.0.1:8765/cb?x=1"},
		Scopes:          []string{"read", "write", "ünïcode"},
		DPoPBound:       true,
		AccessTokenTTL:  17 * time.Minute,
		RefreshTokenTTL: 29 * time.Hour,
	}
}

func sampleCode(grant string, exp time.Time) *store.AuthorizationCode {
	return &store.AuthorizationCode{
		GrantID:             grant,
		ClientID:            unicodeID,
		RedirectURI:         "https://app.example/callback?a=b&c=d",
		Scope:               "read write",
		Subject:             "alice@example.com",
		CodeChallenge:       "E9Melhoa2OwvFrEMTJguCHaoeK1t8URWbuGJSstw-cM",
		CodeChallengeMethod: "S256",
		DPoPJKT:             "0ZcOCORZNYy-DWpqq30jZyJGHTN0d2HglBV3uiguA4I",
		ExpiresAt:           exp,
	}
}

func sampleAccess(grant string, exp time.Time) *store.AccessToken {
	return &store.AccessToken{
		GrantID:   grant,
		ClientID:  unicodeID,
		Subject:   "alice",
		Scope:     "read",
		JKT:       "NzbLsXh8uDCcd-6MNwXF4W_7noWXFZAfHkxZsRGC9Xs",
		IssuedAt:  exp.Add(-time.Hour),
		ExpiresAt: exp,
	}
}

func sampleRefresh(grant string, exp time.Time) *store.RefreshToken {
	return &store.RefreshToken{
		GrantID:   grant,
		ClientID:  "public-client",
		Subject:   "bob",
		Scope:     "read write offline",
		JKT:       "0ZcOCORZNYy-DWpqq30jZyJGHTN0d2HglBV3uiguA4I",
		IssuedAt:  exp.Add(-2 * time.Hour),
		ExpiresAt: exp,
	}
}

// diff describes how two records differ ("" when equal). Times are compared
// as instants; nil and empty slices are the same.
func diff(got, want any) string {
	var d []string
	field := func(name string, g, w any) {
		switch gv := g.(type) {
		case time.Time:
			if !gv.Equal(w.(time.Time)) {
				d = append(d, fmt.Sprintf("%s = %v, want %v", name, gv, w))
			}
		case []string:
			if !slices.Equal(gv, w.([]string)) {
				d = append(d, fmt.Sprintf("%s = %q, want %q", name, gv, w))
			}
		case []byte:
			if !bytes.Equal(gv, w.([]byte)) {
				d = append(d, fmt.Sprintf("%s = %x, want %x", name, gv, w))
			}
		default:
			if g != w {
				d = append(d, fmt.Sprintf("%s = %#v, want %#v", name, g, w))
			}
		}
	}
	switch g := got.(type) {
	case *store.Client:
		w := want.(*store.Client)
		field("ID", g.ID, w.ID)
		field("SecretHash", g.SecretHash, w.SecretHash)
		field("GrantTypes", g.GrantTypes, w.GrantTypes)
		field("RedirectURIs", g.RedirectURIs, w.RedirectURIs)
		field("Scopes", g.Scopes, w.Scopes)
		field("DPoPBound", g.DPoPBound, w.DPoPBound)
		field("AccessTokenTTL", g.AccessTokenTTL, w.AccessTokenTTL)
		field("RefreshTokenTTL", g.RefreshTokenTTL, w.RefreshTokenTTL)
	case *store.AuthorizationCode:
		w := want.(*store.AuthorizationCode)
		field("GrantID", g.GrantID, w.GrantID)
		field("ClientID", g.ClientID, w.ClientID)
		field("RedirectURI", g.RedirectURI, w.RedirectURI)
		field("Scope", g.Scope, w.Scope)
		field("Subject", g.Subject, w.Subject)
		field("CodeChallenge", g.CodeChallenge, w.CodeChallenge)
		field("CodeChallengeMethod", g.CodeChallengeMethod, w.CodeChallengeMethod)
		field("DPoPJKT", g.DPoPJKT, w.DPoPJKT)
		field("ExpiresAt", g.ExpiresAt, w.ExpiresAt)
	case *store.AccessToken:
		w := want.(*store.AccessToken)
		field("GrantID", g.GrantID, w.GrantID)
		field("ClientID", g.ClientID, w.ClientID)
		field("Subject", g.Subject, w.Subject)
		field("Scope", g.Scope, w.Scope)
		field("JKT", g.JKT, w.JKT)
		field("IssuedAt", g.IssuedAt, w.IssuedAt)
		field("ExpiresAt", g.ExpiresAt, w.ExpiresAt)
	case *store.RefreshToken:
		// The two token records have the same fields.
		g2, w2 := store.AccessToken(*g), store.AccessToken(*want.(*store.RefreshToken))
		return diff(&g2, &w2)
	default:
		return fmt.Sprintf("cannot compare %T", got)
	}
	return strings.Join(d, "; ")
}
