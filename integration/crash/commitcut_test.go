package crash

import (
	"sync"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/mqttd/mqttd/broker"
	"github.com/mqttd/mqttd/codec"
	"github.com/mqttd/mqttd/session"
	"github.com/mqttd/mqttd/transport"
)

// A group commit takes whatever writes are queued when it starts, from
// every connection. A crash can therefore land between any two writes
// that one PUBLISH makes, unless the store keeps them together. The
// tests here run the broker in-process on a real pebble store behind a
// Backend that commits at one chosen point (as another connection's
// commit would) and then "crashes": it drops every later write and never
// completes another commit. A second broker then opens the same
// directory, as mqttd does after kill -9.

// cutBackend forwards to a Backend until cut, then persists nothing.
// Like a real group commit, the cut cannot fall inside an Atomic group of
// writes: chosen there, it waits for the group's end.
type cutBackend struct {
	session.Backend
	// cutAfter runs after each forwarded write with its name; returning
	// true commits what is queued so far and cuts.
	cutAfter func(op string) bool
	mu       sync.Mutex // guards cut, depth, pending
	cut      bool
	depth    int  // Atomic groups open
	pending  bool // a cut was chosen inside a group
}

func (c *cutBackend) write(op string, fn func()) {
	c.mu.Lock()
	if c.cut {
		c.mu.Unlock()
		return
	}
	fn()
	now := false
	if c.cutAfter != nil && c.cutAfter(op) {
		if c.depth > 0 {
			c.pending = true
		} else {
			now = true
		}
	}
	c.mu.Unlock()
	if now {
		c.commitAndCut()
	}
}

func (c *cutBackend) commitAndCut() {
	done := make(chan error, 1)
	c.Backend.Commit(func(err error) { done <- err })
	<-done
	c.mu.Lock()
	c.cut = true
	c.mu.Unlock()
}

// Atomic keeps the group whole, then makes a cut chosen inside it.
func (c *cutBackend) Atomic(fn func()) {
	c.Backend.Atomic(func() {
		c.mu.Lock()
		c.depth++
		c.mu.Unlock()
		fn()
		c.mu.Lock()
		c.depth--
		c.mu.Unlock()
	})
	c.mu.Lock()
	cutNow := c.pending && c.depth == 0 && !c.cut
	if cutNow {
		c.pending = false
	}
	c.mu.Unlock()
	if cutNow {
		c.commitAndCut()
	}
}

func (c *cutBackend) isCut() bool {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.cut
}

func (c *cutBackend) SaveSession(s *session.Session) {
	c.write("SaveSession", func() { c.Backend.SaveSession(s) })
}
func (c *cutBackend) DeleteSession(id string) {
	c.write("DeleteSession", func() { c.Backend.DeleteSession(id) })
}
func (c *cutBackend) SaveOut(id string, f *session.Inflight) {
	c.write("SaveOut", func() { c.Backend.SaveOut(id, f) })
}
func (c *cutBackend) DeleteOut(id string, f *session.Inflight) {
	c.write("DeleteOut", func() { c.Backend.DeleteOut(id, f) })
}
func (c *cutBackend) SaveReceived(id string, pid uint16) {
	c.write("SaveReceived", func() { c.Backend.SaveReceived(id, pid) })
}
func (c *cutBackend) DeleteReceived(id string, pid uint16) {
	c.write("DeleteReceived", func() { c.Backend.DeleteReceived(id, pid) })
}
func (c *cutBackend) SaveWill(id string, w *session.Will) {
	c.write("SaveWill", func() { c.Backend.SaveWill(id, w) })
}
func (c *cutBackend) DeleteWill(id string) {
	c.write("DeleteWill", func() { c.Backend.DeleteWill(id) })
}
func (c *cutBackend) SaveRetained(m *session.Message) {
	c.write("SaveRetained", func() { c.Backend.SaveRetained(m) })
}
func (c *cutBackend) DeleteRetained(topic string) {
	c.write("DeleteRetained", func() { c.Backend.DeleteRetained(topic) })
}

// Commit never completes after the cut: the process is "dead".
func (c *cutBackend) Commit(done func(error)) {
	if c.isCut() {
		return
	}
	c.Backend.Commit(done)
}

// inProcess is a broker on a pebble store in dir with one TCP listener.
type inProcess struct {
	Addr  string
	b     *broker.Broker
	l     transport.Listener
	store *session.Store
}

func startInProcess(t *testing.T, dir string, wrap func(session.Backend) session.Backend) *inProcess {
	t.Helper()
	p, err := session.OpenPebble(session.PebbleConfig{Dir: dir})
	require.NoError(t, err)
	var backend session.Backend = p
	if wrap != nil {
		backend = wrap(p)
	}
	store := session.NewStore(backend)
	b, err := broker.New(broker.Config{AllowAnonymous: true, Store: store, SessionMaxQueued: 1000})
	require.NoError(t, err)
	l, err := transport.ListenTCP(transport.TCPConfig{Addr: "127.0.0.1:0", Loops: 2}, b)
	require.NoError(t, err)
	ip := &inProcess{Addr: l.Addr().String(), b: b, l: l, store: store}
	t.Cleanup(ip.stop)
	return ip
}

func (ip *inProcess) stop() {
	if ip.l == nil {
		return
	}
	_ = ip.l.Close()
	_ = ip.b.Close()
	_ = ip.store.Close()
	ip.l = nil
}

// TestQoS2ReceivedIsDurableOnlyWithItsDeliveries cuts the store right
// after the broker records an inbound QoS 2 packet id, before it records
// the message for the persistent subscriber that matches it. After the
// restart the publisher, which never got PUBREC, resends the PUBLISH
// (DUP) as it must. The broker must then either deliver it or not know
// the id; answering PUBREC for an id whose message it no longer has
// acknowledges a message nobody will ever receive.
func TestQoS2ReceivedIsDurableOnlyWithItsDeliveries(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	var cb *cutBackend
	armed := make(chan struct{})
	srv := startInProcess(t, dir, func(b session.Backend) session.Backend {
		cb = &cutBackend{Backend: b, cutAfter: func(op string) bool {
			select {
			case <-armed:
				return op == "SaveReceived"
			default:
				return false
			}
		}}
		return cb
	})

	sub, _ := mustDial(t, srv.Addr, connOpts{ClientID: "cut-sub"})
	sub.mustSubscribe(t, codec.QoS2, "cut/x")
	sub.disconnect()
	pub, _ := mustDial(t, srv.Addr, connOpts{ClientID: "cut-pub"})
	close(armed)
	p := &codec.Publish{Topic: []byte("cut/x"), Payload: []byte("acknowledged"), QoS: codec.QoS2, PacketID: 5}
	require.NoError(t, pub.publish(p))
	require.Eventually(t, cb.isCut, waitMsg, 5*time.Millisecond)
	// The "crashed" broker never answers: its commit never completes.
	_, err := pub.readTimeout(300 * time.Millisecond)
	require.True(t, isTimeout(err), "no PUBREC before the crash: %v", err)
	pub.Close()
	srv.stop()

	srv = startInProcess(t, dir, nil)
	pub, present := mustDial(t, srv.Addr, connOpts{ClientID: "cut-pub"})
	require.True(t, present)
	p.Dup = true
	require.NoError(t, pub.publish(p))
	pub.expectAck(t, codec.PUBREC, 5) // acknowledged now, by the restarted broker
	require.NoError(t, pub.ack(codec.PUBREL, 5))
	pub.expectAck(t, codec.PUBCOMP, 5)

	sub, present = mustDial(t, srv.Addr, connOpts{ClientID: "cut-sub"})
	require.True(t, present)
	pk, err := sub.readTimeout(2 * time.Second)
	if isTimeout(err) {
		t.Fatalf("message lost: the publisher got PUBREC for packet id 5 after the restart, but the " +
			"persistent subscriber never receives it. The inbound QoS 2 id (SaveReceived) was " +
			"committed by a group commit that did not include the message's SaveOut for the " +
			"subscriber; after the crash the broker treats the resent PUBLISH as a duplicate")
	}
	require.NoError(t, err)
	require.Equal(t, codec.PUBLISH, pk.h.Type)
	var got codec.Publish
	require.NoError(t, got.Decode(pk.h, pk.body, sub.v))
	assert.Equal(t, "acknowledged", string(got.Payload))
}
