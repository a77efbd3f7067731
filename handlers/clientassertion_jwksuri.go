package handlers

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"sync"
	"sync/atomic"
	"time"

	lru "github.com/hashicorp/golang-lru/v2"
	"github.com/lestrrat-go/jwx/v2/jwk"
)

// jwksURIs fetches and caches the key sets that private_key_jwt clients
// publish at their jwks_uri (RFC 7591 §2). It follows the rules of the
// resource server's JWKS fetcher (middleware/jwks.go), at the smaller
// bounds fit for clients' documents: each fetch bounded in time
// (jwksURITimeout) and size (jwksURIMaxBytes), only a 200 answer parsed,
// one fetch at a time per URI, and at most one fetch per URI every
// jwksURIRefetch, whatever triggers it (an unknown kid, an expired set, a
// failed fetch). A set is used for jwksURITTL; when fetching it again
// fails, the last good set stays in use until a fetch succeeds. The cache
// is bounded by URI (jwksURICacheSize, least recently used first).
type jwksURIs struct {
	client *http.Client
	now    func() time.Time
	mu     sync.Mutex // makes get-or-add of entries atomic
	cache  *lru.Cache[string, *uriEntry]
}

// uriEntry is the state of one jwks_uri.
type uriEntry struct {
	// slot is a one-place semaphore: one fetch of the URI at a time; it
	// guards the fields below.
	slot    chan struct{}
	set     jwk.Set   // the last good set, nil before one
	fetched time.Time // when set was fetched
	attempt time.Time // the last fetch, good or bad
	err     error     // the last fetch's error, nil after a success
	// good is set and fetched, published for readers that do not take the
	// slot: a fresh set is read without waiting for a fetch in progress,
	// which a forged assertion naming the client can start.
	good atomic.Pointer[goodSet]
}

// goodSet is a fetched set and when it was fetched.
type goodSet struct {
	set     jwk.Set
	fetched time.Time
}

func newJWKSURIs(client *http.Client, now func() time.Time) *jwksURIs {
	c, _ := lru.New[string, *uriEntry](jwksURICacheSize)
	return &jwksURIs{client: client, now: now, cache: c}
}

// entry returns the state of uri, adding it.
func (u *jwksURIs) entry(uri string) *uriEntry {
	u.mu.Lock()
	defer u.mu.Unlock()
	e, ok := u.cache.Get(uri)
	if !ok {
		e = &uriEntry{slot: make(chan struct{}, 1)}
		u.cache.Add(uri, e)
	}
	return e
}

// keys returns the key set published at uri: the cached one while it is
// fresh and refresh is false, else a new fetch if the refetch rule allows
// one, else what the last fetch left. Without any good set, the error
// wraps ErrClientKeysUnavailable (the fetch failed: the server cannot
// decide) or errAssertionKeys (the document is unusable: the client's
// fault).
func (u *jwksURIs) keys(ctx context.Context, uri string, refresh bool) (jwk.Set, error) {
	e := u.entry(uri)
	if g := e.good.Load(); g != nil && !refresh {
		if now := u.now(); !now.Before(g.fetched) && now.Sub(g.fetched) < jwksURITTL {
			return g.set, nil
		}
	}
	select {
	case e.slot <- struct{}{}:
	case <-ctx.Done():
		return nil, fmt.Errorf("%w: %w", ErrClientKeysUnavailable, ctx.Err())
	}
	defer func() { <-e.slot }()
	now := u.now()
	if e.set != nil && !refresh && !now.Before(e.fetched) && now.Sub(e.fetched) < jwksURITTL {
		return e.set, nil
	}
	if !e.attempt.IsZero() && !now.Before(e.attempt) && now.Sub(e.attempt) < jwksURIRefetch {
		if e.set != nil {
			return e.set, nil
		}
		return nil, e.err
	}
	e.attempt = now
	set, err := u.fetch(ctx, uri)
	if err != nil {
		e.err = err
		if e.set != nil {
			return e.set, nil
		}
		return nil, err
	}
	e.set, e.fetched, e.err = set, now, nil
	e.good.Store(&goodSet{set: set, fetched: now})
	return set, nil
}

// fetch GETs the JWK Set at uri. The fetch does not end with the request's
// context, only with its own timeout, so that a client that goes away does
// not leave a failure behind for the others.
func (u *jwksURIs) fetch(ctx context.Context, uri string) (jwk.Set, error) {
	unavailable := func(err error) error { return fmt.Errorf("%w: %w", ErrClientKeysUnavailable, err) }
	p, err := url.Parse(uri)
	if err != nil || !secureFetchURL(p, false) {
		return nil, fmt.Errorf("%w: jwks_uri is not an https URL (http only on a loopback host)", errAssertionKeys)
	}
	ctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), jwksURITimeout)
	defer cancel()
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, uri, nil)
	if err != nil {
		return nil, unavailable(err)
	}
	req.Header.Set("Accept", "application/jwk-set+json, application/json")
	res, err := u.client.Do(req)
	if err != nil {
		return nil, unavailable(err)
	}
	defer res.Body.Close()
	if res.StatusCode != http.StatusOK {
		return nil, unavailable(fmt.Errorf("jwks_uri answered %d", res.StatusCode))
	}
	body, err := io.ReadAll(io.LimitReader(res.Body, jwksURIMaxBytes+1))
	if err != nil {
		return nil, unavailable(fmt.Errorf("reading the JWK Set: %w", err))
	}
	if len(body) > jwksURIMaxBytes {
		return nil, fmt.Errorf("%w: the JWK Set at jwks_uri is larger than %d bytes", errAssertionKeys, jwksURIMaxBytes)
	}
	return publicKeySet(body)
}

// secureFetchURL reports whether a jwks_uri (or a redirect target) may be
// fetched: no userinfo, and https, or http on a loopback host
// (store.Client.Validate's rule) unless it is the target of a redirect.
func secureFetchURL(p *url.URL, redirect bool) bool {
	if p.Host == "" || p.User != nil {
		return false
	}
	switch p.Scheme {
	case "https":
		return true
	case "http":
		return !redirect && loopbackURL(p.String())
	}
	return false
}

// jwksHTTPClient returns the client that fetches jwks_uri documents: a
// copy of base (or a default client) whose redirects are checked (at most
// jwksURIMaxRedirects, and only to https URLs, before base's own check)
// and whose timeout is at most jwksURITimeout.
func jwksHTTPClient(base *http.Client) *http.Client {
	c := &http.Client{}
	if base != nil {
		*c = *base
	}
	if c.Timeout == 0 || c.Timeout > jwksURITimeout {
		c.Timeout = jwksURITimeout
	}
	next := c.CheckRedirect
	c.CheckRedirect = func(req *http.Request, via []*http.Request) error {
		if len(via) >= jwksURIMaxRedirects {
			return errors.New("too many redirects")
		}
		// A registered loopback http URI may redirect to the same
		// loopback origin; anything else must be https.
		sameLoopback := len(via) > 0 && via[0].URL.Scheme == "http" && req.URL.Scheme == "http" && via[0].URL.Host == req.URL.Host
		if !secureFetchURL(req.URL, !sameLoopback) {
			return errors.New("redirect to an insecure URL")
		}
		if next != nil {
			return next(req, via)
		}
		return nil
	}
	return c
}
