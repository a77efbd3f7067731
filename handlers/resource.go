package handlers

import (
	"context"
	"errors"
	"net/http"
	"slices"

	"github.com/dpopkit/dpop"
	"github.com/dpopkit/dpop/store"
)

// MaxResources is the most resource parameters one request may carry
// (RFC 8707 §2 lets it repeat the parameter); more is invalid_target.
const MaxResources = 16

// ResourcePolicy decides the audience of a new grant (RFC 8707 §2): at the
// authorization endpoint, and for client credentials. requested are the
// request's resource parameters, each already checked to be a valid
// indicator registered for the client (store.Client.Resources), or nil when
// the request named none. The result must be a non-empty subset of the
// client's Resources; return an error wrapping ErrTarget to refuse with
// invalid_target. It is not called for clients that register no Resources:
// their tokens are for Config.Audience.
type ResourcePolicy func(ctx context.Context, c *store.Client, requested []string) ([]string, error)

// RegisteredResources is the default ResourcePolicy: the requested
// resources, or all of the client's registered ones when none were
// requested, so that an integration that never sends resource keeps
// working.
func RegisteredResources(_ context.Context, c *store.Client, requested []string) ([]string, error) {
	if requested == nil {
		return c.Resources, nil
	}
	return requested, nil
}

// targetRefused is the one answer to a resource parameter the request may
// not have: malformed, too many, unknown, or not the client's.
func targetRefused(description string) *Error {
	return badRequest(dpop.CodeInvalidTarget, description, ErrTarget)
}

// requestedResources reads a request's resource parameters (RFC 8707 §2):
// nil when there are none; otherwise at most MaxResources absolute URIs
// without fragments (store.ValidResource), duplicates dropped, every one
// registered for the client. A client that registers no Resources cannot
// use the parameter.
func requestedResources(client *store.Client, values []string) ([]string, *Error) {
	if len(values) == 0 {
		return nil, nil
	}
	if len(values) > MaxResources {
		return nil, targetRefused("too many resource parameters")
	}
	out := make([]string, 0, len(values))
	for _, v := range values {
		if store.ValidResource(v) != nil {
			return nil, targetRefused("a resource is not an absolute URI without a fragment")
		}
		if !slices.Contains(client.Resources, v) {
			return nil, targetRefused("the client may not have a token for a requested resource")
		}
		if !slices.Contains(out, v) {
			out = append(out, v)
		}
	}
	return out, nil
}

// grantAudience is the audience of a new grant (authorization request,
// client credentials): the client's requested resources as
// Config.ResourcePolicy decides, or Config.Audience for a client that
// registers none (RFC 8707 §2).
func (s *Server) grantAudience(ctx context.Context, client *store.Client, values []string) ([]string, *Error) {
	requested, e := requestedResources(client, values)
	if e != nil {
		return nil, e
	}
	if len(client.Resources) == 0 {
		return s.cfg.Audience, nil
	}
	granted, err := s.cfg.ResourcePolicy(ctx, client, requested)
	switch {
	case errors.Is(err, ErrTarget):
		return nil, badRequest(dpop.CodeInvalidTarget, "the requested resource is not allowed", err)
	case err != nil:
		return nil, oauthError(http.StatusInternalServerError, dpop.CodeServerError, "the resource policy failed", err)
	}
	if len(granted) == 0 || slices.ContainsFunc(granted, func(r string) bool { return !slices.Contains(client.Resources, r) }) {
		// Fail closed on a policy that grants what was never registered.
		return nil, oauthError(http.StatusInternalServerError, dpop.CodeServerError, "the resource policy failed",
			errors.New("handlers: ResourcePolicy granted no resource or one the client did not register"))
	}
	var out []string
	for _, r := range granted {
		if !slices.Contains(out, r) {
			out = append(out, r)
		}
	}
	return out, nil
}

// recordedAudience is the audience a code or refresh token record grants.
// An empty one was written before the kit recorded audiences: it grants
// what a request without resource parameters gets now, the client's
// registered Resources or Config.Audience.
func (s *Server) recordedAudience(client *store.Client, recorded []string) []string {
	switch {
	case len(recorded) > 0:
		return recorded
	case len(client.Resources) > 0:
		return client.Resources
	}
	return s.cfg.Audience
}

// narrowAudience is the audience of a token redeemed from a grant (a code or
// a refresh token) that recorded the audience recorded: the requested
// resources, each of which must be in the grant (RFC 8707 §2.2: narrower,
// never wider), or the whole grant. For a client that registers Resources,
// only those it still has: a resource withdrawn from its registration since
// the grant is not in its new tokens, and a grant left with none is
// invalid_target.
func (s *Server) narrowAudience(client *store.Client, recorded, values []string) ([]string, *Error) {
	requested, e := requestedResources(client, values)
	if e != nil {
		return nil, e
	}
	granted := s.recordedAudience(client, recorded)
	if len(client.Resources) == 0 {
		return granted, nil
	}
	var out []string
	for _, r := range granted {
		if slices.Contains(client.Resources, r) && (requested == nil || slices.Contains(requested, r)) {
			out = append(out, r)
		}
	}
	if len(out) == 0 || (requested != nil && len(out) != len(requested)) {
		return nil, targetRefused("the requested resource is not part of the grant")
	}
	return out, nil
}
