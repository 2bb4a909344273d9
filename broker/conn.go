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
//
// Memory: idle connections are most of a broker's memory, so the struct
// holds only what every connection uses and is kept to a size class of
// 208 bytes (TestConnSize): flags are bits of one word, times share
// fields where their uses do not overlap, and what most connections never
// need is in connCold.
type conn struct {
	b    *Broker
	tc   transport.Conn
	sess *session.Session // session-guarded; set once, when CONNECT completes

	// cold holds what most connections never use, allocated on first
	// use.
	cold atomic.Pointer[connCold]

	// Read by the housekeeping goroutine.
	lastRecv atomic.Int64 // unix ns of the last whole packet
	// since is when the connection opened (unix ns) until CONNECT
	// completes, then when CONNACK went: the connect timeout needs the
	// first only before, ClientInfo the second only after.
	since atomic.Int64
	flags atomic.Uint32 // the f... bits below

	// inMu serializes inbound handling: the transport's calls and the
	// completion of a password check on an auth worker. The fields under
	// "Loop-owned" are guarded by it (uncontended but for that case), as
	// are deferred and gone below.
	inMu sync.Mutex

	// Loop-owned. The client ID is the session's.
	msgRate *bucket // nil: no cap
	user    string
	will    *connWill

	// Write path.
	outMu struct {
		sync.Mutex
		out      []byte // packets not yet handed to the transport
		flushing bool   // wbuf[0] is being written
		closing  bool   // a final packet is queued; close after it is written
		dead     bool   // transport closed: drop everything
		recent   bool   // flushed since the housekeeping last looked (see dropIdleBuffers)
	}
	// wbuf[0] is the buffer being written while outMu.flushing, else an
	// empty buffer kept to swap in for out (nil: none); guarded by outMu.
	wbuf   [1][]byte
	doneFn func(error)

	maxOut uint32 // session-guarded: client's Maximum Packet Size; 0: protocol maximum
	slot   int32  // index in the broker's connection shard; -1: not registered (under the shard's lock)

	keepAlive  uint16 // effective keepalive, seconds; 0: none (set before fConnected, then fixed)
	window     uint16 // session-guarded: outbound in-flight maximum
	aliasInMax uint16 // loop-owned
	aliasMax   uint16 // session-guarded: outbound aliases the broker may assign

	shard      uint8         // the broker's connection shard
	admitted   bool          // counted by Broker.admit (set in OnOpen)
	deferred   bool          // under inMu: a CONNECT waits for its password check (see cold.held)
	gone       bool          // under inMu: OnClose ran
	connected  bool          // loop-owned
	version    codec.Version // loop-owned
	normalExit bool          // loop-owned: DISCONNECT without will
	problem    bool          // loop-owned: MQTT 5 Request Problem Information (default true)
	cleanStart bool          // loop-owned
}

// Bits of conn.flags: state other goroutines read or set.
const (
	fConnected      uint32 = 1 << iota // CONNECT completed, not yet disconnected
	fNoLinger                          // close right after the final packet (the client is silent anyway)
	fCongested                         // deliveries held back by a full outbound buffer
	fStopRead                          // ignore further inbound bytes
	fTakenOver                         // another connection's CONNECT took this one's session
	fTakenOverClean                    // ... with a clean start
	fHasRel                            // cold.rel has waiters to run
	fSpare                             // wbuf holds a spare buffer (see dropIdleBuffers)
	fClosing                           // closing started (see cold.closeBy)
	fGone                              // OnClose ran: the sweep's lists let go of it
	fWatched                           // on the sweep's watch list (Broker.watch)
)

// is reports whether flag f is set (any of them, when several).
func (c *conn) is(f uint32) bool { return c.flags.Load()&f != 0 }

// set sets the flags f; unset clears them. Both skip the atomic
// read-modify-write when there is nothing to change: the hot paths set
// and clear fCongested and fSpare per delivery.
func (c *conn) set(f uint32) {
	if c.flags.Load()&f != f {
		c.flags.Or(f)
	}
}

func (c *conn) unset(f uint32) {
	if c.flags.Load()&f != 0 {
		c.flags.And(^f)
	}
}

// connWill is the connected client's will.
type connWill struct {
	session.Will
	expiry    uint32 // MQTT 5 Message Expiry Interval, seconds
	hasExpiry bool
}

// connCold is the part of a connection's state that most connections
// never need.
type connCold struct {
	ip         string            // for MaxConnectionsPerIP
	held       []byte            // bytes received while deferred, not yet handled (under inMu)
	authMethod string            // the CONNECT's Authentication Method ("" without); loop-owned
	auth       *authExchange     // enhanced authentication in progress; loop-owned
	exitReason string            // under outMu
	aliasIn    map[uint16]string // loop-owned
	aliasOut   map[string]uint16 // under sess.Mu

	// closeBy is when the housekeeping closes the connection once
	// fClosing is set (unix ns): a grace for the final packet from when
	// closing started, then the linger after it was written.
	closeBy atomic.Int64

	// acks holds acknowledgements in the order their packets arrived
	// while some wait for a durable step (store commit): each goes out
	// once it and all before it are ready [MQTT-4.6.0-2..4]. Under outMu.
	acks []*pendingAck

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

// auth is the enhanced authentication in progress, nil without; caller
// holds inMu.
func (c *conn) auth() *authExchange {
	if x := c.cold.Load(); x != nil {
		return x.auth
	}
	return nil
}

// setAuth sets (nil: ends) the enhanced authentication in progress;
// caller holds inMu.
func (c *conn) setAuth(a *authExchange) {
	if a == nil && c.cold.Load() == nil {
		return
	}
	c.x().auth = a
}

// ip is the client's address for MaxConnectionsPerIP, "" when not kept.
func (c *conn) ip() string {
	if x := c.cold.Load(); x != nil {
		return x.ip
	}
	return ""
}

// clientID is the client ID of a connected client (the session's).
func (c *conn) clientID() string { return c.sess.ClientID }

func newConn(b *Broker, tc transport.Conn) *conn {
	now := time.Now().UnixNano()
	c := &conn{
		b:       b,
		tc:      tc,
		shard:   uint8(connSeq.Add(1) % uint64(len(b.conns))),
		problem: true,
		slot:    -1,
	}
	c.since.Store(now)
	c.lastRecv.Store(now)
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

// acks is the queue of acknowledgements waiting to be written, nil when
// empty; caller holds outMu.
func (c *conn) acks() []*pendingAck {
	if x := c.cold.Load(); x != nil {
		return x.acks
	}
	return nil
}

// writeAck queues a PUBACK, PUBREC, PUBREL or PUBCOMP that needs no
// durable step, behind any acknowledgement still waiting for one, without
// building a closure on the fast path.
func (c *conn) writeAck(kind codec.Type, id uint16, r codec.ReasonCode) {
	a := codec.Ack{Kind: kind, PacketID: id, Reason: r}
	c.outMu.Lock()
	if len(c.acks()) == 0 {
		if !c.outMu.dead && !c.outMu.closing {
			n := len(c.outMu.out)
			c.outMu.out = a.Append(c.outMu.out, c.version)
			c.b.st.bytesOut.Add(uint64(len(c.outMu.out) - n))
		}
		c.outMu.Unlock()
		return
	}
	x := c.x()
	x.acks = append(x.acks, &pendingAck{ack: a, ready: true})
	c.outMu.Unlock()
}

// queueWaiting queues pa, an acknowledgement that waits for ackReady.
func (c *conn) queueWaiting(pa *pendingAck) {
	x := c.x()
	c.outMu.Lock()
	x.acks = append(x.acks, pa)
	c.outMu.Unlock()
}

// queueAck queues an acknowledgement. wait reports whether it must wait for
// ackReady; it is written at once (behind any earlier waiting ones)
// otherwise. Safe from any goroutine.
func (c *conn) queueAck(wait bool, enc func([]byte) []byte, after func()) *pendingAck {
	c.outMu.Lock()
	if !wait && len(c.acks()) == 0 {
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
	x := c.x()
	x.acks = append(x.acks, pa)
	c.outMu.Unlock()
	return pa
}

// pendingAcks is how many acknowledgements wait to be written.
func (c *conn) pendingAcks() int {
	if c.cold.Load() == nil {
		return 0 // never had any: no lock needed
	}
	c.outMu.Lock()
	n := len(c.acks())
	c.outMu.Unlock()
	return n
}

// ackReady marks pa ready and writes every ready acknowledgement at the
// head of the queue. Safe from any goroutine.
func (c *conn) ackReady(pa *pendingAck) {
	var after []func()
	x := c.x()
	c.outMu.Lock()
	pa.ready = true
	i := 0
	for ; i < len(x.acks) && x.acks[i].ready; i++ {
		a := x.acks[i]
		if !c.outMu.dead && !c.outMu.closing {
			n := len(c.outMu.out)
			c.outMu.out = a.append(c.outMu.out, c.version)
			c.b.st.bytesOut.Add(uint64(len(c.outMu.out) - n))
		}
		if a.after != nil {
			after = append(after, a.after)
		}
		x.acks[i] = nil
	}
	x.acks = x.acks[i:]
	if len(x.acks) == 0 {
		x.acks = nil
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
	// Swap: out goes to the transport, the spare (if any) takes its place.
	buf := c.outMu.out
	c.outMu.out = c.wbuf[0][:0]
	c.wbuf[0] = buf
	c.outMu.flushing = true
	c.outMu.recent = true
	c.outMu.Unlock()
	if err := c.tc.AsyncWritev(c.wbuf[:], c.doneFn); err != nil {
		c.written(err)
	}
}

// written is the transport's completion of a flush.
func (c *conn) written(err error) {
	c.outMu.Lock()
	if cap(c.wbuf[0]) <= spareMax {
		c.wbuf[0] = c.wbuf[0][:0] // the spare
		c.set(fSpare)
	} else {
		c.wbuf[0] = nil
	}
	c.outMu.flushing = false
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
	case closeNow && c.is(fNoLinger):
		_ = c.tc.Close()
	case closeNow:
		// Linger: the client reads the final packet (a DISCONNECT or a
		// refusing CONNACK) before the socket goes. Closing at once could
		// reset the connection under packets the client is still sending,
		// and the client would never read the reason. Input is ignored
		// meanwhile; the housekeeping sweep closes after lingerFor.
		c.x().closeBy.Store(time.Now().Add(lingerFor).UnixNano())
	case more:
		c.flush()
	case c.is(fCongested):
		c.drain()
	}
}

// dropIdleBuffers lets the write buffers of a connection that wrote
// nothing since the last call go: a busy connection swaps two buffers
// without allocating, an idle one need not keep them (up to spareMax
// each). The housekeeping calls it every idleBuffersEvery.
func (c *conn) dropIdleBuffers() {
	c.outMu.Lock()
	switch {
	case c.outMu.recent:
		c.outMu.recent = false
	case !c.outMu.flushing && len(c.outMu.out) == 0:
		c.wbuf[0] = nil
		c.outMu.out = nil
		c.unset(fSpare)
	}
	c.outMu.Unlock()
}

func (c *conn) markDead() {
	c.outMu.Lock()
	c.outMu.dead = true
	c.outMu.out = nil
	c.outMu.Unlock()
}

// closeGrace is how long a closing connection waits for its final packet
// to be written before the housekeeping closes it anyway.
const closeGrace = 5 * time.Second

// startClosing marks the connection closing and reports whether it was
// not already.
func (c *conn) startClosing() bool {
	if c.flags.Or(fClosing)&fClosing != 0 {
		return false
	}
	c.x().closeBy.CompareAndSwap(0, time.Now().Add(closeGrace).UnixNano())
	c.b.watch(c)
	return true
}

// congest marks deliveries held back by a full outbound buffer; the
// sweep retries them every tick until the flag clears.
func (c *conn) congest() {
	if c.flags.Load()&fCongested == 0 && c.flags.Or(fCongested)&fCongested == 0 {
		c.b.watch(c)
	}
}

// closeWith ends the connection: MQTT 5 connections that completed
// CONNECT get a DISCONNECT with reason first. Safe from any goroutine.
func (c *conn) closeWith(reason codec.ReasonCode, why string) {
	if !c.startClosing() {
		return
	}
	c.set(fStopRead)
	c.setExitReason(why)
	if c.is(fConnected) && c.v5() {
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
	id := ""
	if c.connected {
		id = c.clientID()
	}
	c.b.log.Debug().Str("client_id", id).Str("remote", c.remote()).Err(err).Msg("closing connection")
	c.closeWith(reason, "protocol error: "+reason.String())
}

// handle dispatches one whole packet. body is valid only during the call.
func (c *conn) handle(h codec.Header, body []byte) error {
	if !c.connected {
		switch {
		case h.Type == codec.CONNECT && c.auth() == nil && c.version == 0:
			return c.onConnect(body)
		case h.Type == codec.AUTH && c.auth() != nil:
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
