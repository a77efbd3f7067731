package handlers

import (
	"errors"
	"fmt"
	"slices"
	"time"

	"github.com/dpopkit/dpop/internal/jose"
)

// Profiles (Config.Profile).
const (
	// ProfileFAPI2 is the FAPI 2.0 Security Profile (Final) with DPoP
	// sender-constraining and private_key_jwt client authentication: see
	// Config.Profile for what it sets and refuses.
	ProfileFAPI2 = "fapi2"
)

// fapi2Algorithms are the JWS algorithms FAPI 2.0 allows (§5.4.1: PS256,
// ES256 and EdDSA with Ed25519, named Ed25519 by RFC 9864): for proofs,
// client assertions and issued JWTs.
var fapi2Algorithms = []string{"PS256", "ES256", "EdDSA", "Ed25519"}

// fapi2MaxCodeTTL is the longest authorization code lifetime FAPI 2.0
// allows (§5.3.2.1: at most 60 seconds).
const fapi2MaxCodeTTL = time.Minute

// profileConflict is the error of a configuration that contradicts its
// profile, naming the field and the rule.
func profileConflict(field, rule string) error {
	return fmt.Errorf("handlers: Config.Profile %q: %s contradicts the profile (%s)", ProfileFAPI2, field, rule)
}

// applyProfile sets what Config.Profile implies and refuses what contradicts
// it; called by normalize before the defaults are filled in.
func (c *Config) applyProfile() error {
	switch c.Profile {
	case "":
		return nil
	case ProfileFAPI2:
	default:
		return fmt.Errorf("handlers: unknown Config.Profile %q", c.Profile)
	}
	if c.AllowBearer {
		return profileConflict("AllowBearer", "a DPoP proof is required for every token")
	}
	if c.CodeTTL > fapi2MaxCodeTTL {
		return profileConflict("CodeTTL", "authorization codes live at most 60 s")
	}
	if c.ClientAssertion.LegacyAudience {
		return profileConflict("ClientAssertion.LegacyAudience", "an assertion's aud is the issuer, as a string")
	}
	for _, f := range []struct {
		name string
		algs *[]string
	}{{"DPoP.Algorithms", &c.DPoP.Algorithms}, {"ClientAssertion.Algorithms", &c.ClientAssertion.Algorithms}} {
		if len(*f.algs) == 0 {
			*f.algs = slices.Clone(fapi2Algorithms)
			continue
		}
		for _, a := range *f.algs {
			if !slices.Contains(fapi2Algorithms, a) {
				return profileConflict(f.name, fmt.Sprintf("%q is not PS256, ES256 or EdDSA", a))
			}
		}
	}
	if c.SigningKeys != nil {
		for i := range c.SigningKeys.Len() {
			k, _ := c.SigningKeys.Key(i)
			if spec, _, err := jose.SigningKey(k); err == nil && !slices.Contains(fapi2Algorithms, spec.Name) {
				return profileConflict(fmt.Sprintf("SigningKeys[%d]", i), fmt.Sprintf("%q is not PS256, ES256 or EdDSA", spec.Name))
			}
		}
	}
	c.ClientAssertion.StrictAudience = true
	c.RequirePAR = true
	c.RequirePKCE = true
	return nil
}

// errProfileAuth is the cause of a refused client authentication method
// under ProfileFAPI2: confidential clients with private_key_jwt only.
var errProfileAuth = errors.New("handlers: the FAPI 2.0 profile allows private_key_jwt client authentication only")

// fapi2 reports whether the server runs under ProfileFAPI2.
func (s *Server) fapi2() bool { return s.cfg.Profile == ProfileFAPI2 }
