package bench

import (
	"context"
	"errors"
	"fmt"
	"os"
	"sync/atomic"
	"time"

	"github.com/mqttd/mqttd/codec"
)

// Packet id states of a publisher's in-flight window.
const (
	idFree    = 0
	idPublish = 1 // sent, waiting for PUBACK (QoS 1) or PUBREC (QoS 2)
	idRelease = 2 // PUBREL sent, waiting for PUBCOMP
)

// publisher sends numbered messages on one topic. Its writer goroutine
// (write) owns the sequence and window counters; its reader goroutine
// (read) owns the acknowledgement counters. They share the packet ids
// through free and state.
type publisher struct {
	ps    *pubsubRun
	idx   uint32
	c     *wconn
	rd    *packetReader
	topic []byte

	window int             // in-flight cap: min(Inflight, broker's Receive Maximum)
	free   chan uint16     // packet ids ready for use; QoS 1/2 only
	state  []atomic.Uint32 // by packet id: idFree, idPublish or idRelease

	sent atomic.Uint64 // messages written so far, for progress

	// QoS 0 window (Config.QoS0Window): the subscribers' progress on this
	// publisher's stream, and a wake-up they send when it moves.
	watch []*atomic.Uint64
	wake  chan struct{}

	// Writer-owned; read once write has returned.
	first, last uint64 // first and last sequence number sent in the window
	win         uint64 // messages sent in the window
	hasWin      bool
	floor       uint64 // QoS 0 window: every subscriber is past this sequence number
	stalls      int    // QoS 0 windows written off
	werr        error

	// Reader-owned; read once rdone is closed.
	refused, protoErrs uint64
	ackedWin           uint64 // exchanges completed during the window (PUBACK, PUBCOMP)
	rerr               error
	ackBuf             []byte
	rdone              chan struct{}
}

func (ps *pubsubRun) newPublisher(ctx context.Context, i int) (*publisher, error) {
	c, err := ps.dial.dial(ctx, len(ps.topo.subs)+i)
	if err != nil {
		return nil, err
	}
	rd := newPacketReader(c, pubReadBuf, ps.clk)
	info, err := handshake(c, rd, &ps.opts, clientID(ps.id, "p", i))
	if err != nil {
		c.Close()
		return nil, err
	}
	p := &publisher{ps: ps, idx: uint32(i), c: c, rd: rd, topic: []byte(ps.topo.pubTopics[i]),
		rdone: make(chan struct{}), wake: make(chan struct{}, 1)}
	if ps.cfg.QoS > codec.QoS0 {
		p.window = min(ps.cfg.Inflight, int(info.receiveMax))
		p.free = make(chan uint16, p.window)
		for id := 1; id <= p.window; id++ {
			p.free <- uint16(id)
		}
		p.state = make([]atomic.Uint32, p.window+1)
	}
	return p, nil
}

// cut reports whether the writer abandoned a blocked write, leaving half
// a packet on the connection: the broker then closes it, which is no error.
func (p *publisher) cut() bool { return errors.Is(p.werr, os.ErrDeadlineExceeded) }

// inflight returns the number of unfinished QoS 1/2 exchanges.
func (p *publisher) inflight() int {
	if p.free == nil {
		return 0
	}
	return p.window - len(p.free)
}

// write publishes from the start of the warm-up to the end of the window,
// as fast as the window and the broker allow or paced at the configured
// rate. It writes in batches: it flushes when a batch reaches flushAt,
// before it waits for a packet id or the QoS 0 window, and before a pacing
// pause.
//
// A message counts as sent once the Write holding it returned: when the
// broker stops reading and a Write is cut by the deadline (cutAfter past
// the window), only the messages it wrote whole are counted, and the
// publisher stops.
func (p *publisher) write(ctx context.Context) {
	ps, cfg := p.ps, &p.ps.cfg
	pkt := codec.Publish{Topic: p.topic, QoS: cfg.QoS}
	pkt.Payload = AppendPayload(nil, Header{Pub: p.idx}, cfg.Size)
	msgSize := pkt.Size(cfg.Version) // every message of a publisher has the same size
	buf := make([]byte, 0, flushAt+msgSize)
	var seq uint64    // the next sequence number
	var batch uint64  // sequence number of the first message in buf
	var win0 struct { // first and count of buf's messages inside the window
		first uint64
		n     uint64
	}
	flush := func() bool {
		if len(buf) == 0 {
			return true
		}
		n, err := p.c.Write(buf)
		if err == nil {
			p.c.lastWrite.Store(time.Now().UnixNano())
			n = len(buf)
		}
		whole := uint64(n / msgSize)
		p.sent.Add(whole)
		// Window accounting for the messages written whole.
		if win0.n > 0 {
			if written := batch + whole; written > win0.first {
				if !p.hasWin {
					p.first, p.hasWin = win0.first, true
				}
				p.last = written - 1
				p.win += written - win0.first
			}
		}
		buf, batch, win0.n = buf[:0], seq, 0
		if err != nil {
			p.werr = err
			return false
		}
		return true
	}
	defer flush()

	// interval is the time between two of this publisher's messages at the
	// configured rate, in ns; 0 when unbounded.
	var interval float64
	if cfg.Rate > 0 {
		interval = float64(len(ps.pubs)) / cfg.Rate * 1e9
	}
	window0 := uint64(0)
	if cfg.QoS == codec.QoS0 {
		window0 = uint64(cfg.QoS0Window)
	}
	end := time.NewTimer(time.Duration(ps.tEnd - ps.clk.now()))
	defer end.Stop()
	var pause *time.Timer
	wait := func(d time.Duration, ch <-chan struct{}, ids <-chan uint16) (id uint16, woke, ok bool) {
		if pause == nil {
			pause = time.NewTimer(d)
		} else {
			pause.Reset(d)
		}
		select {
		case <-pause.C:
			return 0, false, true
		case <-ch:
			return 0, true, true
		case id = <-ids: // nil unless waiting for a packet id
			return id, true, true
		case <-end.C:
		case <-ctx.Done():
		}
		return 0, false, false
	}
	defer func() {
		if pause != nil {
			pause.Stop()
		}
	}()
	for {
		now := ps.clk.now()
		if now >= ps.tEnd || seq > MaxSeq {
			return
		}
		if interval > 0 {
			// Publishers are staggered by a fraction of the interval so
			// their messages do not reach the broker in bursts of P.
			slot := float64(seq) + float64(p.idx)/float64(len(ps.pubs))
			if due := ps.pubStart + int64(slot*interval); now < due {
				if !flush() {
					return
				}
				if _, _, ok := wait(time.Duration(due-now), nil, nil); !ok {
					return
				}
				continue
			}
		}
		if window0 > 0 && seq-p.floor >= window0 {
			if p.floor = max(p.floor, p.slowest()); seq-p.floor >= window0 {
				if !flush() {
					return
				}
				_, woke, ok := wait(window0Stall, p.wake, nil)
				if !ok {
					return
				}
				if !woke { // nothing moved: the broker dropped what is outstanding
					p.floor = seq
					p.stalls++
				}
				continue
			}
		}
		if p.free != nil {
			var id uint16
			select {
			case id = <-p.free:
			default:
				if !flush() {
					return
				}
				var ok bool
				if id, _, ok = wait(time.Until(time.Unix(0, ps.tEnd)), nil, p.free); !ok || id == 0 {
					return
				}
				if now = ps.clk.now(); now >= ps.tEnd {
					p.free <- id // never blocks: the channel holds every id
					return
				}
			}
			p.state[id].Store(idPublish)
			pkt.PacketID = id
		}
		PutPayload(pkt.Payload, Header{Pub: p.idx, Seq: seq, Sent: now})
		buf = pkt.Append(buf, cfg.Version)
		if now >= ps.tStart && win0.n == 0 {
			win0.first, win0.n = seq, 1
		} else if win0.n > 0 {
			win0.n++
		}
		seq++
		if len(buf) >= flushAt && !flush() {
			return
		}
	}
}

// window0Stall is how long a QoS 0 publisher with a full window waits for
// any of its subscribers to move before it writes the outstanding messages
// off as dropped and opens a new window. A variable for the tests.
var window0Stall = time.Second

// slowest returns the lowest progress among the subscribers that receive
// this publisher: one past the highest sequence number each has seen.
func (p *publisher) slowest() uint64 {
	low := uint64(MaxSeq + 1)
	for _, w := range p.watch {
		low = min(low, w.Load())
	}
	if len(p.watch) == 0 {
		return 0
	}
	return low
}

// read handles the acknowledgements of the publisher's messages and
// answers PUBREC with PUBREL.
func (p *publisher) read() {
	defer close(p.rdone)
	v := p.ps.cfg.Version
	p.rd.onWait = func() error {
		if len(p.ackBuf) == 0 {
			return nil
		}
		err := p.c.write(p.ackBuf)
		p.ackBuf = p.ackBuf[:0]
		return err
	}
	var ack codec.Ack
	for {
		h, body, err := p.rd.next()
		if err != nil {
			if !p.ps.closing.Load() {
				p.rerr = err
			}
			return
		}
		switch h.Type {
		case codec.PUBACK, codec.PUBREC, codec.PUBCOMP:
			if err := ack.Decode(h, body, v); err != nil {
				p.protoErrs++
				p.ps.errs.add(fmt.Errorf("publisher %d: %w", p.idx, err))
				continue
			}
			p.onAck(&ack)
		case codec.PINGRESP:
		case codec.DISCONNECT:
			if !p.ps.closing.Load() {
				p.rerr = disconnectError(h, body, v)
			}
			return
		default:
			p.protoErrs++
		}
	}
}

// onAck advances the exchange of one packet id [MQTT-4.3.2], [MQTT-4.3.3].
func (p *publisher) onAck(a *codec.Ack) {
	id := int(a.PacketID)
	if p.state == nil || id < 1 || id > p.window {
		p.protoErrs++ // an ack for a packet id we never used
		return
	}
	st := &p.state[id]
	switch {
	case a.Kind == codec.PUBACK && p.ps.cfg.QoS == codec.QoS1 && st.CompareAndSwap(idPublish, idFree):
		if a.Reason >= 0x80 {
			p.refused++
		} else {
			p.countAck()
		}
		p.free <- a.PacketID
	case a.Kind == codec.PUBREC && p.ps.cfg.QoS == codec.QoS2 && st.Load() == idPublish:
		if a.Reason >= 0x80 { // the exchange ends here, no PUBREL (MQTT 5 §4.3.3)
			p.refused++
			st.Store(idFree)
			p.free <- a.PacketID
			return
		}
		st.Store(idRelease)
		p.ackBuf = (&codec.Ack{Kind: codec.PUBREL, PacketID: a.PacketID}).Append(p.ackBuf, p.ps.cfg.Version)
	case a.Kind == codec.PUBREC && st.Load() == idRelease:
		// A repeated PUBREC: answer it again without counting an error;
		// the PUBCOMP ends the exchange once (§4.3.3).
		p.ackBuf = (&codec.Ack{Kind: codec.PUBREL, PacketID: a.PacketID}).Append(p.ackBuf, p.ps.cfg.Version)
	case a.Kind == codec.PUBCOMP && st.CompareAndSwap(idRelease, idFree):
		p.countAck()
		p.free <- a.PacketID
	default:
		p.protoErrs++ // wrong kind for the QoS, or for the id's state
	}
}

// countAck counts an acknowledged message when it was acknowledged
// during the measurement window.
func (p *publisher) countAck() {
	if now := p.rd.readAt; now >= p.ps.tStart && now < p.ps.tEnd {
		p.ackedWin++
	}
}
