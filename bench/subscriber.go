package bench

import (
	"context"
	"fmt"
	"sync/atomic"

	"github.com/mqttd/mqttd/codec"
)

// subscriber receives and checks deliveries. Everything but the atomics is
// owned by its reader goroutine and read once done is closed.
type subscriber struct {
	ps      *pubsubRun
	idx     int
	c       *wconn
	rd      *packetReader
	pubLo   uint32
	streams []Stream // one per expected publisher, from pubLo
	// seen publishes each stream's progress (Stream.Next) for the QoS 0
	// window; notified is the value last published. nil without a window.
	seen     []atomic.Uint64
	notified []uint64
	hist     Histogram
	ackBuf   []byte
	// awaiting holds a bit per QoS 2 packet id whose PUBREL has not come:
	// a PUBLISH reusing such an id is a retransmission, acknowledged with
	// PUBREC but not delivered again (§4.3.3). nil below QoS 2.
	awaiting []uint64

	uniqueWin, dups, late, unexpected, malformed, protoErrs, deliveredWin uint64
	err                                                                   error
	unflushed, unflushedUnique                                            uint64

	delivered  atomic.Uint64 // every delivery, for progress
	uniqueWinA atomic.Uint64 // uniqueWin as of the last blocking read, for the drain
	pendingRel atomic.Int64  // QoS 2 deliveries waiting for PUBREL
	done       chan struct{}
}

func (ps *pubsubRun) newSubscriber(ctx context.Context, i, readBuf int) (*subscriber, error) {
	spec := ps.topo.subs[i]
	c, err := ps.dial.dial(ctx, i)
	if err != nil {
		return nil, err
	}
	rd := newPacketReader(c, readBuf, ps.clk)
	opts := &ps.opts
	if ps.cfg.Persistent {
		opts = opts.persistent()
	}
	if _, err := handshake(c, rd, opts, clientID(ps.id, "s", i)); err != nil {
		c.Close()
		return nil, err
	}
	if err := subscribe(c, rd, &ps.opts, spec.filter, ps.cfg.QoS); err != nil {
		c.Close()
		return nil, err
	}
	s := &subscriber{ps: ps, idx: i, c: c, rd: rd, pubLo: spec.pubLo,
		streams: make([]Stream, spec.pubHi-spec.pubLo), done: make(chan struct{})}
	if ps.cfg.QoS == codec.QoS2 {
		s.awaiting = make([]uint64, 65536/64)
	}
	if ps.cfg.QoS == codec.QoS0 && ps.cfg.QoS0Window > 0 {
		s.seen = make([]atomic.Uint64, len(s.streams))
		s.notified = make([]uint64, len(s.streams))
	}
	return s, nil
}

// flush writes the batched acknowledgements and publishes the counters;
// the reader calls it before each read that may block.
func (s *subscriber) flush() error {
	s.delivered.Add(s.unflushed)
	s.uniqueWinA.Add(s.unflushedUnique)
	s.unflushed, s.unflushedUnique = 0, 0
	for j := range s.seen {
		if next := s.streams[j].Next(); next != s.notified[j] {
			s.notified[j] = next
			s.seen[j].Store(next)
			select { // wake the publisher if it waits on its window
			case s.ps.pubs[s.pubLo+uint32(j)].wake <- struct{}{}:
			default:
			}
		}
	}
	if len(s.ackBuf) == 0 {
		return nil
	}
	err := s.c.write(s.ackBuf)
	s.ackBuf = s.ackBuf[:0]
	return err
}

func (s *subscriber) read() {
	defer close(s.done)
	defer s.flush() //nolint:errcheck // final counters; the socket is closing
	v := s.ps.cfg.Version
	s.rd.onWait = s.flush
	var pub codec.Publish
	var ack codec.Ack
	for {
		h, body, err := s.rd.next()
		if err != nil {
			if !s.ps.closing.Load() {
				s.err = err
			}
			return
		}
		switch h.Type {
		case codec.PUBLISH:
			if err := pub.Decode(h, body, v); err != nil {
				s.protoErrs++
				s.ps.errs.add(fmt.Errorf("subscriber %d: %w", s.idx, err))
				continue
			}
			s.onPublish(&pub)
		case codec.PUBREL:
			if err := ack.Decode(h, body, v); err != nil {
				s.protoErrs++
				continue
			}
			id := ack.PacketID
			if s.awaiting == nil || s.awaiting[id/64]&(1<<(id%64)) == 0 {
				s.protoErrs++ // PUBREL for an id with no PUBREC; still completes it [MQTT-4.3.3]
			} else {
				s.awaiting[id/64] &^= 1 << (id % 64)
				s.pendingRel.Add(-1)
			}
			s.ackBuf = (&codec.Ack{Kind: codec.PUBCOMP, PacketID: id}).Append(s.ackBuf, v)
		case codec.PINGRESP:
		case codec.DISCONNECT:
			if !s.ps.closing.Load() {
				s.err = disconnectError(h, body, v)
			}
			return
		default:
			s.protoErrs++
		}
	}
}

// onPublish acknowledges a delivery and checks it.
func (s *subscriber) onPublish(p *codec.Publish) {
	v := s.ps.cfg.Version
	switch p.QoS {
	case codec.QoS1:
		s.ackBuf = (&codec.Ack{Kind: codec.PUBACK, PacketID: p.PacketID}).Append(s.ackBuf, v)
	case codec.QoS2:
		s.ackBuf = (&codec.Ack{Kind: codec.PUBREC, PacketID: p.PacketID}).Append(s.ackBuf, v)
		if id := p.PacketID; s.awaiting != nil { // else QoS 2 above the subscription's, counted below
			if s.awaiting[id/64]&(1<<(id%64)) != 0 {
				if !p.Dup {
					s.protoErrs++ // a new message on an id still in use
				}
				return
			}
			s.awaiting[id/64] |= 1 << (id % 64)
			s.pendingRel.Add(1)
		}
	}
	if p.QoS > s.ps.cfg.QoS {
		s.protoErrs++ // above the subscription's QoS [MQTT-3.8.4-6]
	}
	s.unflushed++
	if len(p.Payload) != s.ps.cfg.Size {
		s.malformed++
		return
	}
	h, _ := DecodePayload(p.Payload) // the size is at least MinPayload
	if h.Pub < s.pubLo || h.Pub-s.pubLo >= uint32(len(s.streams)) {
		s.unexpected++
		return
	}
	verdict := s.streams[h.Pub-s.pubLo].Observe(h.Seq)
	now := s.rd.readAt
	ps := s.ps
	if now >= ps.tStart && now < ps.tEnd {
		s.deliveredWin++
	}
	if h.Sent < ps.tStart || h.Sent >= ps.tEnd {
		return // warm-up traffic, or a timestamp that is not ours
	}
	switch verdict {
	case Dup:
		s.dups++
		return
	case Late:
		s.late++
	}
	s.uniqueWin++
	s.unflushedUnique++
	s.hist.Record(now - h.Sent)
}

// disconnectError describes a DISCONNECT the broker sent.
func disconnectError(h codec.Header, body []byte, v codec.Version) error {
	var d codec.Disconnect
	if err := d.Decode(h, body, v); err != nil {
		return fmt.Errorf("broker sent a malformed DISCONNECT: %w", err)
	}
	return fmt.Errorf("broker sent DISCONNECT, reason 0x%02x (%s)", byte(d.Reason), d.Reason)
}
