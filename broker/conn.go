package broker

import (
	"errors"
	"net"
	"sync"
	"sync/atomic"
	"time"

	"github.com/mqttd/mqttd/codec"
	"github.com/mqttd/mqttd/session"
	"github.com/mqttd/mqttd/transport"
)

var connSeq atomic.Uint64

// spareMax is the largest write buffer kept for reuse after a flush;
// bigger ones (after a burst) go back to the garbage collector.
const spareMax = 64 << 10

// lingerFor is how long a connection stays open, input ignored, after the
// broker's final packet was written, unless the client closes first.
const lingerFor = time.Second

// conn is one network connection's protocol state.
//
// Ownership: fields under "loop-owned" are touched only by the
// transport's calls for this connection (OnData, OnClose), which are
// serialized. Fields under "session-guarded" are written before the
// session is attached and then read or changed only under sess.Mu. The
// write path is guarded by outMu. Lock order: sess.Mu, then outMu.
type conn struct {
	b        *Broker
	tc       transport.Conn
	id       uint64
	openedAt int64 // unix ns

	// Read by the housekeeping goroutine.
	lastRecv     atomic.Int64 // unix ns of the last whole packet
	keepAlive    atomic.Int64 // effective keepalive in ns; 0: none
	closingSince atomic.Int64 // unix ns when closeWith started; 0: not closing
	finalSent    atomic.Int64 // unix ns when the final packet was written; 0: not yet

	// cold holds what most connections never use, allocated on first
	// use: idle connections are most of a broker's memory.
	cold atomic.Pointer[connCold]

	// inMu serializes inbound handling: the transport's calls and the
	// completion of a password check on an auth worker. The fields under
	// "Loop-owned" are guarded by it (uncontended but for that case), as
	// are deferred and gone below.
	inMu sync.Mutex

	// Loop-owned.
	msgRate  *bucket       // nil: no cap
	auth     *authExchange // enhanced authentication in progress
	clientID string
	user     string
	group    string
	will     *session.Will
	// For clientInfo: when CONNACK went (unix ns).
	connectedAt int64

	// Session-guarded (fixed once connected, cold.aliasOut changes under
	// sess.Mu).
	sess   *session.Session
	window int // outbound in-flight maximum

	// Write path.
	outMu struct {
		sync.Mutex
		out      []byte // packets not yet handed to the transport
		spare    []byte // an empty buffer to swap in
		writing  int    // bytes handed to the transport, not yet done
		flushing bool
		closing  bool // a final packet is queued; close after it is written
		dead     bool // transport closed: drop everything
		// acks holds acknowledgements in the order their packets arrived
		// while some wait for a durable step (store commit): each goes
		// out once it and all before it are ready [MQTT-4.6.0-2..4].
		acks []*pendingAck
	}

	wbuf   [1][]byte // the vector being written
	doneFn func(error)

	// The small fields, together so that they pack.
	isConnected   atomic.Bool
	noLinger      atomic.Bool // close right after the final packet (the client is silent anyway)
	congestedFlag atomic.Bool // deliveries held back by a full outbound buffer
	stopRead      atomic.Bool // ignore further inbound bytes
	// Set by another connection's CONNECT that took this one's session.
	takenOver      atomic.Bool
	takenOverClean atomic.Bool
	hasRel         atomic.Bool // cold.rel has waiters to run

	willExpiry uint32 // loop-owned: will's Message Expiry Interval, seconds; 0: none
	maxOut     uint32 // session-guarded: client's Maximum Packet Size; 0: protocol maximum
	slot       int32  // index in the broker's connection shard; -1: not registered (under the shard's lock)

	aliasInMax uint16 // loop-owned
	aliasMax   uint16 // session-guarded: outbound aliases the broker may assign

	admitted   bool          // counted by Broker.admit (set in OnOpen)
	deferred   bool          // under inMu: a CONNECT waits for its password check (see cold.held)
	gone       bool          // under inMu: OnClose ran
	connected  bool          // loop-owned
	version    codec.Version // loop-owned
	hasWillExp bool          // loop-owned
	normalExit bool          // loop-owned: DISCONNECT without will
	problem    bool          // loop-owned: MQTT 5 Request Problem Information (default true)
	cleanStart bool          // loop-owned
}

// connCold is the part of a connection's state that most connections
// never need.
type connCold struct {
	ip         string            // for MaxConnectionsPerIP
	held       []byte            // bytes received while deferred, not yet handled (under inMu)
	authMethod string            // the CONNECT's Authentication Method ("" without); loop-owned
	exitReason string            // under outMu
	aliasIn    map[uint16]string // loop-owned
	aliasOut   map[string]uint16 // under sess.Mu

	// Publishers' acknowledgements released by this connection's session
	// queue draining, run by the next flush with no lock held.
	relMu sync.Mutex // guards rel
	rel   []func(error)
}

// x returns the cold state, allocating it on first use. Safe from any
// goroutine; the fields keep their own guards.
func (c *conn) x() *connCold {
	if x := c.cold.Load(); x != nil {
		return x
	}
	x := new(connCold)
	if c.cold.CompareAndSwap(nil, x) {
		return x
	}
	return c.cold.Load()
}

// heldLen is the length of cold.held; caller holds inMu.
func (c *conn) heldLen() int {
	if x := c.cold.Load(); x != nil {
		return len(x.held)
	}
	return 0
}

// authMethod is the CONNECT's Authentication Method, "" without.
func (c *conn) authMethod() string {
	if x := c.cold.Load(); x != nil {
		return x.authMethod
	}
	return ""
}

// ip is the client's address for MaxConnectionsPerIP, "" when not kept.
func (c *conn) ip() string {
	if x := c.cold.Load(); x != nil {
		return x.ip
	}
	return ""
}

func newConn(b *Broker, tc transport.Conn) *conn {
	c := &conn{
		b:        b,
		tc:       tc,
		id:       connSeq.Add(1),
		openedAt: time.Now().UnixNano(),
		problem:  true,
		slot:     -1,
	}
	c.lastRecv.Store(c.openedAt)
	c.doneFn = c.written
	return c
}

func (c *conn) remote() string {
	if a := c.tc.RemoteAddr(); a != nil {
		return a.String()
	}
	return ""
}

func (c *conn) remoteIP() string {
	if a, ok := c.tc.RemoteAddr().(*net.TCPAddr); ok {
		return a.IP.String()
	}
	if a := c.tc.RemoteAddr(); a != nil {
		if h, _, err := net.SplitHostPort(a.String()); err == nil {
			return h
		}
	}
	return ""
}

func (c *conn) v5() bool { return c.version == codec.V5 }

// roomLocked reports whether the outbound buffer may take more: bytes not
// yet handed to the transport plus what the transport still holds (which
// includes the write under way). Caller holds outMu.
func (c *conn) roomLocked() bool {
	return len(c.outMu.out)+c.tc.Outbound() < c.b.cfg.OutboundLimit
}

// write appends a packet built by enc to the outbound buffer. force
// ignores the outbound limit (control packets). It reports false when the
// packet was not queued (connection dead/closing, or no room).
func (c *conn) write(force bool, enc func([]byte) []byte) bool {
	c.outMu.Lock()
	defer c.outMu.Unlock()
	if c.outMu.dead || c.outMu.closing {
		return false
	}
	if !force && !c.roomLocked() {
		return false
	}
	n := len(c.outMu.out)
	c.outMu.out = enc(c.outMu.out)
	c.b.st.bytesOut.Add(uint64(len(c.outMu.out) - n))
	return true
}

// scratch holds decoded packets while they are handled. Pooled rather
// than kept per connection: most connections are idle, and the decoded
// structs (with their property slices) are large. Nothing in them may be
// kept past the handler: their slices alias the read buffer.
type scratch struct {
	pub     codec.Publish
	sub     codec.Subscribe
	unsub   codec.Unsubscribe
	ack     codec.Ack
	reasons []codec.ReasonCode

	// The routing of one inbound QoS 1/2 PUBLISH, and publishWrites bound
	// to its arguments for Store.Atomic: no allocation per message.
	rt      routing
	pc      *conn
	pm      *session.Message
	writeFn func()
}

var scratchPool = sync.Pool{New: func() any {
	sc := new(scratch)
	sc.writeFn = sc.publishWrites
	return sc
}}

func (sc *scratch) publishWrites() { sc.pc.publishWrites(&sc.pub, sc.pm, sc.routing()) }

// routing is the routing of the PUBLISH in sc.pub: sc.rt for QoS 1/2, nil
// for QoS 0.
func (sc *scratch) routing() *routing {
	if sc.pub.QoS == codec.QoS0 {
		return nil
	}
	return &sc.rt
}

func getScratch() *scratch { return scratchPool.Get().(*scratch) }

func putScratch(sc *scratch) {
	clear(sc.pub.Props.User)
	clear(sc.sub.Subs)
	clear(sc.unsub.Filters)
	clear(sc.rt.items)
	sc.rt = routing{items: sc.rt.items[:0]}
	sc.pc, sc.pm = nil, nil
	scratchPool.Put(sc)
}

// pendingAck is an acknowledgement that waits for a durable step: a
// PUBACK..PUBCOMP in ack, or any packet built by enc.
type pendingAck struct {
	ack   codec.Ack
	enc   func([]byte) []byte // nil: encode ack
	ready bool
	after func() // runs once the ack is queued for writing (e.g. retained messages after SUBACK)
}

func (pa *pendingAck) append(b []byte, v codec.Version) []byte {
	if pa.enc != nil {
		return pa.enc(b)
	}
	return pa.ack.Append(b, v)
}

// writeAck queues a PUBACK, PUBREC, PUBREL or PUBCOMP that needs no
// durable step, behind any acknowledgement still waiting for one, without
// building a closure on the fast path.
func (c *conn) writeAck(kind codec.Type, id uint16, r codec.ReasonCode) {
	a := codec.Ack{Kind: kind, PacketID: id, Reason: r}
	c.outMu.Lock()
	if len(c.outMu.acks) == 0 {
		if !c.outMu.dead && !c.outMu.closing {
			n := len(c.outMu.out)
			c.outMu.out = a.Append(c.outMu.out, c.version)
			c.b.st.bytesOut.Add(uint64(len(c.outMu.out) - n))
		}
		c.outMu.Unlock()
		return
	}
	c.outMu.acks = append(c.outMu.acks, &pendingAck{ack: a, ready: true})
	c.outMu.Unlock()
}

// queueWaiting queues pa, an acknowledgement that waits for ackReady.
func (c *conn) queueWaiting(pa *pendingAck) {
	c.outMu.Lock()
	c.outMu.acks = append(c.outMu.acks, pa)
	c.outMu.Unlock()
}

// queueAck queues an acknowledgement. wait reports whether it must wait for
// ackReady; it is written at once (behind any earlier waiting ones)
// otherwise. Safe from any goroutine.
func (c *conn) queueAck(wait bool, enc func([]byte) []byte, after func()) *pendingAck {
	c.outMu.Lock()
	if !wait && len(c.outMu.acks) == 0 {
		if !c.outMu.dead && !c.outMu.closing {
			n := len(c.outMu.out)
			c.outMu.out = enc(c.outMu.out)
			c.b.st.bytesOut.Add(uint64(len(c.outMu.out) - n))
		}
		c.outMu.Unlock()
		if after != nil {
			after()
		}
		return nil
	}
	pa := &pendingAck{enc: enc, ready: !wait, after: after}
	c.outMu.acks = append(c.outMu.acks, pa)
	c.outMu.Unlock()
	return pa
}

// pendingAcks is how many acknowledgements wait to be written.
func (c *conn) pendingAcks() int {
	c.outMu.Lock()
	n := len(c.outMu.acks)
	c.outMu.Unlock()
	return n
}

// ackReady marks pa ready and writes every ready acknowledgement at the
// head of the queue. Safe from any goroutine.
func (c *conn) ackReady(pa *pendingAck) {
	var after []func()
	c.outMu.Lock()
	pa.ready = true
	i := 0
	for ; i < len(c.outMu.acks) && c.outMu.acks[i].ready; i++ {
		a := c.outMu.acks[i]
		if !c.outMu.dead && !c.outMu.closing {
			n := len(c.outMu.out)
			c.outMu.out = a.append(c.outMu.out, c.version)
			c.b.st.bytesOut.Add(uint64(len(c.outMu.out) - n))
		}
		if a.after != nil {
			after = append(after, a.after)
		}
		c.outMu.acks[i] = nil
	}
	c.outMu.acks = c.outMu.acks[i:]
	if len(c.outMu.acks) == 0 {
		c.outMu.acks = nil
	}
	c.outMu.Unlock()
	for _, f := range after {
		f()
	}
	c.flush()
}

// flush hands the outbound buffer to the transport unless a write is
// already under way (its completion flushes again). Safe from any
// goroutine; call it with no lock held.
func (c *conn) flush() {
	c.runReleased()
	c.outMu.Lock()
	if c.outMu.flushing || c.outMu.dead || len(c.outMu.out) == 0 {
		c.outMu.Unlock()
		return
	}
	buf := c.outMu.out
	c.outMu.out = c.outMu.spare[:0]
	c.outMu.spare = nil
	c.outMu.flushing = true
	c.outMu.writing = len(buf)
	c.wbuf[0] = buf
	c.outMu.Unlock()
	if err := c.tc.AsyncWritev(c.wbuf[:], c.doneFn); err != nil {
		c.written(err)
	}
}

// written is the transport's completion of a flush.
func (c *conn) written(err error) {
	c.outMu.Lock()
	buf := c.wbuf[0]
	c.wbuf[0] = nil
	c.outMu.flushing = false
	c.outMu.writing = 0
	if cap(buf) <= spareMax {
		c.outMu.spare = buf[:0]
	}
	if err != nil {
		c.outMu.dead = true
		c.outMu.out = nil
	}
	more := len(c.outMu.out) > 0 && !c.outMu.dead
	closeNow := c.outMu.closing && !more
	c.outMu.Unlock()
	switch {
	case err != nil:
		_ = c.tc.Close()
	case closeNow && c.noLinger.Load():
		_ = c.tc.Close()
	case closeNow:
		// Linger: the client reads the final packet (a DISCONNECT or a
		// refusing CONNACK) before the socket goes. Closing at once could
		// reset the connection under packets the client is still sending,
		// and the client would never read the reason. Input is ignored
		// meanwhile; the housekeeping sweep closes after lingerFor.
		c.finalSent.Store(time.Now().UnixNano())
	case more:
		c.flush()
	case c.congestedFlag.Load():
		c.drain()
	}
}

func (c *conn) markDead() {
	c.outMu.Lock()
	c.outMu.dead = true
	c.outMu.out = nil
	c.outMu.Unlock()
}

// closeWith ends the connection: MQTT 5 connections that completed
// CONNECT get a DISCONNECT with reason first. Safe from any goroutine.
func (c *conn) closeWith(reason codec.ReasonCode, why string) {
	if !c.closingSince.CompareAndSwap(0, time.Now().UnixNano()) {
		return
	}
	c.stopRead.Store(true)
	c.setExitReason(why)
	if c.isConnected.Load() && c.v5() {
		d := codec.Disconnect{Reason: reason}
		if why != "" {
			// A reason string is allowed on DISCONNECT whatever Request
			// Problem Information says [MQTT-3.1.2-29].
			d.Props.Set(codec.PropReasonString)
			d.Props.ReasonString = []byte(why)
		}
		c.writeFinal(func(b []byte) []byte { return d.Append(b, codec.V5) })
		return
	}
	_ = c.tc.Close()
}

// setExitReason records why the server closed the connection, for the
// disconnect event. The first reason wins.
func (c *conn) setExitReason(why string) {
	x := c.x()
	c.outMu.Lock()
	if x.exitReason == "" {
		x.exitReason = why
	}
	c.outMu.Unlock()
}

// writeFinal queues a last packet and closes the connection once it is
// written.
func (c *conn) writeFinal(enc func([]byte) []byte) {
	c.outMu.Lock()
	if c.outMu.dead || c.outMu.closing {
		c.outMu.Unlock()
		_ = c.tc.Close()
		return
	}
	c.outMu.out = enc(c.outMu.out)
	c.outMu.closing = true
	idle := !c.outMu.flushing
	c.outMu.Unlock()
	if idle {
		c.flush()
	}
}

// fail handles an error from decoding or handling a packet: MQTT 5 gets a
// DISCONNECT with the error's reason code, 3.1.1 a closed connection.
func (c *conn) fail(err error) {
	reason := codec.UnspecifiedError
	var me *codec.MalformedError
	var rc codec.ReasonCode
	switch {
	case errors.As(err, &me):
		reason = me.Reason
	case errors.As(err, &rc):
		reason = rc
	}
	c.b.log.Debug().Str("client_id", c.clientID).Str("remote", c.remote()).Err(err).Msg("closing connection")
	c.closeWith(reason, "protocol error: "+reason.String())
}

// handle dispatches one whole packet. body is valid only during the call.
func (c *conn) handle(h codec.Header, body []byte) error {
	if !c.connected {
		switch {
		case h.Type == codec.CONNECT && c.auth == nil && c.version == 0:
			return c.onConnect(body)
		case h.Type == codec.AUTH && c.auth != nil:
			return c.onAuth(h, body) // [MQTT-4.12.0-?]: only AUTH while authenticating
		}
		return &codec.MalformedError{Packet: h.Type, Field: "packet type", Reason: codec.ProtocolError, Msg: "first packet must be CONNECT"}
	}
	switch h.Type {
	case codec.PUBLISH:
		return c.onPublish(h, body)
	case codec.PUBACK, codec.PUBREC, codec.PUBREL, codec.PUBCOMP:
		sc := getScratch()
		defer putScratch(sc)
		if err := sc.ack.Decode(h, body, c.version); err != nil {
			return err
		}
		return c.onAck(&sc.ack)
	case codec.SUBSCRIBE:
		return c.onSubscribe(h, body)
	case codec.UNSUBSCRIBE:
		return c.onUnsubscribe(h, body)
	case codec.PINGREQ:
		c.write(true, codec.AppendPingresp)
		return nil
	case codec.DISCONNECT:
		return c.onDisconnect(h, body)
	case codec.CONNECT:
		return &codec.MalformedError{Packet: h.Type, Field: "packet type", Reason: codec.ProtocolError, Msg: "second CONNECT"} // [MQTT-3.1.0-2]
	case codec.AUTH:
		if c.authMethod() == "" {
			return &codec.MalformedError{Packet: h.Type, Field: "packet type", Reason: codec.ProtocolError, Msg: "AUTH without an authentication method"} // [MQTT-4.12.0-7]
		}
		return c.onAuth(h, body)
	default:
		// AUTH without an authentication method, or a server-to-client
		// packet type.
		return &codec.MalformedError{Packet: h.Type, Field: "packet type", Reason: codec.ProtocolError, Msg: "unexpected packet"}
	}
}
