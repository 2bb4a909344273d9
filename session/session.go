package session

import (
	"sync"
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

// Phase is where a QoS 1/2 message in flight to the client stands.
type Phase byte

// Phases of an outbound in-flight message.
const (
	PhasePublished Phase = iota // PUBLISH sent, awaiting PUBACK / PUBREC
	PhaseReleased               // QoS 2: PUBREC received, PUBREL sent, awaiting PUBCOMP
)

// Inflight is one outbound QoS 1/2 message that holds a packet id.
type Inflight struct {
	Delivery
	PacketID uint16
	Phase    Phase
	Sent     bool // sent at least once on some connection (resend sets DUP)
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

	Subs map[string]*Subscription

	// Queue holds deliveries that have no packet id yet, oldest first:
	// waiting for the client to connect (offline) or for room in the
	// in-flight window (online).
	queue    []Delivery
	queueOff int

	// inflight holds outbound QoS 1/2 messages by send order.
	inflight []*Inflight
	nextID   uint16

	// Received holds the packet ids of inbound QoS 2 publishes that were
	// accepted (PUBREC sent) and not yet released by PUBREL.
	Received map[uint16]struct{}

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
		Subs:     make(map[string]*Subscription),
		Received: make(map[uint16]struct{}),
	}
}

// QueueLen is the number of queued deliveries.
func (s *Session) QueueLen() int { return len(s.queue) - s.queueOff }

// Enqueue appends d to the queue. When the queue then holds more than max
// deliveries (max > 0), the oldest are dropped; it returns how many.
func (s *Session) Enqueue(d Delivery, max int) (dropped int) {
	s.queue = append(s.queue, d)
	if max > 0 {
		for s.QueueLen() > max {
			s.queue[s.queueOff] = Delivery{}
			s.queueOff++
			dropped++
		}
	}
	s.compact()
	return dropped
}

// Trim drops the oldest queued deliveries until at most max remain and
// returns how many it dropped.
func (s *Session) Trim(max int) (dropped int) {
	for s.QueueLen() > max {
		s.queue[s.queueOff] = Delivery{}
		s.queueOff++
		dropped++
	}
	s.compact()
	return dropped
}

// Peek returns the oldest queued delivery.
func (s *Session) Peek() (Delivery, bool) {
	if s.QueueLen() == 0 {
		return Delivery{}, false
	}
	return s.queue[s.queueOff], true
}

// Pop removes the oldest queued delivery.
func (s *Session) Pop() (Delivery, bool) {
	if s.QueueLen() == 0 {
		return Delivery{}, false
	}
	d := s.queue[s.queueOff]
	s.queue[s.queueOff] = Delivery{}
	s.queueOff++
	s.compact()
	return d, true
}

func (s *Session) compact() {
	if s.queueOff == len(s.queue) {
		s.queue = s.queue[:0]
		s.queueOff = 0
		return
	}
	if s.queueOff > 32 && s.queueOff*2 > len(s.queue) {
		n := copy(s.queue, s.queue[s.queueOff:])
		for i := n; i < len(s.queue); i++ {
			s.queue[i] = Delivery{}
		}
		s.queue = s.queue[:n]
		s.queueOff = 0
	}
}

// InflightLen is the number of outbound messages holding a packet id.
func (s *Session) InflightLen() int { return len(s.inflight) }

// Inflight returns the in-flight messages in send order. The slice is the
// session's own: do not keep it past the owner's lock.
func (s *Session) Inflight() []*Inflight { return s.inflight }

// AddInflight gives d a free packet id and records it as in flight. ok is
// false when all 65535 ids are taken.
func (s *Session) AddInflight(d Delivery) (*Inflight, bool) {
	if len(s.inflight) >= 65535 {
		return nil, false
	}
	for {
		s.nextID++
		if s.nextID == 0 {
			s.nextID = 1
		}
		if s.FindInflight(s.nextID) == nil {
			break
		}
	}
	f := &Inflight{Delivery: d, PacketID: s.nextID}
	s.inflight = append(s.inflight, f)
	return f, true
}

// FindInflight returns the in-flight message with packet id id, or nil.
func (s *Session) FindInflight(id uint16) *Inflight {
	// Acknowledgements mostly arrive in send order: look from the front.
	for _, f := range s.inflight {
		if f.PacketID == id {
			return f
		}
	}
	return nil
}

// RemoveInflight drops the in-flight message with packet id id and
// reports whether there was one.
func (s *Session) RemoveInflight(id uint16) bool {
	for i, f := range s.inflight {
		if f.PacketID == id {
			copy(s.inflight[i:], s.inflight[i+1:])
			s.inflight[len(s.inflight)-1] = nil
			s.inflight = s.inflight[:len(s.inflight)-1]
			return true
		}
	}
	return false
}

// DropExpiredQueued removes queued deliveries whose message expired at now
// and returns how many.
func (s *Session) DropExpiredQueued(now time.Time) (dropped int) {
	if s.QueueLen() == 0 {
		return 0
	}
	kept := s.queue[:0]
	for _, d := range s.queue[s.queueOff:] {
		if d.Msg.Expired(now) {
			dropped++
			continue
		}
		kept = append(kept, d)
	}
	for i := len(kept); i < len(s.queue); i++ {
		s.queue[i] = Delivery{}
	}
	s.queue = kept
	s.queueOff = 0
	return dropped
}
