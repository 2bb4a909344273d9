package bench

import (
	"net"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/mqttd/mqttd/codec"
	"github.com/stretchr/testify/require"
)

// fakeBroker is a small MQTT broker for the tests: exact and wildcard
// routing, QoS 0/1/2 both ways, and faults injected on the delivery path
// so the tests can check that the tool counts them.
type fakeBroker struct {
	t  *testing.T
	ln net.Listener

	// Faults, set before the run. Every n-th delivery (counted across the
	// broker, from 1) is affected; 0 disables the fault.
	dropEvery, dupEvery, swapEvery int64
	// refuse answers every CONNECT with this 3.1.1 return code / MQTT 5
	// reason when non-zero.
	refuse codec.ReasonCode
	// subackFail answers every SUBSCRIBE with this failure code (0x80 and
	// up) when non-zero, and keeps no subscription.
	subackFail codec.ReasonCode
	// forgetEvery drops the subscription of every n-th SUBSCRIBE after
	// acknowledging it.
	forgetEvery int64
	// stallAfter stops reading a connection for good once the broker has
	// received this many PUBLISH packets in all.
	stallAfter int64

	deliveries, dropped, duplicated, swapped, subscribes, published atomic.Int64
	stalled                                                         chan struct{} // closed by close

	mu struct {
		sync.Mutex
		subs  []*fakeSub
		conns map[net.Conn]bool
	}
	wg sync.WaitGroup
}

type fakeSub struct {
	filter []string
	qos    codec.QoS
	c      *fakeConn
}

// fakeConn is one client connection; out serialises writes.
type fakeConn struct {
	nc      net.Conn
	v       codec.Version
	mu      sync.Mutex // guards writes, nextID and held
	nextID  uint16
	held    []byte // a delivery held back by the swap fault
	heldGen int
}

// newFakeBroker starts a fake broker on 127.0.0.1; setup sets its faults
// before it accepts. Setting them afterwards is a data race for the race
// detector when the client writes with golang.org/x/sys/unix, as connEngine
// does: only the syscall package's own writes and reads count as
// synchronisation between the client and the broker's goroutines.
func newFakeBroker(t *testing.T, setup ...func(*fakeBroker)) *fakeBroker {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	require.NoError(t, err)
	b := &fakeBroker{t: t, ln: ln, stalled: make(chan struct{})}
	b.mu.conns = map[net.Conn]bool{}
	for _, f := range setup {
		f(b)
	}
	b.wg.Go(b.accept)
	t.Cleanup(b.close)
	return b
}

func (b *fakeBroker) addr() string { return b.ln.Addr().String() }

func (b *fakeBroker) close() {
	select {
	case <-b.stalled:
	default:
		close(b.stalled)
	}
	b.ln.Close()
	b.mu.Lock()
	for c := range b.mu.conns {
		c.Close()
	}
	b.mu.Unlock()
	b.wg.Wait()
}

func (b *fakeBroker) accept() {
	for {
		nc, err := b.ln.Accept()
		if err != nil {
			return
		}
		b.mu.Lock()
		b.mu.conns[nc] = true
		b.mu.Unlock()
		b.wg.Go(func() { b.serve(nc) })
	}
}

func (b *fakeBroker) serve(nc net.Conn) {
	c := &fakeConn{nc: nc, v: codec.V311}
	defer func() {
		nc.Close()
		b.mu.Lock()
		delete(b.mu.conns, nc)
		kept := b.mu.subs[:0]
		for _, s := range b.mu.subs {
			if s.c != c {
				kept = append(kept, s)
			}
		}
		b.mu.subs = kept
		b.mu.Unlock()
	}()
	rd := newPacketReader(nc, 4096, newClock())
	var pub codec.Publish
	var ack codec.Ack
	var sub codec.Subscribe
	for {
		h, body, err := rd.next()
		if err != nil {
			return
		}
		switch h.Type {
		case codec.CONNECT:
			var p codec.Connect
			if err := p.Decode(body); err != nil {
				return
			}
			c.v = p.Version
			c.write((&codec.Connack{Reason: b.refuse}).Append(nil, c.v))
			if b.refuse != 0 {
				return
			}
		case codec.SUBSCRIBE:
			if err := sub.Decode(h, body, c.v); err != nil {
				return
			}
			n := b.subscribes.Add(1)
			forget := b.forgetEvery > 0 && n%b.forgetEvery == 0
			ack := codec.Suback{PacketID: sub.PacketID}
			for _, s := range sub.Subs {
				if b.subackFail != 0 {
					ack.Reasons = append(ack.Reasons, b.subackFail)
					continue
				}
				ack.Reasons = append(ack.Reasons, codec.ReasonCode(s.QoS))
				if !forget {
					b.mu.Lock()
					b.mu.subs = append(b.mu.subs, &fakeSub{filter: strings.Split(string(s.Filter), "/"), qos: s.QoS, c: c})
					b.mu.Unlock()
				}
			}
			c.write(ack.Append(nil, c.v))
		case codec.PUBLISH:
			if err := pub.Decode(h, body, c.v); err != nil {
				return
			}
			if n := b.published.Add(1); b.stallAfter > 0 && n >= b.stallAfter {
				<-b.stalled // stop reading this connection until the broker closes
				return
			}
			b.route(&pub)
			switch pub.QoS {
			case codec.QoS1:
				c.write((&codec.Ack{Kind: codec.PUBACK, PacketID: pub.PacketID}).Append(nil, c.v))
			case codec.QoS2:
				c.write((&codec.Ack{Kind: codec.PUBREC, PacketID: pub.PacketID}).Append(nil, c.v))
			}
		case codec.PUBREL:
			if err := ack.Decode(h, body, c.v); err != nil {
				return
			}
			c.write((&codec.Ack{Kind: codec.PUBCOMP, PacketID: ack.PacketID}).Append(nil, c.v))
		case codec.PUBREC: // from a subscriber, for a QoS 2 delivery
			if err := ack.Decode(h, body, c.v); err != nil {
				return
			}
			c.write((&codec.Ack{Kind: codec.PUBREL, PacketID: ack.PacketID}).Append(nil, c.v))
		case codec.PUBACK, codec.PUBCOMP:
		case codec.PINGREQ:
			c.write(codec.AppendPingresp(nil))
		case codec.DISCONNECT:
			return
		}
	}
}

func (c *fakeConn) write(b []byte) {
	c.mu.Lock()
	defer c.mu.Unlock()
	_, _ = c.nc.Write(b)
}

// route delivers p to every matching subscription, applying the faults.
func (b *fakeBroker) route(p *codec.Publish) {
	levels := strings.Split(string(p.Topic), "/")
	b.mu.Lock()
	var targets []*fakeSub
	for _, s := range b.mu.subs {
		if matches(s.filter, levels) {
			targets = append(targets, s)
		}
	}
	b.mu.Unlock()
	for _, s := range targets {
		n := b.deliveries.Add(1)
		if b.dropEvery > 0 && n%b.dropEvery == 0 {
			b.dropped.Add(1)
			continue
		}
		out := codec.Publish{Topic: p.Topic, Payload: p.Payload, QoS: min(p.QoS, s.qos)}
		times := 1
		if b.dupEvery > 0 && n%b.dupEvery == 0 {
			b.duplicated.Add(1)
			times = 2
		}
		swap := b.swapEvery > 0 && n%b.swapEvery == 0
		c := s.c
		c.mu.Lock()
		var buf []byte
		for range times {
			if out.QoS > 0 {
				c.nextID = c.nextID%65535 + 1
				out.PacketID = c.nextID
			}
			buf = out.Append(buf, c.v)
		}
		switch {
		case swap && c.held == nil:
			// Held until the next delivery on this connection, which
			// makes one reordered message; if none comes soon it goes out
			// in order.
			c.held = buf
			c.heldGen++
			gen := c.heldGen
			time.AfterFunc(100*time.Millisecond, func() {
				c.mu.Lock()
				defer c.mu.Unlock()
				if c.held != nil && c.heldGen == gen {
					_, _ = c.nc.Write(c.held)
					c.held = nil
				}
			})
		default:
			_, _ = c.nc.Write(buf)
			if c.held != nil {
				_, _ = c.nc.Write(c.held)
				c.held = nil
				b.swapped.Add(1)
			}
		}
		c.mu.Unlock()
	}
}

// matches reports whether a topic (split in levels) matches a filter with
// + and # wildcards.
func matches(filter, topic []string) bool {
	for i, f := range filter {
		if f == "#" {
			return true
		}
		if i >= len(topic) || (f != "+" && f != topic[i]) {
			return false
		}
	}
	return len(filter) == len(topic)
}
