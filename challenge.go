package dpop

import "strings"

// hasUseNonceChallenge reports whether the WWW-Authenticate fields hold a
// DPoP challenge (RFC 9449 §7.1) whose error parameter is use_dpop_nonce
// (RFC 9449 §9). A challenge that repeats a parameter is ignored, and parsing
// a field stops at the first syntax error (RFC 9110 §11.6.1).
func hasUseNonceChallenge(fields []string) bool {
	for _, f := range fields {
		for _, c := range parseChallenges(f) {
			if strings.EqualFold(c.scheme, "DPoP") && !c.repeated && c.params["error"] == string(CodeUseNonce) {
				return true
			}
		}
	}
	return false
}

// authChallenge is one challenge of a WWW-Authenticate field (RFC 9110
// §11.2). Parameter names are lower-cased; values are unquoted.
type authChallenge struct {
	scheme   string
	params   map[string]string
	repeated bool // a parameter name occurs twice
}

// parseChallenges parses a WWW-Authenticate field value, a list of
// `auth-scheme [ 1*SP ( token68 / #auth-param ) ]` (RFC 9110 §11.6.1), in
// one pass. It returns the challenges read before any syntax error.
func parseChallenges(s string) []authChallenge {
	var (
		out        []authChallenge
		afterBare  bool // the last item was a scheme with nothing after it yet
		i          int
		skipSpaces = func() {
			for i < len(s) && (s[i] == ' ' || s[i] == '\t') {
				i++
			}
		}
	)
	for {
		skipSpaces()
		if i == len(s) {
			return out
		}
		if s[i] == ',' {
			i++
			afterBare = false
			continue
		}
		start := i
		for i < len(s) && (isTokenByte(s[i]) || s[i] == '/') {
			i++
		}
		word := s[start:i]
		if word == "" {
			return out
		}
		skipSpaces()
		if i < len(s) && s[i] == '=' {
			j := i + 1
			for j < len(s) && (s[j] == ' ' || s[j] == '\t') {
				j++
			}
			if j == len(s) || s[j] == '=' || s[j] == ',' {
				// token68 with '=' padding, right after a scheme.
				if !afterBare {
					return out
				}
				for i < len(s) && s[i] == '=' {
					i++
				}
				afterBare = false
				continue
			}
			if len(out) == 0 || !isMethodToken(word) {
				return out
			}
			var value string
			var ok bool
			if value, j, ok = paramValue(s, j); !ok {
				return out
			}
			i = j
			c := &out[len(out)-1]
			name := strings.ToLower(word)
			if _, dup := c.params[name]; dup {
				c.repeated = true
			}
			c.params[name] = value
			afterBare = false
			continue
		}
		if afterBare {
			// token68 without padding, right after a scheme.
			afterBare = false
			continue
		}
		if !isMethodToken(word) {
			return out
		}
		out = append(out, authChallenge{scheme: word, params: map[string]string{}})
		afterBare = true
	}
}

// paramValue reads an auth-param value, a token or a quoted-string (RFC 9110
// §5.6.2, §5.6.4), starting at s[i]. It returns the unquoted value and the
// index after it.
func paramValue(s string, i int) (string, int, bool) {
	if s[i] != '"' {
		start := i
		for i < len(s) && isTokenByte(s[i]) {
			i++
		}
		return s[start:i], i, i > start
	}
	var b strings.Builder
	for i++; i < len(s); i++ {
		c := s[i]
		switch {
		case c == '"':
			return b.String(), i + 1, true
		case c == '\\':
			if i+1 == len(s) {
				return "", i, false
			}
			i++
			c = s[i]
		}
		if c < 0x20 && c != '\t' || c == 0x7f {
			return "", i, false
		}
		b.WriteByte(c)
	}
	return "", i, false
}
