package session

import (
	"strconv"
	"sync"
	"sync/atomic"
	"time"

	"github.com/mqttd/mqttd/codec"
)

// Subscription is one subscription of a session, keyed by its filter as the
// client sent it (with a $share/ prefix when shared).
type Subscription struct {
	Filter            string
	QoS               codec.QoS
	NoLocal           bool
	RetainAsPublished bool
	RetainHandling    byte
	ID                uint32 // subscription identifier; 0: none
}

// Delivery is a message on its way to one session: the message and what
// this session's subscriptions made of it.
type Delivery struct {
	Msg    *Message
	QoS    codec.QoS // min(publish QoS, granted QoS)
	Retain bool      // RETAIN flag to send
	SubIDs []uint32  // subscription identifiers to send
}

// Phase is where a QoS 1/2 message on its way to the client stands.
type Phase byte

// Phases of an outbound message.
const (
	PhasePublished Phase = iota // PUBLISH due or sent, awaiting PUBACK / PUBREC
	PhaseReleased               // QoS 2: PUBREC received, PUBREL sent, awaiting PUBCOMP
)

// Inflight is one outbound QoS 1/2 message of a session: queued (not yet
// sent) or in flight (sent, not yet acknowledged). It holds its packet id
// from the moment it is queued, so that a resend after a restart reuses
// the id the client may already have seen [MQTT-4.3.3].
type Inflight struct {
	Delivery
	PacketID uint16
	Seq      uint64 // order of the session's outbound messages (store key)
	Phase    Phase
	Sent     bool // sent at least once (a resend sets DUP)
	// MaybeSent marks a message restored from the store: it may have
	// reached the client before the restart, so its first send sets DUP.
	MaybeSent bool
	// Durable is set once the message's store record is committed; only
	// durable messages are sent, so nothing the client saw can vanish in
	// a crash. Always true on a store that is not durable.
	Durable bool
}

// Will is a will message waiting to be published.
type Will struct {
	Msg   *Message
	Delay time.Duration // MQTT 5 Will Delay Interval
}

// Session is the state of one client ID. Mu guards every field; the
// broker holds it while it reads or changes the session.
//
// Memory: sessions of idle clients are most of a broker's memory, so a
// session keeps inline only what every session uses (112 bytes); the
// outbound queue, the inbound QoS 2 ids, the held publishers, a delayed
// will and the index of many subscriptions live in a sessionCold
// allocated on first use.
type Session struct {
	Mu sync.Mutex

	// Owner is the broker's handle on the connection that has the session
	// (nil while offline).
	Owner any

	ClientID string

	// Expiry is how long the session outlives its connection; 0 ends it
	// with the connection.
	Expiry time.Duration
	// DisconnectedAt is when the last connection ended (zero while one is
	// connected or before the first).
	DisconnectedAt time.Time

	// subs are the subscriptions, in no particular order (most sessions
	// have one or a few: a slice costs a fraction of a map); cold.subIdx
	// indexes them by filter once there are many. Use SetSub, DeleteSub,
	// Subscriptions and TakeSubs.
	subs []Subscription

	// Stored is set once the store holds records of this session, so that
	// ending a session that never had any writes nothing.
	Stored atomic.Bool

	// groupLen is the length of the group, a prefix of ClientID (see
	// Group).
	groupLen uint16

	cold *sessionCold // nil until first needed: use x()
}

// sessionCold is the part of a session that most sessions never need.
type sessionCold struct {
	// out holds the outbound QoS 1/2 messages in order: out[:nsent] were
	// sent and await acknowledgement (the in-flight window), out[nsent:]
	// wait to be sent (queued: offline, or online behind the window).
	out   []*Inflight
	nsent int
	// used marks the packet ids held by out, kept only while out is long
	// (a scan of out is cheaper below idsIndexed and costs no memory).
	used    *[65536 / 64]uint64
	nextID  uint16
	nextSeq uint64

	// subIdx indexes subs by filter once there are subsIndexed of them.
	subIdx map[string]int

	// received holds the packet ids of inbound QoS 2 publishes that were
	// accepted (PUBREC sent) and not yet released by PUBREL; nil until
	// the first one.
	received map[uint16]struct{}

	// waiters are publishers' acknowledgements held back while the queue
	// of this online session is over its cap (backpressure), called when
	// it has room again or the session goes offline.
	waiters []func(error)

	// pendingWill is a delayed will from the last connection, published
	// at willAt unless a new connection resumes the session first.
	pendingWill *Will
	willAt      time.Time
}

// x returns the cold part, allocating it on first use.
func (s *Session) x() *sessionCold {
	if s.cold == nil {
		s.cold = new(sessionCold)
	}
	return s.cold
}

// New returns an empty session for clientID. group is the GroupID of a
// "GroupID@@@DeviceID" client ID ("" without): it must be a prefix of
// clientID, so the session keeps only its length.
func New(clientID, group string) *Session {
	if len(group) > len(clientID) || clientID[:len(group)] != group || len(group) > 0xFFFF {
		panic("session: group " + strconv.Quote(group) + " is not a prefix of client id " + strconv.Quote(clientID))
	}
	return &Session{ClientID: clientID, groupLen: uint16(len(group))}
}

// Group is the GroupID of a "GroupID@@@DeviceID" client ID, "" without.
func (s *Session) Group() string { return s.ClientID[:s.groupLen] }

// subsIndexed is the subscription count from which a session keeps an
// index by filter: below it a scan is cheaper and costs no memory.
const subsIndexed = 16

// subIdx is the index of subs by filter, nil while there are few.
func (s *Session) subIdx() map[string]int {
	if s.cold == nil {
		return nil
	}
	return s.cold.subIdx
}

func (s *Session) findSub(filter string) int {
	if idx := s.subIdx(); idx != nil {
		if i, ok := idx[filter]; ok {
			return i
		}
		return -1
	}
	for i := range s.subs {
		if s.subs[i].Filter == filter {
			return i
		}
	}
	return -1
}

// SetSub adds or replaces the subscription on sub.Filter; had reports
// whether one was replaced.
func (s *Session) SetSub(sub Subscription) (had bool) {
	if i := s.findSub(sub.Filter); i >= 0 {
		s.subs[i] = sub
		return true
	}
	s.subs = append(s.subs, sub)
	if idx := s.subIdx(); idx != nil {
		idx[sub.Filter] = len(s.subs) - 1
	} else if len(s.subs) > subsIndexed {
		idx = make(map[string]int, len(s.subs))
		for i := range s.subs {
			idx[s.subs[i].Filter] = i
		}
		s.x().subIdx = idx
	}
	return false
}

// DeleteSub removes the subscription on filter; it reports whether there
// was one. The last subscription takes the removed one's place.
func (s *Session) DeleteSub(filter string) bool {
	i := s.findSub(filter)
	if i < 0 {
		return false
	}
	last := len(s.subs) - 1
	if idx := s.subIdx(); idx != nil {
		delete(idx, filter)
		if i != last {
			idx[s.subs[last].Filter] = i
		}
	}
	s.subs[i] = s.subs[last]
	s.subs[last] = Subscription{}
	s.subs = s.subs[:last]
	if len(s.subs) == 0 {
		s.TakeSubs()
	}
	return true
}

// Subscriptions returns the subscriptions; the caller holds Mu and must
// not keep or change the slice.
func (s *Session) Subscriptions() []Subscription { return s.subs }

// TakeSubs removes every subscription and returns them.
func (s *Session) TakeSubs() []Subscription {
	subs := s.subs
	s.subs = nil
	if s.cold != nil {
		s.cold.subIdx = nil
	}
	return subs
}

// MarkReceived records an inbound QoS 2 packet id.
func (s *Session) MarkReceived(id uint16) {
	x := s.x()
	if x.received == nil {
		x.received = make(map[uint16]struct{})
	}
	x.received[id] = struct{}{}
}

// HasReceived reports whether the inbound QoS 2 packet id is recorded
// (accepted, not yet released).
func (s *Session) HasReceived(id uint16) bool {
	if s.cold == nil {
		return false
	}
	_, ok := s.cold.received[id]
	return ok
}

// ReceivedLen is the number of inbound QoS 2 packet ids recorded.
func (s *Session) ReceivedLen() int {
	if s.cold == nil {
		return 0
	}
	return len(s.cold.received)
}

// ReleaseReceived forgets an inbound QoS 2 packet id (its PUBREL came)
// and reports whether it was recorded.
func (s *Session) ReleaseReceived(id uint16) bool {
	if !s.HasReceived(id) {
		return false
	}
	delete(s.cold.received, id)
	return true
}

// AddWaiter holds back a publisher's acknowledgement until the queue has
// room again (see TakeWaiters).
func (s *Session) AddWaiter(done func(error)) {
	x := s.x()
	x.waiters = append(x.waiters, done)
}

// Waiting is the number of held-back acknowledgements.
func (s *Session) Waiting() int {
	if s.cold == nil {
		return 0
	}
	return len(s.cold.waiters)
}

// TakeWaiters appends the held-back acknowledgements to dst and forgets
// them, keeping the session's slice for reuse.
func (s *Session) TakeWaiters(dst []func(error)) []func(error) {
	if s.cold == nil || len(s.cold.waiters) == 0 {
		return dst
	}
	x := s.cold
	dst = append(dst, x.waiters...)
	clear(x.waiters)
	x.waiters = x.waiters[:0]
	return dst
}

// PendingWill returns the delayed will of the last connection and when it
// is due; nil when there is none.
func (s *Session) PendingWill() (w *Will, at time.Time) {
	if s.cold == nil {
		return nil, time.Time{}
	}
	return s.cold.pendingWill, s.cold.willAt
}

// SetPendingWill sets the delayed will, published at at unless a new
// connection resumes the session first; nil clears it.
func (s *Session) SetPendingWill(w *Will, at time.Time) {
	if w == nil {
		if s.cold != nil {
			s.cold.pendingWill, s.cold.willAt = nil, time.Time{}
		}
		return
	}
	x := s.x()
	x.pendingWill, x.willAt = w, at
}

// TakePendingWill clears the delayed will and returns it (nil: none).
func (s *Session) TakePendingWill() *Will {
	w, _ := s.PendingWill()
	s.SetPendingWill(nil, time.Time{})
	return w
}

// QueueLen is the number of messages waiting to be sent.
func (s *Session) QueueLen() int {
	if s.cold == nil {
		return 0
	}
	return len(s.cold.out) - s.cold.nsent
}

// InflightLen is the number of messages sent and not yet acknowledged.
func (s *Session) InflightLen() int {
	if s.cold == nil {
		return 0
	}
	return s.cold.nsent
}

// Out returns every outbound message, sent ones first, in order. The
// slice is the session's own: use it under the owner's lock only.
func (s *Session) Out() []*Inflight {
	if s.cold == nil {
		return nil
	}
	return s.cold.out
}

// Add queues d with a free packet id and the next sequence number. ok is
// false when all 65535 packet ids are taken.
func (s *Session) Add(d Delivery, durable bool) (f *Inflight, ok bool) {
	x := s.x()
	if len(x.out) >= 65535 {
		return nil, false
	}
	for {
		x.nextID++
		if x.nextID == 0 {
			x.nextID = 1
		}
		if !x.idInUse(x.nextID) {
			break
		}
	}
	x.nextSeq++
	f = &Inflight{Delivery: d, PacketID: x.nextID, Seq: x.nextSeq, Durable: durable}
	x.out = append(x.out, f)
	x.markID(f.PacketID, true)
	return f, true
}

// Restore adds a message loaded from a store, in store order. A QoS 2
// message whose PUBREC had arrived is in flight (its PUBREL is resent when
// the client is back); every other one waits to be sent again, inside the
// client's window and subject to its expiry, with DUP set because it may
// have reached the client before the restart [MQTT-4.4.0-1].
func (s *Session) Restore(f *Inflight) {
	x := s.x()
	f.Durable, f.MaybeSent = true, true
	if f.Phase == PhaseReleased {
		f.Sent = true
		x.out = append(x.out, nil)
		copy(x.out[x.nsent+1:], x.out[x.nsent:])
		x.out[x.nsent] = f
		x.nsent++
	} else {
		f.Sent = false
		x.out = append(x.out, f)
	}
	x.markID(f.PacketID, true)
	if f.Seq > x.nextSeq {
		x.nextSeq = f.Seq
	}
	if f.PacketID > x.nextID {
		x.nextID = f.PacketID
	}
}

// NextUnsent returns the oldest message waiting to be sent, or nil.
func (s *Session) NextUnsent() *Inflight {
	if x := s.cold; x != nil && x.nsent < len(x.out) {
		return x.out[x.nsent]
	}
	return nil
}

// MarkSent moves the oldest waiting message (NextUnsent) into flight.
func (s *Session) MarkSent() {
	if x := s.cold; x != nil && x.nsent < len(x.out) {
		x.out[x.nsent].Sent = true
		x.nsent++
	}
}

// Find returns the outbound message with packet id id, or nil.
func (s *Session) Find(id uint16) *Inflight {
	if s.cold == nil {
		return nil
	}
	return s.cold.find(id)
}

func (x *sessionCold) find(id uint16) *Inflight {
	// Acknowledgements mostly arrive in send order: look from the front.
	for _, f := range x.out {
		if f.PacketID == id {
			return f
		}
	}
	return nil
}

// Remove drops the outbound message with packet id id.
func (s *Session) Remove(id uint16) (*Inflight, bool) {
	if s.cold == nil {
		return nil, false
	}
	for i, f := range s.cold.out {
		if f.PacketID == id {
			s.cold.removeAt(i)
			return f, true
		}
	}
	return nil, false
}

// removeAt drops out[i], moving the shorter side: acknowledgements mostly
// remove the oldest message, which then costs O(1).
func (x *sessionCold) removeAt(i int) {
	if i < x.nsent {
		x.nsent--
	}
	x.markID(x.out[i].PacketID, false)
	n := len(x.out)
	if i < n/2 {
		copy(x.out[1:i+1], x.out[:i])
		x.out[0] = nil
		x.out = x.out[1:]
	} else {
		copy(x.out[i:], x.out[i+1:])
		x.out[n-1] = nil
		x.out = x.out[:n-1]
	}
	if len(x.out) == 0 && cap(x.out) > 64 {
		x.out = nil // let a burst's backing array go
	}
}

// idsIndexed is the length of out from which packet ids in use are
// tracked in a bitmap instead of found by scanning.
const idsIndexed = 32

func (x *sessionCold) idInUse(id uint16) bool {
	if x.used != nil {
		return x.used[id/64]&(1<<(id%64)) != 0
	}
	if len(x.out) >= idsIndexed {
		x.used = new([65536 / 64]uint64)
		for _, f := range x.out {
			x.used[f.PacketID/64] |= 1 << (f.PacketID % 64)
		}
		return x.used[id/64]&(1<<(id%64)) != 0
	}
	return x.find(id) != nil
}

func (x *sessionCold) markID(id uint16, inUse bool) {
	if x.used == nil {
		return
	}
	if inUse {
		x.used[id/64] |= 1 << (id % 64)
		return
	}
	x.used[id/64] &^= 1 << (id % 64)
	if len(x.out) <= 1 {
		x.used = nil // idle again: drop the 8 KiB bitmap
	}
}

// TrimQueue drops the oldest waiting messages until at most max wait, and
// returns them.
func (s *Session) TrimQueue(max int) (dropped []*Inflight) {
	for s.QueueLen() > max {
		x := s.cold
		dropped = append(dropped, x.out[x.nsent])
		x.removeAt(x.nsent)
	}
	return dropped
}

// DropExpiredQueued removes waiting messages whose expiry passed at now
// and returns them.
func (s *Session) DropExpiredQueued(now time.Time) (dropped []*Inflight) {
	x := s.cold
	if x == nil {
		return nil
	}
	for i := x.nsent; i < len(x.out); {
		if x.out[i].Msg.Expired(now) {
			dropped = append(dropped, x.out[i])
			x.removeAt(i)
			continue
		}
		i++
	}
	return dropped
}
