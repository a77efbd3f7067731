package jose

import (
	"encoding/json"
	"fmt"
)

// registered are the claim names the kit sets itself or that have a meaning
// it does not let a host redefine: the JWT registered claims (RFC 7519
// §4.1), those of JWT access tokens (RFC 9068 §2.2, RFC 9449 §6.1 cnf,
// RFC 8693 §4 act and may_act) and the members of an introspection answer
// (RFC 7662 §2.2).
var registered = map[string]bool{
	"iss": true, "sub": true, "aud": true, "exp": true, "nbf": true, "iat": true, "jti": true,
	"client_id": true, "scope": true, "cnf": true, "auth_time": true, "acr": true, "amr": true,
	"act": true, "may_act": true,
	"active": true, "token_type": true, "username": true,
}

// Registered reports whether name is a claim name a host cannot add or
// override: the one list for access tokens (handlers, when it adds the
// host's claims) and for what the middleware reports as the host's claims.
func Registered(name string) bool { return registered[name] }

// HostClaims returns the members of o that are not Registered, each decoded
// into a Go value (encoding/json's types), or nil when there are none: the
// host's claims of an access token or introspection answer.
func (o Object) HostClaims() (map[string]any, error) {
	var m map[string]any
	for name, raw := range o {
		if registered[name] {
			continue
		}
		var v any
		if err := json.Unmarshal(raw, &v); err != nil {
			return nil, &MemberError{Name: name}
		}
		if m == nil {
			m = map[string]any{}
		}
		m[name] = v
	}
	return m, nil
}

// CheckHostClaims refuses a set of host claims that names a Registered claim
// or does not encode as JSON, and returns its compact JSON form (nil for an
// empty set) of at most max bytes.
func CheckHostClaims(claims map[string]any, max int) ([]byte, error) {
	if len(claims) == 0 {
		return nil, nil
	}
	for name := range claims {
		if registered[name] {
			return nil, fmt.Errorf("jose: %q is a registered claim", name)
		}
	}
	b, err := json.Marshal(claims)
	if err != nil {
		return nil, fmt.Errorf("jose: claims do not encode as JSON: %w", err)
	}
	if len(b) > max {
		return nil, fmt.Errorf("jose: claims take %d bytes, more than %d", len(b), max)
	}
	return b, nil
}

// AppendMembers returns the JSON object base with the members of the JSON
// object extra added at its end; both must be compact objects (from
// json.Marshal or CheckHostClaims), and no name may be in both
// (CheckHostClaims keeps registered names out of extra). An empty extra
// returns base.
func AppendMembers(base, extra []byte) []byte {
	if len(extra) <= 2 {
		return base
	}
	if len(base) <= 2 {
		return extra
	}
	out := make([]byte, 0, len(base)+len(extra))
	out = append(out, base[:len(base)-1]...)
	out = append(out, ',')
	return append(out, extra[1:]...)
}
