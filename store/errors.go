package store

import (
	"errors"
	"fmt"
)

// Sentinel errors of every store; test them with errors.Is.
var (
	// ErrNotFound: no record under that key (or client id), including one
	// that was revoked or reclaimed after it expired.
	ErrNotFound = errors.New("store: not found")
	// ErrExpired: the record exists but its expiry has passed. It wraps
	// ErrNotFound, so callers that only need "unusable" test for that.
	ErrExpired = fmt.Errorf("%w: expired", ErrNotFound)
	// ErrConsumed: a code was already redeemed or a refresh token already
	// rotated. The record is returned with this error, so that the caller
	// can revoke its grant (RFC 6749 §4.1.2, RFC 9700 §4.14.2).
	ErrConsumed = errors.New("store: already consumed")
	// ErrRevoked: the record belongs to a grant that was revoked.
	ErrRevoked = errors.New("store: grant revoked")
	// ErrFull: a bounded store has no room, and making room would mean
	// forgetting something that must be remembered.
	ErrFull = errors.New("store: full")
	// ErrShareFull: the client a record belongs to holds its share of a
	// bounded table (MemoryOptions.ClientShare); the other clients still
	// have room. It wraps ErrFull.
	ErrShareFull = fmt.Errorf("%w: the client holds its share", ErrFull)
	// ErrClosed: the store was closed.
	ErrClosed = errors.New("store: closed")
)
