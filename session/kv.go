package session

import "errors"

// ErrNotFound is returned by KV.Get for a missing key.
var ErrNotFound = errors.New("session: key not found")

// KV is a small durable key-value space that other components (users and
// grants, parent topics, ...) keep beside the sessions, in the same store.
// Each component uses its own key prefix. Writes are durable (synced) when
// Set/Delete return, on a durable store. Safe for concurrent use.
type KV interface {
	Get(key []byte) ([]byte, error) // ErrNotFound when missing; the result is the caller's
	Set(key, value []byte) error
	Delete(key []byte) error
	// Scan calls fn for every key with prefix, in key order. k and v are
	// valid only during the call.
	Scan(prefix []byte, fn func(k, v []byte) error) error
}
