package session

import (
	"hash/maphash"
	"sync"
	"time"
)

// Backend persists what the Store is told to. Writes are queued in call
// order and become durable together at the next Commit (group commit: one
// sync for everything queued since the last one). Implementations are safe
// for concurrent use; write methods never block on I/O.
type Backend interface {
	SaveSession(s *Session)        // meta: group, expiry, disconnect time, subscriptions, pending will. Caller holds s.Mu.
	DeleteSession(clientID string) // the session and every record under it
	SaveOut(clientID string, f *Inflight)
	DeleteOut(clientID string, f *Inflight)
	SaveReceived(clientID string, id uint16)
	DeleteReceived(clientID string, id uint16)
	SaveWill(clientID string, w *Will) // the connected client's will: published at restart after a crash
	DeleteWill(clientID string)
	SaveRetained(m *Message)
	DeleteRetained(topic string)

	// Commit calls done once everything queued before it is durable, or
	// failed. done runs on the backend's goroutine and must not block.
	Commit(done func(error))

	// Atomic runs fn; the writes fn makes go to the store together: no
	// commit (anyone's) falls between them. fn must not call Atomic or
	// wait for a commit.
	Atomic(fn func())

	// Load reads what a previous run left behind.
	Load() (*Snapshot, error)

	// KV is the key-value space for other components.
	KV() KV

	Close() error
}

// Snapshot is the state a Backend holds at start.
type Snapshot struct {
	Sessions []*Session
	Wills    map[string]*Will // wills of clients that were connected when the process stopped
	Retained []*Message
}

const storeShards = 64

// Store holds every session in memory, by client ID, and tells its
// Backend (if durable) what changed. Safe for concurrent use.
type Store struct {
	seed    maphash.Seed
	backend Backend // nil: memory only
	kv      KV
	shards  [storeShards]struct {
		mu  sync.RWMutex // guards ids
		ids idTable
	}
}

// NewStore returns a store over backend; nil keeps everything in memory.
func NewStore(backend Backend) *Store {
	st := &Store{seed: maphash.MakeSeed(), backend: backend}
	for i := range st.shards {
		st.shards[i].ids.seed = maphash.MakeSeed()
	}
	if backend != nil {
		st.kv = backend.KV()
	} else {
		st.kv = NewMemKV()
	}
	return st
}

// Durable reports whether writes are persisted (and acknowledgements must
// wait for Commit).
func (st *Store) Durable() bool { return st.backend != nil }

// Backend returns the backend, or nil when memory-only.
func (st *Store) Backend() Backend { return st.backend }

// KV returns the store's key-value space.
func (st *Store) KV() KV { return st.kv }

func (st *Store) shard(id string) int {
	return int(maphash.String(st.seed, id) % storeShards)
}

// Get returns the session of clientID.
func (st *Store) Get(id string) (*Session, bool) {
	sh := &st.shards[st.shard(id)]
	sh.mu.RLock()
	s, ok := sh.ids.get(id)
	sh.mu.RUnlock()
	return s, ok
}

// Put adds or replaces the session of s.ClientID.
func (st *Store) Put(s *Session) {
	sh := &st.shards[st.shard(s.ClientID)]
	sh.mu.Lock()
	sh.ids.put(s)
	sh.mu.Unlock()
}

// Delete removes the session of clientID if it is s (nil: whichever),
// with its records in the backend, and reports whether it did.
func (st *Store) Delete(id string, s *Session) bool {
	sh := &st.shards[st.shard(id)]
	sh.mu.Lock()
	ok := sh.ids.delete(id, s)
	sh.mu.Unlock()
	if ok && st.backend != nil && (s == nil || s.Stored.Load()) {
		st.backend.DeleteSession(id)
	}
	return ok
}

// Len is the number of sessions.
func (st *Store) Len() int {
	n := 0
	for i := range st.shards {
		sh := &st.shards[i]
		sh.mu.RLock()
		n += sh.ids.n
		sh.mu.RUnlock()
	}
	return n
}

// persistent reports whether s's state must be durable: a durable backend
// and a session that outlives its connection.
func (st *Store) persistent(s *Session) bool {
	if st.backend != nil && s.Expiry > 0 {
		if !s.Stored.Load() {
			s.Stored.Store(true)
		}
		return true
	}
	return false
}

// SaveSession records s's meta (caller holds s.Mu).
func (st *Store) SaveSession(s *Session) {
	if st.persistent(s) {
		st.backend.SaveSession(s)
	}
}

// SaveOut records an outbound message of s (caller holds s.Mu).
func (st *Store) SaveOut(s *Session, f *Inflight) {
	if st.persistent(s) {
		st.backend.SaveOut(s.ClientID, f)
	}
}

// DeleteOut forgets an outbound message of s (caller holds s.Mu).
func (st *Store) DeleteOut(s *Session, f *Inflight) {
	if st.persistent(s) {
		st.backend.DeleteOut(s.ClientID, f)
	}
}

// SaveReceived records an inbound QoS 2 packet id of s.
func (st *Store) SaveReceived(s *Session, id uint16) {
	if st.persistent(s) {
		st.backend.SaveReceived(s.ClientID, id)
	}
}

// DeleteReceived forgets an inbound QoS 2 packet id of s.
func (st *Store) DeleteReceived(s *Session, id uint16) {
	if st.persistent(s) {
		st.backend.DeleteReceived(s.ClientID, id)
	}
}

// SaveWill records the will of a connected client.
func (st *Store) SaveWill(clientID string, w *Will) {
	if st.backend != nil {
		st.backend.SaveWill(clientID, w)
	}
}

// DeleteWill forgets the will of a client.
func (st *Store) DeleteWill(clientID string) {
	if st.backend != nil {
		st.backend.DeleteWill(clientID)
	}
}

// SaveRetained records a retained message (an empty payload deletes).
func (st *Store) SaveRetained(m *Message) {
	if st.backend == nil {
		return
	}
	if len(m.Payload) == 0 {
		st.backend.DeleteRetained(m.Topic)
		return
	}
	st.backend.SaveRetained(m)
}

// Atomic runs fn so that its writes are committed together (see
// Backend.Atomic); memory-only, it just runs fn.
func (st *Store) Atomic(fn func()) {
	if st.backend == nil {
		fn()
		return
	}
	st.backend.Atomic(fn)
}

// Commit calls done once every write so far is durable; at once (on the
// caller's goroutine) when memory-only.
func (st *Store) Commit(done func(error)) {
	if st.backend == nil {
		done(nil)
		return
	}
	st.backend.Commit(done)
}

// Load fills the registry from the backend and returns the wills of
// clients that were connected and the retained messages. Sessions that
// were connected count as disconnected at now.
func (st *Store) Load(now time.Time) (*Snapshot, error) {
	if st.backend == nil {
		return &Snapshot{}, nil
	}
	snap, err := st.backend.Load()
	if err != nil {
		return nil, err
	}
	for _, s := range snap.Sessions {
		s.Stored.Store(true)
		if s.DisconnectedAt.IsZero() {
			s.DisconnectedAt = now
		}
		st.Put(s)
	}
	return snap, nil
}

// Close closes the backend.
func (st *Store) Close() error {
	if st.backend == nil {
		return nil
	}
	return st.backend.Close()
}
