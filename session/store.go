package session

import (
	"hash/maphash"
	"sync"
)

// Store keeps the sessions of all clients by client ID. Implementations
// are safe for concurrent use. The broker changes a Session's fields under
// its Mu and tells the store with Save when the change must outlive the
// process (a durable store persists it; Memory has nothing to do).
type Store interface {
	// Get returns the session of clientID.
	Get(clientID string) (*Session, bool)
	// Put adds or replaces the session of s.ClientID.
	Put(s *Session)
	// Delete removes the session of clientID if it is s (a newer session
	// under the same ID is kept) and reports whether it removed it.
	Delete(clientID string, s *Session) bool
	// Save records that s changed. The caller holds s.Mu.
	Save(s *Session) error
	// Range calls fn for every session until fn returns false. fn must
	// not call back into the store.
	Range(fn func(*Session) bool)
	// Len is the number of sessions.
	Len() int
	// Close releases the store.
	Close() error
}

const memShards = 64

// Memory is the in-memory Store: sessions live as long as the process.
type Memory struct {
	seed   maphash.Seed
	shards [memShards]struct {
		mu sync.RWMutex // guards m
		m  map[string]*Session
	}
}

// NewMemory returns an empty in-memory store.
func NewMemory() *Memory {
	m := &Memory{seed: maphash.MakeSeed()}
	for i := range m.shards {
		m.shards[i].m = make(map[string]*Session)
	}
	return m
}

func (m *Memory) shard(id string) int {
	return int(maphash.String(m.seed, id) % memShards)
}

// Get implements Store.
func (m *Memory) Get(id string) (*Session, bool) {
	sh := &m.shards[m.shard(id)]
	sh.mu.RLock()
	s, ok := sh.m[id]
	sh.mu.RUnlock()
	return s, ok
}

// Put implements Store.
func (m *Memory) Put(s *Session) {
	sh := &m.shards[m.shard(s.ClientID)]
	sh.mu.Lock()
	sh.m[s.ClientID] = s
	sh.mu.Unlock()
}

// Delete implements Store.
func (m *Memory) Delete(id string, s *Session) bool {
	sh := &m.shards[m.shard(id)]
	sh.mu.Lock()
	defer sh.mu.Unlock()
	if cur, ok := sh.m[id]; ok && (s == nil || cur == s) {
		delete(sh.m, id)
		return true
	}
	return false
}

// Save implements Store; in memory the session already is its own record.
func (m *Memory) Save(*Session) error { return nil }

// Range implements Store. Sessions added or removed during Range may or
// may not be seen.
func (m *Memory) Range(fn func(*Session) bool) {
	var batch []*Session
	for i := range m.shards {
		sh := &m.shards[i]
		sh.mu.RLock()
		batch = batch[:0]
		for _, s := range sh.m {
			batch = append(batch, s)
		}
		sh.mu.RUnlock()
		for _, s := range batch {
			if !fn(s) {
				return
			}
		}
	}
}

// Len implements Store.
func (m *Memory) Len() int {
	n := 0
	for i := range m.shards {
		sh := &m.shards[i]
		sh.mu.RLock()
		n += len(sh.m)
		sh.mu.RUnlock()
	}
	return n
}

// Close implements Store.
func (m *Memory) Close() error { return nil }
