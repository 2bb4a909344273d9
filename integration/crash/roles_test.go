package crash

import (
	"context"
	"fmt"
	"math/rand/v2"
	"strconv"
	"sync"
	"sync/atomic"
	"time"

	"github.com/mqttd/mqttd/codec"
)

// The kill loop's clients. Each runs in its own goroutine, reconnects
// whenever the broker goes away, and keeps its MQTT session state (what
// it has in flight, which QoS 2 ids it holds) in memory across
// connections, as a real client must.

// stream is one numbered message stream: a topic published at one QoS.
type stream int

const (
	streamQoS1 stream = iota
	streamQoS2
	nStreams
)

var streamTopic = [nStreams]string{"crash/q1", "crash/q2"}

func (s stream) String() string { return streamTopic[s] }

// redialEvery is the pause between connection attempts while the broker
// is down.
const redialEvery = 30 * time.Millisecond

// sleepCtx sleeps for d or until ctx ends.
func sleepCtx(ctx context.Context, d time.Duration) {
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-ctx.Done():
	case <-t.C:
	}
}

// readLoop forwards c's packets to the returned channel, which is closed
// when the connection fails. It stops when quit is closed.
func readLoop(c *conn, quit <-chan struct{}) <-chan packet {
	ch := make(chan packet, 256)
	go func() {
		defer close(ch)
		for {
			pk, err := c.read()
			if err != nil {
				return
			}
			select {
			case ch <- pk:
			case <-quit:
				return
			}
		}
	}()
	return ch
}

// publisher publishes one stream: payload is the sequence number, 1, 2,
// 3, ..., at most window in flight. It records which sequence numbers
// the broker acknowledged (PUBACK, or PUBREC for QoS 2).
type publisher struct {
	clientID string
	stream   stream
	qos      codec.QoS
	window   int
	every    time.Duration // pause between new publishes

	stopping atomic.Bool   // publish nothing new; finish what is in flight
	done     chan struct{} // closed when run returns

	mu struct {
		sync.Mutex
		next        int        // next sequence number to publish
		pending     []*pubItem // in flight, oldest first
		acked       map[int]bool
		ackedAt     map[int]time.Time
		connects    int
		sessionLost int // reconnects answered with session present = 0
		resent      int // PUBLISH resent with DUP
		resentRel   int // PUBREL resent after a reconnect
		stray       []string
	}
}

type pubItem struct {
	seq      int
	id       uint16
	released bool // QoS 2: PUBREC received, PUBREL sent
}

func newPublisher(clientID string, s stream, qos codec.QoS) *publisher {
	p := &publisher{clientID: clientID, stream: s, qos: qos, window: 8, every: 2 * time.Millisecond,
		done: make(chan struct{})}
	p.mu.next = 1
	p.mu.acked = make(map[int]bool)
	p.mu.ackedAt = make(map[int]time.Time)
	return p
}

// run publishes until stopping is set and nothing is in flight, or ctx
// ends.
func (p *publisher) run(ctx context.Context, addr string) {
	defer close(p.done)
	first := true
	for ctx.Err() == nil {
		c, ack, err := dial(addr, connOpts{ClientID: p.clientID})
		if err != nil {
			sleepCtx(ctx, redialEvery)
			continue
		}
		p.mu.Lock()
		p.mu.connects++
		if !first && !ack.SessionPresent {
			p.mu.sessionLost++
		}
		p.mu.Unlock()
		first = false
		finished := p.session(ctx, c)
		c.Close()
		if finished {
			return
		}
	}
}

// idInUse reports whether a packet id is in flight. Caller holds p.mu.
func (p *publisher) idInUse(id uint16) bool {
	for _, it := range p.mu.pending {
		if it.id == id {
			return true
		}
	}
	return false
}

// session drives one connection; it reports true when the publisher is
// done, false when the connection failed.
func (p *publisher) session(ctx context.Context, c *conn) bool {
	quit := make(chan struct{})
	defer close(quit)
	pkts := readLoop(c, quit)

	// Resend what is in flight, in the original order [MQTT-4.4.0-1]: a
	// PUBLISH (DUP) while not acknowledged, only a PUBREL once PUBREC
	// came [MQTT-4.3.3].
	p.mu.Lock()
	resend := append([]pubItem(nil), derefAll(p.mu.pending)...)
	p.mu.Unlock()
	for _, it := range resend {
		var err error
		if it.released {
			err = c.ack(codec.PUBREL, it.id)
			p.mu.Lock()
			p.mu.resentRel++
			p.mu.Unlock()
		} else {
			err = c.publish(p.packet(it, true))
			p.mu.Lock()
			p.mu.resent++
			p.mu.Unlock()
		}
		if err != nil {
			return false
		}
	}

	tick := time.NewTicker(p.every)
	defer tick.Stop()
	var lastID uint16
	for {
		p.mu.Lock()
		idle := len(p.mu.pending) == 0
		p.mu.Unlock()
		if idle && p.stopping.Load() {
			c.disconnectReading(pkts)
			return true
		}
		select {
		case <-ctx.Done():
			return true
		case pk, ok := <-pkts:
			if !ok {
				return false
			}
			if err := p.handle(c, pk); err != nil {
				return false
			}
		case <-tick.C:
			if p.stopping.Load() {
				continue
			}
			p.mu.Lock()
			if len(p.mu.pending) >= p.window {
				p.mu.Unlock()
				continue
			}
			for {
				lastID++
				if lastID != 0 && !p.idInUse(lastID) {
					break
				}
			}
			it := &pubItem{seq: p.mu.next, id: lastID}
			p.mu.next++
			p.mu.pending = append(p.mu.pending, it)
			p.mu.Unlock()
			if err := c.publish(p.packet(*it, false)); err != nil {
				return false
			}
		}
	}
}

func derefAll(items []*pubItem) []pubItem {
	out := make([]pubItem, len(items))
	for i, it := range items {
		out[i] = *it
	}
	return out
}

func (p *publisher) packet(it pubItem, dup bool) *codec.Publish {
	return &codec.Publish{Topic: []byte(streamTopic[p.stream]), Payload: []byte(strconv.Itoa(it.seq)),
		QoS: p.qos, PacketID: it.id, Dup: dup}
}

// handle processes one acknowledgement from the broker.
func (p *publisher) handle(c *conn, pk packet) error {
	var a codec.Ack
	switch pk.h.Type {
	case codec.PUBACK, codec.PUBREC, codec.PUBCOMP:
		if err := a.Decode(pk.h, pk.body, c.v); err != nil {
			return err
		}
	default:
		p.mu.Lock()
		p.mu.stray = append(p.mu.stray, "unexpected "+pk.h.Type.String())
		p.mu.Unlock()
		return nil
	}
	p.mu.Lock()
	defer p.mu.Unlock()
	idx := -1
	for i, it := range p.mu.pending {
		if it.id == a.PacketID {
			idx = i
			break
		}
	}
	if idx < 0 {
		p.mu.stray = append(p.mu.stray, fmt.Sprintf("%v for packet id %d not in flight", a.Kind, a.PacketID))
		return nil
	}
	it := p.mu.pending[idx]
	remove := func() { p.mu.pending = append(p.mu.pending[:idx], p.mu.pending[idx+1:]...) }
	switch {
	case a.Kind == codec.PUBACK && p.qos == codec.QoS1:
		p.markAcked(it.seq)
		remove()
	case a.Kind == codec.PUBREC && p.qos == codec.QoS2:
		if !it.released {
			p.markAcked(it.seq)
			it.released = true
		}
		// Unlocked send would be nicer, but the send is a short
		// loopback write and keeps PUBREL ordered with other sends.
		return c.ack(codec.PUBREL, it.id)
	case a.Kind == codec.PUBCOMP && p.qos == codec.QoS2 && it.released:
		remove()
	default:
		p.mu.stray = append(p.mu.stray, fmt.Sprintf("%v for packet id %d (seq %d, released %v)", a.Kind, a.PacketID, it.seq, it.released))
	}
	return nil
}

// markAcked records that the broker acknowledged seq. Caller holds p.mu.
func (p *publisher) markAcked(seq int) {
	p.mu.acked[seq] = true
	p.mu.ackedAt[seq] = time.Now()
}

// snapshot returns what the publisher knows, for checks and reports.
func (p *publisher) snapshot() (published int, acked map[int]bool, inFlight int) {
	p.mu.Lock()
	defer p.mu.Unlock()
	acked = make(map[int]bool, len(p.mu.acked))
	for k := range p.mu.acked {
		acked[k] = true
	}
	return p.mu.next - 1, acked, len(p.mu.pending)
}

func (p *publisher) ackedCount() int {
	p.mu.Lock()
	defer p.mu.Unlock()
	return len(p.mu.acked)
}

// subscriber holds a persistent session (clean session = 0) subscribed at
// QoS 2 to both streams. It delivers to the "application" (counts) each
// QoS 1 PUBLISH and each QoS 2 PUBLISH the first time its packet id
// arrives, and ignores re-deliveries of a QoS 2 id it holds until PUBREL
// (method B of MQTT 3.1.1 figure 4.3 / MQTT 5 §4.3.3). A slow subscriber
// sends each acknowledgement after a random delay, keeping their order
// [MQTT-4.6.0-2..4], and now and then drops its connection and stays
// away for a moment, so that messages queue for it while it is offline.
type subscriber struct {
	clientID string
	slow     bool
	rng      *rand.Rand // used by the connection goroutines only
	ready    chan struct{}
	done     chan struct{}

	mu struct {
		sync.Mutex
		got          [nStreams]map[int]int // deliveries per sequence number
		held         map[uint16]int        // QoS 2 packet id → seq, received and not yet released
		lastDelivery time.Time
		connects     int
		sessionLost  int
		away         int // times it dropped the connection on purpose
		dupFlag      int // PUBLISH packets that came with DUP set
		ignored      int // QoS 2 re-deliveries of a held id, not delivered again
		subErr       error
		protocol     []string // anything a correct broker would not send
	}
}

func newSubscriber(clientID string, slow bool, seed uint64) *subscriber {
	s := &subscriber{clientID: clientID, slow: slow, rng: rand.New(rand.NewPCG(seed, 7)),
		ready: make(chan struct{}), done: make(chan struct{})}
	for i := range s.mu.got {
		s.mu.got[i] = make(map[int]int)
	}
	s.mu.held = make(map[uint16]int)
	return s
}

// run connects, subscribes once (SUBACK before ready is closed), and
// receives until ctx ends.
func (s *subscriber) run(ctx context.Context, addr string) {
	defer close(s.done)
	subscribed := false
	for ctx.Err() == nil {
		c, ack, err := dial(addr, connOpts{ClientID: s.clientID})
		if err != nil {
			sleepCtx(ctx, redialEvery)
			continue
		}
		s.mu.Lock()
		s.mu.connects++
		if subscribed && !ack.SessionPresent {
			s.mu.sessionLost++
		}
		s.mu.Unlock()
		if !subscribed {
			if err := s.subscribe(c); err != nil {
				s.mu.Lock()
				s.mu.subErr = err
				s.mu.Unlock()
				c.Close()
				return
			}
			subscribed = true
			close(s.ready)
		}
		away := s.session(ctx, c)
		c.Close()
		if away {
			s.mu.Lock()
			s.mu.away++
			s.mu.Unlock()
			sleepCtx(ctx, time.Duration(300+s.rng.IntN(700))*time.Millisecond)
		}
	}
}

func (s *subscriber) subscribe(c *conn) error {
	if err := c.subscribe(1, codec.QoS2, streamTopic[:]...); err != nil {
		return err
	}
	pk, err := c.readTimeout(waitMsg)
	if err != nil {
		return fmt.Errorf("waiting for SUBACK: %w", err)
	}
	var sa codec.Suback
	if pk.h.Type != codec.SUBACK {
		return fmt.Errorf("got %v, want SUBACK", pk.h.Type)
	}
	if err := sa.Decode(pk.h, pk.body, c.v); err != nil {
		return err
	}
	for _, r := range sa.Reasons {
		if r != codec.GrantedQoS2 {
			return fmt.Errorf("SUBACK granted %v, want QoS 2", r)
		}
	}
	return nil
}

// ackItem is an acknowledgement to send at due.
type ackItem struct {
	kind codec.Type
	id   uint16
	due  time.Time
}

// session receives on one connection until it fails or ctx ends. A slow
// subscriber also leaves after a random 2-5s; away reports that.
func (s *subscriber) session(ctx context.Context, c *conn) (away bool) {
	var wg sync.WaitGroup
	defer wg.Wait() // after quit is closed: the acker stops on it
	quit := make(chan struct{})
	defer close(quit)
	pkts := readLoop(c, quit)

	send := func(kind codec.Type, id uint16) error { return c.ack(kind, id) }
	if s.slow {
		// The acks go through a queue in order, each no earlier than its
		// random due time.
		q := make(chan ackItem, 1<<16)
		failed := make(chan struct{})
		var lastDue time.Time
		send = func(kind codec.Type, id uint16) error {
			due := time.Now().Add(time.Duration(1+s.rng.IntN(10)) * time.Millisecond)
			if s.rng.IntN(500) == 0 {
				due = due.Add(150 * time.Millisecond) // now and then a longer stall
			}
			if due.Before(lastDue) {
				due = lastDue
			}
			lastDue = due
			select {
			case q <- ackItem{kind, id, due}:
				return nil
			case <-failed:
				return fmt.Errorf("connection failed")
			}
		}
		wg.Add(1)
		go func() {
			defer wg.Done()
			for {
				select {
				case <-quit:
					return
				case it := <-q:
					if d := time.Until(it.due); d > 0 {
						select {
						case <-quit:
							return
						case <-time.After(d):
						}
					}
					if err := c.ack(it.kind, it.id); err != nil {
						close(failed)
						c.Close()
						return
					}
				}
			}
		}()
	}

	var leave <-chan time.Time
	if s.slow {
		tm := time.NewTimer(time.Duration(2000+s.rng.IntN(3000)) * time.Millisecond)
		defer tm.Stop()
		leave = tm.C
	}
	for {
		select {
		case <-ctx.Done():
			return false
		case <-leave:
			return true // without DISCONNECT, acknowledgements still queued
		case pk, ok := <-pkts:
			if !ok {
				return false
			}
			if err := s.handle(c, pk, send); err != nil {
				return false
			}
		}
	}
}

// handle processes one packet from the broker.
func (s *subscriber) handle(c *conn, pk packet, send func(codec.Type, uint16) error) error {
	switch pk.h.Type {
	case codec.PUBLISH:
		var p codec.Publish
		if err := p.Decode(pk.h, pk.body, c.v); err != nil {
			s.protocolError("PUBLISH: %v", err)
			return err
		}
		st := stream(-1)
		for i, tp := range streamTopic {
			if string(p.Topic) == tp {
				st = stream(i)
			}
		}
		seq, err := strconv.Atoi(string(p.Payload))
		if st < 0 || err != nil {
			s.protocolError("PUBLISH on %q with payload %q", p.Topic, p.Payload)
			return nil
		}
		wantQoS := codec.QoS1
		if st == streamQoS2 {
			wantQoS = codec.QoS2
		}
		if p.QoS != wantQoS {
			s.protocolError("%v seq %d arrived at QoS %d", st, seq, p.QoS)
		}
		s.mu.Lock()
		if p.Dup {
			s.mu.dupFlag++
		}
		switch p.QoS {
		case codec.QoS1:
			s.deliverLocked(st, seq)
			s.mu.Unlock()
			return send(codec.PUBACK, p.PacketID)
		case codec.QoS2:
			if held, ok := s.mu.held[p.PacketID]; ok {
				// A re-delivery of an id we hold: acknowledge, do not
				// deliver again.
				s.mu.ignored++
				if held != seq || st != streamQoS2 {
					s.mu.protocol = append(s.mu.protocol, fmt.Sprintf(
						"packet id %d re-delivered as %v seq %d while it holds seq %d", p.PacketID, st, seq, held))
				}
			} else {
				s.mu.held[p.PacketID] = seq
				s.deliverLocked(st, seq)
			}
			s.mu.Unlock()
			return send(codec.PUBREC, p.PacketID)
		default:
			s.mu.Unlock()
			s.protocolError("QoS 0 PUBLISH on %v", st)
			return nil
		}
	case codec.PUBREL:
		var a codec.Ack
		if err := a.Decode(pk.h, pk.body, c.v); err != nil {
			s.protocolError("PUBREL: %v", err)
			return err
		}
		s.mu.Lock()
		delete(s.mu.held, a.PacketID) // may be gone already: PUBCOMP was lost
		s.mu.Unlock()
		return send(codec.PUBCOMP, a.PacketID)
	default:
		s.protocolError("unexpected %v", pk.h.Type)
		return nil
	}
}

func (s *subscriber) protocolError(format string, args ...any) {
	s.mu.Lock()
	s.mu.protocol = append(s.mu.protocol, fmt.Sprintf(format, args...))
	s.mu.Unlock()
}

// deliverLocked hands a message to the application. Caller holds s.mu.
func (s *subscriber) deliverLocked(st stream, seq int) {
	s.mu.got[st][seq]++
	s.mu.lastDelivery = time.Now()
}

// deliveries returns a copy of the delivery counts of st.
func (s *subscriber) deliveries(st stream) map[int]int {
	s.mu.Lock()
	defer s.mu.Unlock()
	out := make(map[int]int, len(s.mu.got[st]))
	for k, v := range s.mu.got[st] {
		out[k] = v
	}
	return out
}

// quietFor reports whether nothing was delivered for d.
func (s *subscriber) quietFor(d time.Duration) bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	return time.Since(s.mu.lastDelivery) >= d
}
