package session

import (
	"bytes"
	"sort"
	"sync"
)

// MemKV is an in-memory KV (no persistence).
type MemKV struct {
	mu sync.RWMutex // guards m
	m  map[string][]byte
}

// NewMemKV returns an empty in-memory KV.
func NewMemKV() *MemKV { return &MemKV{m: make(map[string][]byte)} }

// Get implements KV.
func (s *MemKV) Get(key []byte) ([]byte, error) {
	s.mu.RLock()
	defer s.mu.RUnlock()
	v, ok := s.m[string(key)]
	if !ok {
		return nil, ErrNotFound
	}
	return bytes.Clone(v), nil
}

// Set implements KV.
func (s *MemKV) Set(key, value []byte) error {
	s.mu.Lock()
	s.m[string(key)] = bytes.Clone(value)
	s.mu.Unlock()
	return nil
}

// Delete implements KV.
func (s *MemKV) Delete(key []byte) error {
	s.mu.Lock()
	delete(s.m, string(key))
	s.mu.Unlock()
	return nil
}

// Scan implements KV.
func (s *MemKV) Scan(prefix []byte, fn func(k, v []byte) error) error {
	s.mu.RLock()
	keys := make([]string, 0)
	for k := range s.m {
		if bytes.HasPrefix([]byte(k), prefix) {
			keys = append(keys, k)
		}
	}
	vals := make([][]byte, len(keys))
	sort.Strings(keys)
	for i, k := range keys {
		vals[i] = s.m[k]
	}
	s.mu.RUnlock()
	for i, k := range keys {
		if err := fn([]byte(k), vals[i]); err != nil {
			return err
		}
	}
	return nil
}
