package broker

import (
	"errors"
	"slices"
	"strings"
	"sync/atomic"
	"time"

	"github.com/mqttd/mqttd/codec"
	"github.com/mqttd/mqttd/session"
)

func isSys(topic string) bool {
	return strings.HasPrefix(topic, "$SYS") && (len(topic) == 4 || topic[4] == '/')
}

func (b *Broker) allowed(user, topic string, a Access) bool {
	if b.cfg.Users == nil {
		return true
	}
	return b.cfg.Users.Allow(user, topic, a)
}

// pubRefuse answers a refused PUBLISH: MQTT 5 QoS 1/2 get PUBACK/PUBREC
// with the reason, MQTT 5 QoS 0 gets DISCONNECT, 3.1.1 is closed.
func (c *conn) pubRefuse(p *codec.Publish, r codec.ReasonCode) error {
	if !c.v5() || p.QoS == codec.QoS0 {
		return r
	}
	kind := codec.PUBACK
	if p.QoS == codec.QoS2 {
		kind = codec.PUBREC
	}
	c.writeAck(kind, p.PacketID, r)
	return nil
}

// waitAck queues an acknowledgement that goes out when the store has
// committed everything written so far, every Acker that took m (nil: none
// asked) is done, and no subscriber's queue holds it back (rt.w, taken
// during routing); a failure closes the connection instead (the client
// will resend). rt may be nil.
func (c *conn) waitAck(kind codec.Type, id uint16, r codec.ReasonCode, rt *routing, m *session.Message) {
	b := c.b
	durable := rt != nil && rt.wrote
	var w *ackWait
	if rt != nil {
		w = rt.w
	}
	if w == nil && !durable && (m == nil || len(b.cfg.Ackers) == 0) {
		c.writeAck(kind, id, r)
		return
	}
	if w == nil {
		w = c.newAckWait(kind, id, r)
	}
	if durable {
		w.n.Add(1)
		// rt may be a connection's scratch, reused once this returns.
		held := &routing{items: slices.Clone(rt.items)}
		b.store.Commit(func(err error) {
			// On failure the routed messages still go out (the store is
			// broken, not the delivery), but the publisher gets no
			// acknowledgement: it will resend.
			b.release(held)
			if err != nil {
				b.log.Error().Err(err).Str("client_id", c.clientID()).Msg("store commit failed")
			}
			w.done(err)
		})
	}
	if m != nil {
		for _, a := range b.cfg.Ackers {
			w.n.Add(1)
			if !a.Accept(m, w.done) {
				w.n.Add(-1)
			}
		}
	}
	w.done(nil) // the reference newAckWait took
}

// newAckWait queues a waiting acknowledgement, holding one reference.
func (c *conn) newAckWait(kind codec.Type, id uint16, r codec.ReasonCode) *ackWait {
	// One allocation holds the count, the queued acknowledgement and the
	// bound done: a held PUBACK is on the hot path under backpressure.
	w := &ackWait{c: c}
	w.pa.ack = codec.Ack{Kind: kind, PacketID: id, Reason: r}
	w.doneFn = w.done
	c.queueWaiting(&w.pa)
	w.n.Store(1)
	return w
}

// wroteIf returns a routing that makes waitAck wait for a commit when
// this connection's session is persistent on a durable store and changed.
func (c *conn) wroteIf(changed bool) *routing {
	if !changed || !c.b.store.Durable() {
		return nil
	}
	s := c.sess
	s.Mu.Lock()
	persistent := s.Expiry > 0
	s.Mu.Unlock()
	if !persistent {
		return nil
	}
	return &routing{wrote: true}
}

// ackWait counts what an acknowledgement waits for: store commits,
// Ackers, subscribers' queues over their cap. When the count reaches 0 the
// acknowledgement goes out (or, with final set, final is called).
type ackWait struct {
	c      *conn
	pa     pendingAck  // queued on c; unused with final
	final  func(error) // instead of c and pa: Publish's done
	doneFn func(error) // w.done, bound once
	n      atomic.Int32
	failed atomic.Bool
}

func (w *ackWait) done(err error) {
	if err != nil {
		w.failed.Store(true)
	}
	if w.n.Add(-1) != 0 {
		return
	}
	if w.final != nil {
		if w.failed.Load() {
			w.final(errors.New("broker: message not stored"))
		} else {
			w.final(nil)
		}
		return
	}
	if w.failed.Load() {
		w.c.closeWith(codec.ImplementationSpecificError, "message not stored")
		return
	}
	w.c.ackReady(&w.pa)
}

// routing is the context of routing one QoS 1/2 message.
//
// items are the outbound messages it queued to persistent sessions (with a
// durable store): they are sent only once their store records are
// committed, so that nothing a subscriber saw can vanish in a crash.
//
// hold gives backpressure: a subscriber whose queue is over its cap takes
// a reference on the publisher's acknowledgement (w, made on first use)
// and releases it when its queue has room again. So a fast publisher is
// slowed to the pace of its slowest online subscriber instead of the
// broker dropping messages it acknowledged.
type routing struct {
	items []durableItem
	wrote bool  // something durable was written: the acknowledgement waits for the commit
	c     *conn // the publisher; nil for Publish
	kind  codec.Type
	id    uint16
	w     *ackWait
}

// hold takes a reference on the publisher's acknowledgement; nil when
// there is nothing to hold.
func (rt *routing) hold() func(error) {
	if rt == nil {
		return nil
	}
	if rt.w == nil {
		if rt.c == nil {
			return nil
		}
		rt.w = rt.c.newAckWait(rt.kind, rt.id, codec.Success)
	}
	rt.w.n.Add(1)
	return rt.w.doneFn
}

type durableItem struct {
	s *session.Session
	f *session.Inflight
}

// release marks rt's messages durable and sends what their sessions can.
func (b *Broker) release(rt *routing) {
	if rt == nil {
		return
	}
	now := time.Now()
	for _, it := range rt.items {
		s := it.s
		s.Mu.Lock()
		it.f.Durable = true
		c, _ := s.Owner.(*conn)
		if c != nil {
			c.drainLocked(now)
		}
		s.Mu.Unlock()
		if c != nil {
			c.flush()
		}
	}
}

// onPublish handles an inbound PUBLISH [MQTT-3.3].
func (c *conn) onPublish(h codec.Header, body []byte) error {
	b := c.b
	sc := getScratch()
	defer putScratch(sc)
	p := &sc.pub
	if err := p.Decode(h, body, c.version); err != nil {
		return err
	}
	if c.msgRate != nil && !c.msgRate.take(time.Now()) {
		b.st.refusedRate.Add(1)
		return codec.MessageRateTooHigh
	}
	topic := p.Topic
	if c.v5() {
		if p.Props.Has(codec.PropSubscriptionID) {
			return &codec.MalformedError{Packet: codec.PUBLISH, Field: "subscription identifier", Reason: codec.ProtocolError} // [MQTT-3.3.4-6]
		}
		if p.Props.Has(codec.PropTopicAlias) {
			a := p.Props.TopicAlias
			if a == 0 || a > c.aliasInMax {
				return codec.TopicAliasInvalid // [MQTT-3.3.2-8], [MQTT-3.3.2-9]
			}
			if len(topic) == 0 {
				var t string
				ok := false
				if x := c.cold.Load(); x != nil {
					t, ok = x.aliasIn[a]
				}
				if !ok {
					return &codec.MalformedError{Packet: codec.PUBLISH, Field: "topic alias", Reason: codec.ProtocolError, Msg: "unknown alias"}
				}
				topic = []byte(t) // one allocation: the Message copies it anyway
			} else {
				x := c.x()
				if x.aliasIn == nil {
					x.aliasIn = make(map[uint16]string)
				}
				x.aliasIn[a] = string(topic)
			}
		} else if len(topic) == 0 {
			return &codec.MalformedError{Packet: codec.PUBLISH, Field: "topic name", Reason: codec.ProtocolError, Msg: "empty without alias"} // [MQTT-3.3.2-1]
		}
	}
	ts := unsafeString(topic)
	if !b.validTopic(ts) {
		return c.pubRefuse(p, codec.TopicNameInvalid)
	}
	if isSys(ts) || !b.allowed(c.user, ts, AccessPublish) {
		return c.pubRefuse(p, codec.NotAuthorized)
	}
	s := c.sess
	if p.QoS == codec.QoS1 && c.pendingAcks() >= int(b.cfg.ReceiveMaximum) {
		return codec.ReceiveMaximumExceeded // [MQTT-3.3.4-9]
	}
	if p.QoS == codec.QoS2 {
		s.Mu.Lock()
		if s.HasReceived(p.PacketID) {
			// A resend of one we have: acknowledge again, deliver once
			// [MQTT-4.3.3-10].
			s.Mu.Unlock()
			c.writeAck(codec.PUBREC, p.PacketID, codec.Success)
			return nil
		}
		if s.ReceivedLen() >= int(b.cfg.ReceiveMaximum) {
			s.Mu.Unlock()
			return codec.ReceiveMaximumExceeded // [MQTT-3.3.4-9]
		}
		s.MarkReceived(p.PacketID)
		s.Mu.Unlock()
	}
	now := time.Now()
	m := session.NewMessage(p, topic, s.ClientID, now)
	b.st.messagesIn.Add(1)
	rt := sc.routing()
	if rt != nil {
		rt.c, rt.kind, rt.id = c, codec.PUBACK, p.PacketID
		if p.QoS == codec.QoS2 {
			rt.kind = codec.PUBREC
		}
	}
	if b.store.Durable() {
		// Every write of one PUBLISH (its QoS 2 id, its retained copy,
		// its deliveries) lands in one group commit: a crash must never
		// keep the id without the deliveries, or the resent PUBLISH would
		// be taken for a duplicate and its message lost.
		sc.pc, sc.pm = c, m
		b.store.Atomic(sc.writeFn)
	} else {
		c.publishWrites(p, m, rt)
	}
	// The acknowledgement goes once every durable step is done.
	if p.QoS == codec.QoS0 {
		if p.Retain && b.store.Durable() {
			b.store.Commit(func(error) {})
		}
		for _, a := range b.cfg.Ackers {
			a.Accept(m, func(error) {})
		}
	} else {
		c.waitAck(rt.kind, p.PacketID, codec.Success, rt, m)
	}
	for _, hk := range b.cfg.Hooks {
		hk.OnPublish(m)
	}
	return nil
}

// publishWrites records and routes an accepted PUBLISH.
func (c *conn) publishWrites(p *codec.Publish, m *session.Message, rt *routing) {
	b := c.b
	if p.QoS == codec.QoS2 {
		s := c.sess
		s.Mu.Lock()
		b.store.SaveReceived(s, p.PacketID)
		if s.Expiry > 0 && rt != nil {
			rt.wrote = true
		}
		s.Mu.Unlock()
	}
	if p.Retain {
		b.ret.set(m)
		b.store.SaveRetained(m)
		if rt != nil {
			rt.wrote = true
		}
	}
	b.route(m, c.clientID(), rt, false)
}

// onAck handles PUBACK, PUBREC, PUBREL and PUBCOMP from the client.
func (c *conn) onAck(a *codec.Ack) error {
	b := c.b
	s := c.sess
	now := time.Now()
	switch a.Kind {
	case codec.PUBREL: // inbound QoS 2, step 3 [MQTT-4.3.3-11]
		s.Mu.Lock()
		ok := s.ReleaseReceived(a.PacketID)
		if ok {
			b.store.DeleteReceived(s, a.PacketID)
		}
		s.Mu.Unlock()
		r := codec.Success
		if !ok {
			r = codec.PacketIdentifierNotFound
		}
		// PUBCOMP only once the release is durable: the client may reuse
		// the packet id right after it.
		c.waitAck(codec.PUBCOMP, a.PacketID, r, c.wroteIf(ok), nil)
		return nil
	case codec.PUBACK, codec.PUBCOMP:
		s.Mu.Lock()
		f := s.Find(a.PacketID)
		if f != nil && f.Sent && (a.Kind == codec.PUBACK) == (f.QoS == codec.QoS1) &&
			(a.Kind == codec.PUBACK || f.Phase == session.PhaseReleased) {
			s.Remove(a.PacketID)
			b.store.DeleteOut(s, f)
		}
		c.drainLocked(now)
		s.Mu.Unlock()
		return nil
	case codec.PUBREC:
		s.Mu.Lock()
		f := s.Find(a.PacketID)
		switch {
		case f == nil || f.QoS != codec.QoS2 || !f.Sent:
			s.Mu.Unlock()
			c.writeAck(codec.PUBREL, a.PacketID, codec.PacketIdentifierNotFound)
			return nil
		case a.Reason.IsError():
			// The client refused it: the flow ends here [MQTT-4.3.3-4].
			s.Remove(a.PacketID)
			b.store.DeleteOut(s, f)
			c.drainLocked(now)
			s.Mu.Unlock()
			return nil
		}
		f.Phase = session.PhaseReleased
		b.store.SaveOut(s, f)
		s.Mu.Unlock()
		// PUBREL only once the new phase is durable: after a PUBREL the
		// PUBLISH must never be sent again [MQTT-4.3.3-5].
		c.waitAck(codec.PUBREL, a.PacketID, codec.Success, c.wroteIf(true), nil)
		return nil
	}
	return nil
}

// route delivers m to every matching subscription. publisher is the
// sending client's ID (for No Local), "" for the broker's own messages.
//
// onlineOnly skips sessions whose client is not connected.
func (b *Broker) route(m *session.Message, publisher string, ds *routing, onlineOnly bool) {
	mt := matcherPool.Get().(*matcher)
	b.subs.match(m.Topic, mt)
	now := m.Created
	if now.IsZero() {
		now = time.Now()
	}
	// Merge overlapping plain subscriptions of one client into one
	// delivery at the highest QoS with every subscription id.
	for _, d := range mt.merge(m, publisher) {
		b.deliver(d.s, d.Delivery, now, ds, onlineOnly)
	}
	for _, gm := range mt.groups {
		ms := gm.members
		if len(ms) == 0 {
			continue
		}
		start := int(gm.g.next.Add(1))
		pick := -1
		// Prefer an online member; fall back to the next in turn.
		for k := 0; k < len(ms); k++ {
			i := (start + k) % len(ms)
			s := ms[i].s
			s.Mu.Lock()
			online := s.Owner != nil
			s.Mu.Unlock()
			if online {
				pick = i
				break
			}
		}
		if pick < 0 {
			pick = start % len(ms)
		}
		e := ms[pick]
		d := session.Delivery{Msg: m, QoS: min(m.QoS, e.qos), Retain: m.Retain && e.rap}
		if e.id != 0 {
			d.SubIDs = []uint32{e.id}
		}
		b.deliver(e.s, d, now, ds, onlineOnly)
	}
	mt.reset()
	matcherPool.Put(mt)
}

// deliver hands d to session s: online, to its connection (in flight or
// queued behind the window); offline, to its queue (QoS > 0 only). With a
// durable store, QoS 1/2 messages for a persistent session are recorded
// and collected in ds: they go out once the commit is done.
func (b *Broker) deliver(s *session.Session, d session.Delivery, now time.Time, ds *routing, onlineOnly bool) {
	if d.Msg.Expired(now) {
		b.st.droppedExpired.Add(1)
		return
	}
	s.Mu.Lock()
	c, _ := s.Owner.(*conn)
	if c == nil && onlineOnly {
		s.Mu.Unlock()
		return
	}
	if d.QoS == codec.QoS0 {
		if c != nil {
			if !c.writePublishLocked(&session.Inflight{Delivery: d}, false, now) {
				b.st.droppedQoS0.Add(1)
				c.congest()
			}
		}
		s.Mu.Unlock()
		if c != nil {
			c.flush()
		}
		return
	}
	if c == nil && s.Expiry == 0 {
		s.Mu.Unlock() // the session ends with its connection
		return
	}
	limit := b.cfg.MaxPending
	if c == nil {
		limit = b.cfg.SessionMaxQueued
	} else if s.QueueLen() >= limit {
		// Online and full: hold the publisher back rather than drop a
		// message it will have acknowledged.
		if done := ds.hold(); done != nil {
			s.AddWaiter(done)
			limit = 0 // no trimming: this one is paid for by backpressure
		}
	}
	waitCommit := ds != nil && b.store.Durable() && s.Expiry > 0
	if waitCommit {
		ds.wrote = true
	}
	f, ok := s.Add(d, !waitCommit)
	if !ok {
		b.st.droppedPending.Add(1)
		s.Mu.Unlock()
		return
	}
	b.store.SaveOut(s, f)
	if waitCommit {
		ds.items = append(ds.items, durableItem{s: s, f: f})
	}
	if limit == 0 {
		limit = s.QueueLen()
	}
	for _, old := range s.TrimQueue(limit) {
		b.store.DeleteOut(s, old)
		if c == nil {
			b.st.droppedOffline.Add(1)
		} else {
			b.st.droppedPending.Add(1)
		}
	}
	if c != nil {
		c.drainLocked(now)
	}
	s.Mu.Unlock()
	if c != nil {
		c.flush()
	}
}

// drain sends queued messages while the window and the outbound buffer
// have room. Safe from any goroutine.
func (c *conn) drain() {
	s := c.sess
	if s == nil {
		return
	}
	s.Mu.Lock()
	if s.Owner == c {
		c.drainLocked(time.Now())
	}
	s.Mu.Unlock()
	c.flush()
}

// drainLocked is drain with c.sess.Mu held. It stops at the first
// message whose store record is not committed yet, keeping order.
func (c *conn) drainLocked(now time.Time) {
	s := c.sess
	c.unset(fCongested)
	defer c.releaseWaitersLocked()
	for s.InflightLen() < int(c.window) {
		f := s.NextUnsent()
		if f == nil || !f.Durable {
			return
		}
		if f.Msg.Expired(now) {
			s.Remove(f.PacketID)
			c.b.store.DeleteOut(s, f)
			c.b.st.droppedExpired.Add(1)
			continue
		}
		if !c.hasRoom() {
			c.congest()
			return
		}
		s.MarkSent()
		c.writePublishLocked(f, f.MaybeSent, now)
	}
}

func (c *conn) hasRoom() bool {
	c.outMu.Lock()
	ok := !c.outMu.dead && c.roomLocked()
	c.outMu.Unlock()
	return ok
}

// writePublishLocked encodes f as a PUBLISH into the outbound buffer.
// Caller holds c.sess.Mu (it guards the outbound topic aliases). QoS 0
// (f.PacketID 0) respects the outbound limit and reports false when
// dropped; QoS 1/2 are always written (the window bounds them).
func (c *conn) writePublishLocked(f *session.Inflight, dup bool, now time.Time) bool {
	m := f.Msg
	p := codec.Publish{
		Topic:    unsafeBytes(m.Topic),
		Payload:  m.Payload,
		QoS:      f.QoS,
		PacketID: f.PacketID,
		Dup:      dup && f.QoS > 0,
		Retain:   f.Retain,
	}
	if c.v5() {
		pr := &p.Props
		if m.HasFormat {
			pr.Set(codec.PropPayloadFormat)
			pr.PayloadFormat = m.PayloadFormat
		}
		if e, ok := m.RemainingExpiry(now); ok {
			pr.Set(codec.PropMessageExpiry)
			pr.MessageExpiry = e // [MQTT-3.3.2-6]
		}
		if m.ContentType != nil {
			pr.Set(codec.PropContentType)
			pr.ContentType = m.ContentType
		}
		if m.ResponseTopic != nil {
			pr.Set(codec.PropResponseTopic)
			pr.ResponseTopic = m.ResponseTopic
		}
		if m.CorrelationData != nil {
			pr.Set(codec.PropCorrelationData)
			pr.CorrelationData = m.CorrelationData
		}
		if len(f.SubIDs) > 0 {
			pr.Set(codec.PropSubscriptionID)
			pr.SubscriptionIDs = f.SubIDs
		}
		if len(m.User) > 0 {
			pr.Set(codec.PropUser)
			pr.User = m.User
		}
		if c.aliasMax > 0 {
			c.applyAlias(&p)
		}
		if c.maxOut > 0 && p.Size(codec.V5) > int(c.maxOut) {
			// Never send more than the client accepts [MQTT-3.1.2-24]:
			// the message is discarded as if delivered.
			c.b.st.droppedTooBig.Add(1)
			if f.PacketID != 0 {
				// The session's own record, not f: a QoS 0 delivery's f
				// lives on the caller's stack.
				if g, ok := c.sess.Remove(f.PacketID); ok {
					c.b.store.DeleteOut(c.sess, g)
				}
			}
			return true
		}
	}
	v := c.version
	ok := c.write(f.PacketID != 0, func(b []byte) []byte { return p.Append(b, v) })
	if ok {
		c.b.st.messagesOut.Add(1)
	}
	return ok
}

// applyAlias gives p's topic an outbound alias: the first time a topic
// goes out it carries the topic and a new alias, after that the alias
// alone [MQTT-3.3.2-12]. When all aliases are taken, topics without one go
// out in full. Caller holds c.sess.Mu.
func (c *conn) applyAlias(p *codec.Publish) {
	t := unsafeString(p.Topic)
	x := c.x()
	if a, ok := x.aliasOut[t]; ok {
		p.Props.Set(codec.PropTopicAlias)
		p.Props.TopicAlias = a
		p.Topic = nil
		return
	}
	if len(x.aliasOut) >= int(c.aliasMax) {
		return
	}
	if x.aliasOut == nil {
		x.aliasOut = make(map[string]uint16)
	}
	a := uint16(len(x.aliasOut) + 1)
	x.aliasOut[strings.Clone(t)] = a
	p.Props.Set(codec.PropTopicAlias)
	p.Props.TopicAlias = a
}

// ErrBadTopic is returned by Publish for a topic the naming rules refuse.
var ErrBadTopic = errors.New("broker: topic name not valid")

// Publish routes m as if a client had published it (commands from the
// Kafka bridge, gateways). m.Topic is checked against the naming rules;
// m.Created is set when zero. done (may be nil) is called once the message
// is durable in every session it was queued to: at once without a durable
// store. Ackers are not asked: m does not come from a device. Safe from
// any goroutine.
func (b *Broker) Publish(m *Message, opts PublishOptions, done func(error)) error {
	if b.closed.Load() {
		return ErrClosed
	}
	if !b.validTopic(m.Topic) {
		return ErrBadTopic
	}
	if m.Created.IsZero() {
		m.Created = time.Now()
	}
	if m.Payload == nil {
		m.Payload = []byte{}
	}
	b.st.messagesIn.Add(1)
	if done == nil {
		done = func(error) {}
	}
	// done waits for the store and for room in every online subscriber's
	// queue (backpressure on the command consumer).
	w := &ackWait{final: done}
	w.doneFn = w.done
	w.n.Store(1)
	rt := &routing{w: w}
	b.store.Atomic(func() {
		if m.Retain {
			b.ret.set(m)
			b.store.SaveRetained(m)
		}
		b.route(m, "", rt, opts.OnlineOnly)
	})
	for _, h := range b.cfg.Hooks {
		h.OnPublish(m)
	}
	if b.store.Durable() {
		w.n.Add(1)
		b.store.Commit(func(err error) {
			b.release(rt)
			w.done(err)
		})
	}
	w.done(nil)
	return nil
}

// releaseWaitersLocked hands the publishers held back by this session's
// queue to the next flush once the queue is under its cap again. Caller
// holds c.sess.Mu.
func (c *conn) releaseWaitersLocked() {
	s := c.sess
	if s.Waiting() == 0 || s.QueueLen() >= c.b.cfg.MaxPending {
		return
	}
	x := c.x()
	x.relMu.Lock()
	x.rel = s.TakeWaiters(x.rel)
	x.relMu.Unlock()
	c.set(fHasRel)
}

// runReleased calls the released waiters, with no lock held.
func (c *conn) runReleased() {
	if !c.is(fHasRel) {
		return
	}
	x := c.x()
	x.relMu.Lock()
	rel := x.rel
	x.rel = nil
	c.unset(fHasRel)
	x.relMu.Unlock()
	for _, f := range rel {
		f(nil)
	}
}
