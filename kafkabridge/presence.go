package kafkabridge

import (
	"hash/maphash"
	"strconv"
	"sync"
	"sync/atomic"
	"time"

	"github.com/mqttd/mqttd/broker"
	"github.com/mqttd/mqttd/session"
)

// Presence sequence numbers.
//
// Every connect and disconnect event of a client carries a seq larger than
// the one before it, across reconnects and broker restarts, so consumers
// can order a client's events whatever partition or topic they read them
// from. seq = generation * 1e9 + n, where:
//
//   - generation is a counter in the KV (key "seq/gen"), incremented and
//     synced once per start: everything after a restart is larger than
//     everything before, with no write per event;
//   - n counts the client's events since the start, in memory. A client
//     offline for longer than seqIdle is forgotten; its next n starts
//     above the largest n ever forgotten (the floor), so it still grows.
const (
	seqGenKey   = "seq/gen"
	seqGenScale = 1_000_000_000
	seqIdle     = time.Hour
	seqShards   = 64
)

type seqEntry struct {
	n      uint64
	online int32
	last   time.Time
}

type seqs struct {
	gen   uint64
	seed  maphash.Seed
	floor atomic.Uint64
	shard [seqShards]struct {
		sync.Mutex // guards m
		m          map[string]*seqEntry
	}
}

// newSeqs starts a new generation, stored in kv before it returns.
func newSeqs(kv session.KV) (*seqs, error) {
	var gen uint64
	v, err := kv.Get([]byte(seqGenKey))
	switch {
	case err == nil:
		gen, err = strconv.ParseUint(string(v), 10, 64)
		if err != nil {
			return nil, err
		}
	case err != session.ErrNotFound:
		return nil, err
	}
	gen++
	if err := kv.Set([]byte(seqGenKey), strconv.AppendUint(nil, gen, 10)); err != nil {
		return nil, err
	}
	s := &seqs{gen: gen, seed: maphash.MakeSeed()}
	for i := range s.shard {
		s.shard[i].m = make(map[string]*seqEntry)
	}
	return s, nil
}

// next returns the client's next seq; connect says whether the event is
// a connect (the client is online) or a disconnect. Event-loop safe: one
// short lock.
func (s *seqs) next(clientID string, connect bool, now time.Time) uint64 {
	sh := &s.shard[maphash.String(s.seed, clientID)%seqShards]
	sh.Lock()
	e := sh.m[clientID]
	if e == nil {
		e = &seqEntry{n: s.floor.Load()}
		sh.m[clientID] = e
	}
	e.n++
	e.last = now
	if connect {
		e.online++
	} else {
		e.online--
	}
	n := e.n
	sh.Unlock()
	return s.gen*seqGenScale + n
}

// prune forgets clients offline since before cutoff, raising the floor.
func (s *seqs) prune(cutoff time.Time) (forgotten int) {
	for i := range s.shard {
		sh := &s.shard[i]
		sh.Lock()
		for id, e := range sh.m {
			if e.online > 0 || e.last.After(cutoff) {
				continue
			}
			for {
				f := s.floor.Load()
				if e.n <= f || s.floor.CompareAndSwap(f, e.n) {
					break
				}
			}
			delete(sh.m, id)
			forgotten++
		}
		sh.Unlock()
	}
	return forgotten
}

// OnConnect implements broker.Hook: a connect event for the
// mqtt-device-connect topic. Never blocks.
func (br *Bridge) OnConnect(c broker.ClientInfo) {
	br.presence(c, true, "")
}

// OnDisconnect implements broker.Hook: a disconnect event for the
// mqtt-device-disconnect topic. Never blocks.
func (br *Bridge) OnDisconnect(c broker.ClientInfo, reason string) {
	br.presence(c, false, reason)
}

// OnPublish implements broker.Hook. Device messages come through Accept.
func (br *Bridge) OnPublish(*broker.Message) {}

func (br *Bridge) presence(c broker.ClientInfo, connect bool, reason string) {
	now := time.Now()
	ev := &presenceEvent{
		info:    c,
		connect: connect,
		reason:  reason,
		seq:     br.seqs.next(c.ClientID, connect, now),
		ts:      now.UnixMilli(),
	}
	br.m.presence.Add(1)
	br.enqueue(item{ev: ev, size: int64(len(c.ClientID)) + 256})
}
