// Package jose is the kit's one JOSE profile: the rules every JWS it issues
// or checks follows, whether a DPoP proof (RFC 9449), a JWT access token
// (RFC 9068) signed by package handlers or one validated by package
// middleware.
//
//   - Algorithms: one allow-list of asymmetric JWS algorithms (RFC 7518
//     §3.1, RFC 8037 §3.1, RFC 9864 §2.2); "none" and the HMAC algorithms
//     are not in it and cannot be added. Callers may narrow it, never widen
//     it.
//   - Keys: one fit rule per algorithm: the key type, the curve named by the
//     algorithm, and for RSA a modulus of 2048 to 4096 bits with the public
//     exponent 65537 (see MinRSABits).
//   - Serialization: the compact serialization only (RFC 7515 §7.1): three
//     non-empty segments of unpadded base64url, nothing else; the JSON
//     serialization, whitespace and padding are refused.
//   - Headers: crit and b64 are refused (RFC 7515 §4.1.11, RFC 7797 §3),
//     a header parameter given twice is refused.
//   - JSON: members are matched by their exact names and a known member
//     given twice is refused (RFC 7515 §4, RFC 7519 §4); values are never
//     coerced from one JSON type to another.
//   - Dates: one NumericDate rule (see MaxNumericDate).
//
// On the proof path, Split, ForEachMember (for names without escapes),
// Number and NumericDate do not allocate, and String allocates only the
// string it returns: the verifier's allocations are what they were before
// the profile moved here.
package jose
