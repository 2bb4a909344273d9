package session

import (
	"bytes"
	"encoding/binary"
	"errors"
	"fmt"
	"os"
	"sort"
	"sync"

	"github.com/cockroachdb/pebble"
	"github.com/rs/zerolog"
)

// Key layout of the pebble backend. Client IDs and topics never contain
// NUL (the codec rejects U+0000), so 0x00 separates key parts.
//
//	s\0<client>            session meta
//	o\0<client>\0<seq:8>   outbound message (queued or in flight), by order
//	r\0<client>\0<id:2>    inbound QoS 2 packet id not yet released
//	w\0<client>            will of a connected client
//	R\0<topic>             retained message
//	k\0<key>               KV space of other components
const (
	pfxSession  = 's'
	pfxOut      = 'o'
	pfxReceived = 'r'
	pfxWill     = 'w'
	pfxRetained = 'R'
	pfxKV       = 'k'
)

func key(pfx byte, parts ...string) []byte {
	n := 2
	for _, p := range parts {
		n += len(p) + 1
	}
	k := make([]byte, 0, n+8)
	k = append(k, pfx, 0)
	for i, p := range parts {
		if i > 0 {
			k = append(k, 0)
		}
		k = append(k, p...)
	}
	return k
}

func outKey(client string, seq uint64) []byte {
	k := append(key(pfxOut, client), 0)
	return binary.BigEndian.AppendUint64(k, seq)
}

func receivedKey(client string, id uint16) []byte {
	k := append(key(pfxReceived, client), 0)
	return binary.BigEndian.AppendUint16(k, id)
}

// prefixEnd returns the first key after every key starting with p.
func prefixEnd(p []byte) []byte {
	end := bytes.Clone(p)
	for i := len(end) - 1; i >= 0; i-- {
		end[i]++
		if end[i] != 0 {
			return end[:i+1]
		}
	}
	return nil
}

// PebbleConfig configures the pebble backend.
type PebbleConfig struct {
	Dir string         // data directory; created when missing
	Log zerolog.Logger // zero value: discard
	// NoSync skips the fsync of each group commit (tests and benchmarks
	// of the non-durable path only; a crash may lose acknowledged data).
	NoSync bool
}

// Pebble is the durable Backend on github.com/cockroachdb/pebble.
// Writes go into a shared batch under mu; a committer goroutine commits
// the batch with one sync for every waiter queued since the last commit.
type Pebble struct {
	dir  string
	db   *pebble.DB
	log  zerolog.Logger
	sync *pebble.WriteOptions

	mu struct {
		sync.Mutex
		batch   *pebble.Batch
		waiters []func(error)
		closed  bool
	}
	// txMu keeps a group of writes (Atomic) whole: writers hold it shared
	// while they write, the committer exclusively while it takes the batch.
	txMu sync.RWMutex
	kick chan struct{}
	stop chan struct{}
	wg   sync.WaitGroup
	kv   *pebbleKV
}

// ErrDataDir is returned when the data directory cannot be used.
var ErrDataDir = errors.New("session: data directory unusable")

// OpenPebble opens (or creates) the store in cfg.Dir. A directory that
// holds something other than a pebble store, or a corrupt one, is an
// error: never a silent reset.
func OpenPebble(cfg PebbleConfig) (*Pebble, error) {
	if cfg.Dir == "" {
		return nil, fmt.Errorf("%w: no directory given", ErrDataDir)
	}
	if err := os.MkdirAll(cfg.Dir, 0o750); err != nil {
		return nil, fmt.Errorf("%w: %v", ErrDataDir, err)
	}
	entries, err := os.ReadDir(cfg.Dir)
	if err != nil {
		return nil, fmt.Errorf("%w: %v", ErrDataDir, err)
	}
	if len(entries) > 0 {
		if _, err := os.Stat(cfg.Dir + "/CURRENT"); err != nil {
			return nil, fmt.Errorf("%w: %s is not empty and holds no mqttd store (no CURRENT file)", ErrDataDir, cfg.Dir)
		}
	}
	db, err := pebble.Open(cfg.Dir, &pebble.Options{Logger: pebbleLogger{cfg.Log}})
	if err != nil {
		return nil, fmt.Errorf("%w: %s: %v", ErrDataDir, cfg.Dir, err)
	}
	p := &Pebble{
		dir:  cfg.Dir,
		db:   db,
		log:  cfg.Log,
		sync: pebble.Sync,
		kick: make(chan struct{}, 1),
		stop: make(chan struct{}),
	}
	if cfg.NoSync {
		p.sync = pebble.NoSync
	}
	p.kv = &pebbleKV{p: p}
	p.mu.batch = db.NewBatch()
	p.wg.Add(1)
	go p.committer()
	return p, nil
}

type pebbleLogger struct{ l zerolog.Logger }

func (l pebbleLogger) Infof(format string, args ...any)  { l.l.Debug().Msgf(format, args...) }
func (l pebbleLogger) Errorf(format string, args ...any) { l.l.Error().Msgf(format, args...) }
func (l pebbleLogger) Fatalf(format string, args ...any) {
	l.l.Error().Msgf(format, args...)
	panic(fmt.Sprintf(format, args...))
}

func (p *Pebble) set(k, v []byte) {
	p.mu.Lock()
	if !p.mu.closed {
		_ = p.mu.batch.Set(k, v, nil)
	}
	p.mu.Unlock()
}

func (p *Pebble) del(k []byte) {
	p.mu.Lock()
	if !p.mu.closed {
		_ = p.mu.batch.Delete(k, nil)
	}
	p.mu.Unlock()
}

func (p *Pebble) delPrefix(pfx []byte) {
	p.mu.Lock()
	if !p.mu.closed {
		_ = p.mu.batch.DeleteRange(pfx, prefixEnd(pfx), nil)
	}
	p.mu.Unlock()
}

// SaveSession implements Backend.
func (p *Pebble) SaveSession(s *Session) { p.set(key(pfxSession, s.ClientID), encodeSession(s)) }

// DeleteSession implements Backend.
func (p *Pebble) DeleteSession(id string) {
	p.del(key(pfxSession, id))
	p.del(key(pfxWill, id))
	p.delPrefix(append(key(pfxOut, id), 0))
	p.delPrefix(append(key(pfxReceived, id), 0))
}

// SaveOut implements Backend.
func (p *Pebble) SaveOut(id string, f *Inflight) { p.set(outKey(id, f.Seq), encodeOut(f)) }

// DeleteOut implements Backend.
func (p *Pebble) DeleteOut(id string, f *Inflight) { p.del(outKey(id, f.Seq)) }

// SaveReceived implements Backend.
func (p *Pebble) SaveReceived(id string, pid uint16) { p.set(receivedKey(id, pid), []byte{recordV1}) }

// DeleteReceived implements Backend.
func (p *Pebble) DeleteReceived(id string, pid uint16) { p.del(receivedKey(id, pid)) }

// SaveWill implements Backend.
func (p *Pebble) SaveWill(id string, w *Will) { p.set(key(pfxWill, id), encodeWill(w)) }

// DeleteWill implements Backend.
func (p *Pebble) DeleteWill(id string) { p.del(key(pfxWill, id)) }

// SaveRetained implements Backend.
func (p *Pebble) SaveRetained(m *Message) { p.set(key(pfxRetained, m.Topic), encodeRetained(m)) }

// DeleteRetained implements Backend.
func (p *Pebble) DeleteRetained(topic string) { p.del(key(pfxRetained, topic)) }

// Commit implements Backend.
func (p *Pebble) Commit(done func(error)) {
	p.mu.Lock()
	if p.mu.closed {
		p.mu.Unlock()
		done(errors.New("session: store closed"))
		return
	}
	p.mu.waiters = append(p.mu.waiters, done)
	p.mu.Unlock()
	select {
	case p.kick <- struct{}{}:
	default:
	}
}

// committer commits the shared batch whenever someone waits on it.
func (p *Pebble) committer() {
	defer p.wg.Done()
	for {
		select {
		case <-p.kick:
		case <-p.stop:
			p.commitOnce()
			return
		}
		p.commitOnce()
	}
}

// Atomic implements Backend.
func (p *Pebble) Atomic(fn func()) {
	p.txMu.RLock()
	defer p.txMu.RUnlock()
	fn()
}

func (p *Pebble) commitOnce() {
	p.txMu.Lock()
	p.mu.Lock()
	b, waiters := p.mu.batch, p.mu.waiters
	if len(waiters) == 0 && b.Empty() {
		p.mu.Unlock()
		p.txMu.Unlock()
		return
	}
	p.mu.batch, p.mu.waiters = p.db.NewBatch(), nil
	p.mu.Unlock()
	p.txMu.Unlock()
	var err error
	if !b.Empty() {
		err = b.Commit(p.sync)
	}
	_ = b.Close()
	if err != nil {
		p.log.Error().Err(err).Msg("store commit failed")
	}
	for _, w := range waiters {
		w(err)
	}
}

// Load implements Backend.
func (p *Pebble) Load() (*Snapshot, error) {
	snap := &Snapshot{Wills: map[string]*Will{}}
	sessions := map[string]*Session{}
	type outRec struct {
		client string
		f      *Inflight
	}
	var outs []outRec
	type recvRec struct {
		client string
		id     uint16
	}
	var recvs []recvRec
	it, err := p.db.NewIter(&pebble.IterOptions{})
	if err != nil {
		return nil, err
	}
	defer it.Close()
	bad := func(k []byte, err error) error {
		return fmt.Errorf("%w (data directory %s, key %q)", err, p.dir, k)
	}
	for it.First(); it.Valid(); it.Next() {
		k, v := it.Key(), it.Value()
		if len(k) < 2 || k[1] != 0 {
			return nil, fmt.Errorf("%w: key %q", ErrCorrupt, k)
		}
		rest := k[2:]
		switch k[0] {
		case pfxSession:
			s, err := decodeSession(v)
			if err != nil {
				return nil, bad(k, err)
			}
			sessions[s.ClientID] = s
		case pfxOut:
			i := bytes.IndexByte(rest, 0)
			if i < 0 || len(rest)-i-1 != 8 {
				return nil, fmt.Errorf("%w: outbound key %q", ErrCorrupt, k)
			}
			f, err := decodeOut(v)
			if err != nil {
				return nil, bad(k, err)
			}
			outs = append(outs, outRec{string(rest[:i]), f})
		case pfxReceived:
			i := bytes.IndexByte(rest, 0)
			if i < 0 || len(rest)-i-1 != 2 {
				return nil, fmt.Errorf("%w: received key %q", ErrCorrupt, k)
			}
			recvs = append(recvs, recvRec{string(rest[:i]), binary.BigEndian.Uint16(rest[i+1:])})
		case pfxWill:
			w, err := decodeWill(v)
			if err != nil {
				return nil, bad(k, err)
			}
			snap.Wills[string(rest)] = w
		case pfxRetained:
			m, err := decodeRetained(v)
			if err != nil {
				return nil, bad(k, err)
			}
			snap.Retained = append(snap.Retained, m)
		case pfxKV:
		default:
			return nil, fmt.Errorf("%w: key %q", ErrCorrupt, k)
		}
	}
	if err := it.Error(); err != nil {
		return nil, err
	}
	// Records of sessions without meta are left-overs of a session that
	// ended: drop them.
	var stale []string
	for _, o := range outs {
		s := sessions[o.client]
		if s == nil {
			stale = append(stale, o.client)
			continue
		}
		s.Restore(o.f)
	}
	for _, r := range recvs {
		if s := sessions[r.client]; s != nil {
			s.MarkReceived(r.id)
		} else {
			stale = append(stale, r.client)
		}
	}
	for _, id := range stale {
		p.DeleteSession(id)
	}
	for _, s := range sessions {
		snap.Sessions = append(snap.Sessions, s)
	}
	sort.Slice(snap.Sessions, func(i, j int) bool { return snap.Sessions[i].ClientID < snap.Sessions[j].ClientID })
	return snap, nil
}

// KV implements Backend.
func (p *Pebble) KV() KV { return p.kv }

// Close commits what is queued and closes the database.
func (p *Pebble) Close() error {
	p.mu.Lock()
	if p.mu.closed {
		p.mu.Unlock()
		return nil
	}
	p.mu.Unlock()
	close(p.stop)
	p.wg.Wait()
	p.mu.Lock()
	p.mu.closed = true
	b := p.mu.batch
	p.mu.Unlock()
	_ = b.Close()
	return p.db.Close()
}

type pebbleKV struct{ p *Pebble }

func (kv *pebbleKV) Get(k []byte) ([]byte, error) {
	v, closer, err := kv.p.db.Get(append([]byte{pfxKV, 0}, k...))
	if errors.Is(err, pebble.ErrNotFound) {
		return nil, ErrNotFound
	}
	if err != nil {
		return nil, err
	}
	out := bytes.Clone(v)
	_ = closer.Close()
	return out, nil
}

func (kv *pebbleKV) Set(k, v []byte) error {
	return kv.p.db.Set(append([]byte{pfxKV, 0}, k...), v, pebble.Sync)
}

func (kv *pebbleKV) Delete(k []byte) error {
	return kv.p.db.Delete(append([]byte{pfxKV, 0}, k...), pebble.Sync)
}

func (kv *pebbleKV) Scan(prefix []byte, fn func(k, v []byte) error) error {
	lo := append([]byte{pfxKV, 0}, prefix...)
	it, err := kv.p.db.NewIter(&pebble.IterOptions{LowerBound: lo, UpperBound: prefixEnd(lo)})
	if err != nil {
		return err
	}
	defer it.Close()
	for it.First(); it.Valid(); it.Next() {
		if err := fn(it.Key()[2:], it.Value()); err != nil {
			return err
		}
	}
	return it.Error()
}
