package session

import (
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
type Session struct {
	Mu sync.Mutex

	// Owner is the broker's handle on the connection that has the session
	// (nil while offline).
	Owner any

	ClientID string
	Group    string // GroupID of a "GroupID@@@DeviceID" client ID

	// Expiry is how long the session outlives its connection; 0 ends it
	// with the connection.
	Expiry time.Duration
	// DisconnectedAt is when the last connection ended (zero while one is
	// connected or before the first).
	DisconnectedAt time.Time

	// subs are the subscriptions, in no particular order (most sessions
	// have one or a few: a slice costs a fraction of a map); subIdx
	// indexes them by filter once there are many. Use SetSub, DeleteSub,
	// Subscriptions and TakeSubs.
	subs   []Subscription
	subIdx map[string]int

	// Stored is set once the store holds records of this session, so that
	// ending a session that never had any writes nothing.
	Stored atomic.Bool

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

	// Received holds the packet ids of inbound QoS 2 publishes that were
	// accepted (PUBREC sent) and not yet released by PUBREL. nil until the
	// first one (most sessions never see QoS 2): use MarkReceived.
	Received map[uint16]struct{}

	// Waiters are publishers' acknowledgements held back while the queue
	// of this online session is over its cap (backpressure), called when
	// it has room again or the session goes offline.
	Waiters []func(error)

	// PendingWill is a delayed will from the last connection, published
	// at WillAt unless a new connection resumes the session first.
	PendingWill *Will
	WillAt      time.Time
}

// New returns an empty session for clientID.
func New(clientID, group string) *Session {
	return &Session{
		ClientID: clientID,
		Group:    group,
	}
}

// subsIndexed is the subscription count from which a session keeps an
// index by filter: below it a scan is cheaper and costs no memory.
const subsIndexed = 16

func (s *Session) findSub(filter string) int {
	if s.subIdx != nil {
		if i, ok := s.subIdx[filter]; ok {
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
	if s.subIdx != nil {
		s.subIdx[sub.Filter] = len(s.subs) - 1
	} else if len(s.subs) > subsIndexed {
		s.subIdx = make(map[string]int, len(s.subs))
		for i := range s.subs {
			s.subIdx[s.subs[i].Filter] = i
		}
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
	if s.subIdx != nil {
		delete(s.subIdx, filter)
		if i != last {
			s.subIdx[s.subs[last].Filter] = i
		}
	}
	s.subs[i] = s.subs[last]
	s.subs[last] = Subscription{}
	s.subs = s.subs[:last]
	if len(s.subs) == 0 {
		s.subs, s.subIdx = nil, nil
	}
	return true
}

// Subscriptions returns the subscriptions; the caller holds Mu and must
// not keep or change the slice.
func (s *Session) Subscriptions() []Subscription { return s.subs }

// TakeSubs removes every subscription and returns them.
func (s *Session) TakeSubs() []Subscription {
	subs := s.subs
	s.subs, s.subIdx = nil, nil
	return subs
}

// MarkReceived records an inbound QoS 2 packet id.
func (s *Session) MarkReceived(id uint16) {
	if s.Received == nil {
		s.Received = make(map[uint16]struct{})
	}
	s.Received[id] = struct{}{}
}

// QueueLen is the number of messages waiting to be sent.
func (s *Session) QueueLen() int { return len(s.out) - s.nsent }

// InflightLen is the number of messages sent and not yet acknowledged.
func (s *Session) InflightLen() int { return s.nsent }

// Out returns every outbound message, sent ones first, in order. The
// slice is the session's own: use it under the owner's lock only.
func (s *Session) Out() []*Inflight { return s.out }

// Add queues d with a free packet id and the next sequence number. ok is
// false when all 65535 packet ids are taken.
func (s *Session) Add(d Delivery, durable bool) (f *Inflight, ok bool) {
	if len(s.out) >= 65535 {
		return nil, false
	}
	for {
		s.nextID++
		if s.nextID == 0 {
			s.nextID = 1
		}
		if !s.idInUse(s.nextID) {
			break
		}
	}
	s.nextSeq++
	f = &Inflight{Delivery: d, PacketID: s.nextID, Seq: s.nextSeq, Durable: durable}
	s.out = append(s.out, f)
	s.markID(f.PacketID, true)
	return f, true
}

// Restore adds a message loaded from a store, in store order. A QoS 2
// message whose PUBREC had arrived is in flight (its PUBREL is resent when
// the client is back); every other one waits to be sent again, inside the
// client's window and subject to its expiry, with DUP set because it may
// have reached the client before the restart [MQTT-4.4.0-1].
func (s *Session) Restore(f *Inflight) {
	f.Durable, f.MaybeSent = true, true
	if f.Phase == PhaseReleased {
		f.Sent = true
		s.out = append(s.out, nil)
		copy(s.out[s.nsent+1:], s.out[s.nsent:])
		s.out[s.nsent] = f
		s.nsent++
	} else {
		f.Sent = false
		s.out = append(s.out, f)
	}
	s.markID(f.PacketID, true)
	if f.Seq > s.nextSeq {
		s.nextSeq = f.Seq
	}
	if f.PacketID > s.nextID {
		s.nextID = f.PacketID
	}
}

// NextUnsent returns the oldest message waiting to be sent, or nil.
func (s *Session) NextUnsent() *Inflight {
	if s.nsent < len(s.out) {
		return s.out[s.nsent]
	}
	return nil
}

// MarkSent moves the oldest waiting message (NextUnsent) into flight.
func (s *Session) MarkSent() {
	if s.nsent < len(s.out) {
		s.out[s.nsent].Sent = true
		s.nsent++
	}
}

// Find returns the outbound message with packet id id, or nil.
func (s *Session) Find(id uint16) *Inflight {
	// Acknowledgements mostly arrive in send order: look from the front.
	for _, f := range s.out {
		if f.PacketID == id {
			return f
		}
	}
	return nil
}

// Remove drops the outbound message with packet id id.
func (s *Session) Remove(id uint16) (*Inflight, bool) {
	for i, f := range s.out {
		if f.PacketID == id {
			s.removeAt(i)
			return f, true
		}
	}
	return nil, false
}

// removeAt drops out[i], moving the shorter side: acknowledgements mostly
// remove the oldest message, which then costs O(1).
func (s *Session) removeAt(i int) {
	if i < s.nsent {
		s.nsent--
	}
	s.markID(s.out[i].PacketID, false)
	n := len(s.out)
	if i < n/2 {
		copy(s.out[1:i+1], s.out[:i])
		s.out[0] = nil
		s.out = s.out[1:]
	} else {
		copy(s.out[i:], s.out[i+1:])
		s.out[n-1] = nil
		s.out = s.out[:n-1]
	}
	if len(s.out) == 0 && cap(s.out) > 64 {
		s.out = nil // let a burst's backing array go
	}
}

// idsIndexed is the length of out from which packet ids in use are
// tracked in a bitmap instead of found by scanning.
const idsIndexed = 32

func (s *Session) idInUse(id uint16) bool {
	if s.used != nil {
		return s.used[id/64]&(1<<(id%64)) != 0
	}
	if len(s.out) >= idsIndexed {
		s.used = new([65536 / 64]uint64)
		for _, f := range s.out {
			s.used[f.PacketID/64] |= 1 << (f.PacketID % 64)
		}
		return s.used[id/64]&(1<<(id%64)) != 0
	}
	return s.Find(id) != nil
}

func (s *Session) markID(id uint16, inUse bool) {
	if s.used == nil {
		return
	}
	if inUse {
		s.used[id/64] |= 1 << (id % 64)
		return
	}
	s.used[id/64] &^= 1 << (id % 64)
	if len(s.out) <= 1 {
		s.used = nil // idle again: drop the 8 KiB bitmap
	}
}

// TrimQueue drops the oldest waiting messages until at most max wait, and
// returns them.
func (s *Session) TrimQueue(max int) (dropped []*Inflight) {
	for s.QueueLen() > max {
		dropped = append(dropped, s.out[s.nsent])
		s.removeAt(s.nsent)
	}
	return dropped
}

// DropExpiredQueued removes waiting messages whose expiry passed at now
// and returns them.
func (s *Session) DropExpiredQueued(now time.Time) (dropped []*Inflight) {
	for i := s.nsent; i < len(s.out); {
		if s.out[i].Msg.Expired(now) {
			dropped = append(dropped, s.out[i])
			s.removeAt(i)
			continue
		}
		i++
	}
	return dropped
}
