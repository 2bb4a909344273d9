package broker

import (
	"crypto/x509"
	"fmt"
	"net"
	"sync"
	"testing"
	"time"

	"github.com/mqttd/mqttd/codec"
	"github.com/mqttd/mqttd/session"
)

// benchConn is a transport.Conn that keeps writes until complete is
// called, as the event loop would, and counts the bytes.
type benchConn struct {
	mu      sync.Mutex
	pending []func(error)
	spare   []func(error)
	written int
	ctx     any
}

func (bc *benchConn) AsyncWritev(bufs [][]byte, done func(error)) error {
	bc.mu.Lock()
	for _, b := range bufs {
		bc.written += len(b)
	}
	bc.pending = append(bc.pending, done)
	bc.mu.Unlock()
	return nil
}

// complete finishes every write handed over so far, and those the
// completions start.
func (bc *benchConn) complete() {
	for {
		bc.mu.Lock()
		p := bc.pending
		bc.pending, bc.spare = bc.spare[:0], nil
		bc.mu.Unlock()
		if len(p) == 0 {
			return
		}
		for i, done := range p {
			if done != nil {
				done(nil)
			}
			p[i] = nil
		}
		bc.mu.Lock()
		bc.spare = p[:0]
		bc.mu.Unlock()
	}
}

func (bc *benchConn) Outbound() int        { return 0 }
func (bc *benchConn) Close() error         { return nil }
func (bc *benchConn) RemoteAddr() net.Addr { return &net.TCPAddr{IP: net.IPv4(127, 0, 0, 1), Port: 1} }
func (bc *benchConn) LocalAddr() net.Addr {
	return &net.TCPAddr{IP: net.IPv4(127, 0, 0, 1), Port: 1883}
}
func (bc *benchConn) Transport() string                     { return "tcp" }
func (bc *benchConn) PeerCertificates() []*x509.Certificate { return nil }
func (bc *benchConn) Context() any                          { return bc.ctx }
func (bc *benchConn) SetContext(v any)                      { bc.ctx = v }

// open connects a client with clean session and, when filter is not
// empty, subscribes it.
func benchOpen(tb testing.TB, b *Broker, id, filter string, qos codec.QoS) *benchConn {
	tb.Helper()
	bc := &benchConn{}
	b.OnOpen(bc)
	pkt := (&codec.Connect{ProtocolName: []byte("MQTT"), Version: codec.V311, CleanStart: true, KeepAlive: 0,
		ClientID: []byte(id)}).Append(nil)
	if filter != "" {
		pkt = (&codec.Subscribe{PacketID: 1, Subs: []codec.Subscription{{Filter: []byte(filter), QoS: qos}}}).
			Append(pkt, codec.V311)
	}
	if n, err := b.OnData(bc, pkt); err != nil || n != len(pkt) {
		tb.Fatalf("%s: OnData = %d, %v", id, n, err)
	}
	bc.complete()
	c, _ := bc.ctx.(*conn)
	if c == nil || !c.connected {
		tb.Fatalf("%s: not connected", id)
	}
	return bc
}

func newBenchBroker(tb testing.TB) *Broker {
	tb.Helper()
	b, err := New(Config{AllowAnonymous: true, Store: session.NewStore(nil), MaxInflight: 64})
	if err != nil {
		tb.Fatal(err)
	}
	tb.Cleanup(func() { b.Close() })
	return b
}

// BenchmarkFanout routes one QoS 0 PUBLISH from a connection to N
// subscribed connections: decode, trie match, N encodes into the
// subscribers' buffers, N flushes. One op is one inbound message.
func BenchmarkFanout(b *testing.B) {
	for _, n := range []int{1, 10, 100, 1000} {
		b.Run(fmt.Sprintf("subs=%d", n), func(b *testing.B) {
			br := newBenchBroker(b)
			subs := make([]*benchConn, n)
			for i := range subs {
				subs[i] = benchOpen(b, br, fmt.Sprintf("s%d", i), "bench/+/x", codec.QoS0)
			}
			pub := benchOpen(b, br, "p", "", 0)
			pkt := (&codec.Publish{Topic: []byte("bench/1/x"), Payload: make([]byte, 64)}).Append(nil, codec.V311)
			b.ReportAllocs()
			b.SetBytes(int64(len(pkt)))
			b.ResetTimer()
			for range b.N {
				if _, err := br.OnData(pub, pkt); err != nil {
					b.Fatal(err)
				}
				for _, s := range subs {
					s.complete()
				}
			}
			b.StopTimer()
			if want := b.N * len(pkt); subs[0].written < want {
				b.Fatalf("subscriber got %d bytes, want at least %d", subs[0].written, want)
			}
		})
	}
}

// BenchmarkQoS1 sends QoS 1 PUBLISHes from one connection to one QoS 1
// subscriber that acknowledges each delivery: decode, route, queue,
// PUBACK to the publisher, PUBACK from the subscriber. One op is one
// message.
func BenchmarkQoS1(b *testing.B) {
	br := newBenchBroker(b)
	sub := benchOpen(b, br, "s", "bench/#", codec.QoS1)
	pub := benchOpen(b, br, "p", "", 0)
	p := codec.Publish{Topic: []byte("bench/1"), QoS: codec.QoS1, Payload: make([]byte, 64)}
	var pkt, ack []byte
	b.ReportAllocs()
	b.ResetTimer()
	for i := range b.N {
		id := uint16(i%65535 + 1)
		p.PacketID = id
		pkt = p.Append(pkt[:0], codec.V311)
		if _, err := br.OnData(pub, pkt); err != nil {
			b.Fatal(err)
		}
		sub.complete()
		// The subscriber's session numbers its deliveries 1, 2, ...
		ack = (&codec.Ack{Kind: codec.PUBACK, PacketID: id}).Append(ack[:0], codec.V311)
		if _, err := br.OnData(sub, ack); err != nil {
			b.Fatal(err)
		}
		pub.complete()
	}
	b.StopTimer()
	s := sub.ctx.(*conn).sess
	s.Mu.Lock()
	inflight, queued := s.InflightLen(), s.QueueLen()
	s.Mu.Unlock()
	if inflight != 0 || queued != 0 {
		b.Fatalf("subscriber has %d in flight and %d queued after the run: acks did not match", inflight, queued)
	}
	if want := b.N * 4; pub.written < want { // a PUBACK is 4 bytes
		b.Fatalf("publisher got %d bytes of PUBACKs, want %d", pub.written, want)
	}
}

// BenchmarkSweep is the housekeeping's periodic work over N idle
// subscribed connections (keepalive 60 s) and over N sessions whose
// connections are gone; one op is one connection or session visited once
// by the sweep named (sessions-online: the session sweep with N online
// sessions, which it no longer visits; conns-per-second: one second of
// the housekeeping's connection work).
func BenchmarkSweep(b *testing.B) {
	const n = 20000
	br := newBenchBroker(b)
	for i := range n {
		benchOpen(b, br, fmt.Sprintf("c%d", i), fmt.Sprintf("d/%d", i), codec.QoS1)
	}
	now := time.Now()
	b.Run("conns", func(b *testing.B) {
		b.ReportAllocs()
		for i := 0; i < b.N; i += n {
			br.sweepConns(now, false)
		}
	})
	b.Run("conns-per-second", func(b *testing.B) {
		// What the housekeeping spends on a connection per second: one
		// part a tick and the watch list every tick (it was a full sweep
		// a tick: 4 x "conns").
		b.ReportAllocs()
		for i := 0; i < b.N; i += n {
			for p := range sweepParts {
				br.sweepWatched(now)
				br.sweepPart(now, p, false)
			}
		}
	})
	b.Run("sessions-online", func(b *testing.B) {
		b.ReportAllocs()
		for i := 0; i < b.N; i += n {
			br.sweepSessions(now)
		}
	})
	off := newBenchBroker(b)
	for i := range n {
		bc := &benchConn{}
		off.OnOpen(bc)
		p := codec.Connect{ProtocolName: []byte("MQTT"), Version: codec.V5, ClientID: []byte(fmt.Sprintf("o%d", i))}
		p.Props.SessionExpiry = 3600
		p.Props.Set(codec.PropSessionExpiry)
		if _, err := off.OnData(bc, p.Append(nil)); err != nil {
			b.Fatal(err)
		}
		bc.complete()
		off.OnClose(bc, nil)
	}
	b.Run("sessions-offline", func(b *testing.B) {
		b.ReportAllocs()
		for i := 0; i < b.N; i += n {
			off.sweepSessions(now)
		}
	})
}
