package broker

import (
	"time"

	"github.com/mqttd/mqttd/codec"
	"github.com/mqttd/mqttd/session"
)

// denied reports whether filter is on the deny list.
func (b *Broker) denied(filter string) bool {
	for _, f := range b.cfg.DenySubscribe {
		if f == filter {
			return true
		}
	}
	return false
}

// onSubscribe handles SUBSCRIBE [MQTT-3.8]: SUBACK first, then the
// retained messages of the new subscriptions.
func (c *conn) onSubscribe(h codec.Header, body []byte) error {
	b := c.b
	sc := getScratch()
	defer putScratch(sc)
	p := &sc.sub
	if err := p.Decode(h, body, c.version); err != nil {
		return err
	}
	var subID uint32
	if c.v5() && p.Props.Has(codec.PropSubscriptionID) && len(p.Props.SubscriptionIDs) > 0 {
		subID = p.Props.SubscriptionIDs[0]
	}
	invalid, notAuth := codec.SubackFailure, codec.SubackFailure
	if c.v5() {
		invalid, notAuth = codec.TopicFilterInvalid, codec.NotAuthorized
	}
	type retainedFor struct {
		msgs []*session.Message
		sub  session.Subscription
	}
	var toSend []retainedFor
	reasons := sc.reasons[:0]
	s := c.sess
	for _, f := range p.Subs {
		raw := string(f.Filter)
		pf, ok := b.parseFilter(raw)
		if !ok {
			reasons = append(reasons, invalid)
			continue
		}
		if pf.group != "" && f.NoLocal && c.v5() {
			return &codec.MalformedError{Packet: codec.SUBSCRIBE, Field: "no local", Reason: codec.ProtocolError, Msg: "not allowed on a shared subscription"} // [MQTT-3.8.3-4]
		}
		if b.denied(raw) || b.denied(pf.filter) {
			// A deny rule: Unspecified error in both versions.
			reasons = append(reasons, codec.SubackFailure)
			continue
		}
		if !b.allowed(c.user, pf.filter, AccessSubscribe) {
			reasons = append(reasons, notAuth)
			continue
		}
		sub := session.Subscription{
			Filter: raw, QoS: f.QoS, NoLocal: f.NoLocal,
			RetainAsPublished: f.RetainAsPublished, RetainHandling: f.RetainHandling, ID: subID,
		}
		if !c.v5() {
			sub.NoLocal, sub.RetainAsPublished, sub.RetainHandling = false, false, 0
		}
		s.Mu.Lock()
		had := s.SetSub(sub)
		b.store.SaveSession(s)
		s.Mu.Unlock()
		b.subs.add(s, pf.group, pf.filter, sub)
		reasons = append(reasons, codec.ReasonCode(f.QoS))
		// Retained messages: not for shared subscriptions
		// [MQTT-3.8.4-?]; retain handling 1 only for a new one, 2 never.
		if pf.group == "" && (sub.RetainHandling == 0 || sub.RetainHandling == 1 && !had) {
			if msgs := b.ret.match(pf.filter, nil); len(msgs) > 0 {
				toSend = append(toSend, retainedFor{msgs: msgs, sub: sub})
			}
		}
	}
	sc.reasons = reasons
	// The closure keeps only the id and the codes: a whole Suback (with
	// its properties) would be a few hundred bytes per SUBSCRIBE.
	id, codes, v := p.PacketID, append([]codec.ReasonCode(nil), reasons...), c.version
	enc := func(buf []byte) []byte {
		ack := codec.Suback{PacketID: id, Reasons: codes}
		return ack.Append(buf, v)
	}
	var after func()
	if len(toSend) > 0 {
		after = func() {
			now := time.Now()
			for _, r := range toSend {
				for _, m := range r.msgs {
					if m.Expired(now) {
						continue
					}
					d := session.Delivery{Msg: m, QoS: min(m.QoS, r.sub.QoS), Retain: true} // [MQTT-3.3.1-8]
					if r.sub.ID != 0 {
						d.SubIDs = []uint32{r.sub.ID}
					}
					b.deliver(s, d, now, nil, false)
				}
			}
			c.flush()
		}
	}
	// SUBACK once the subscriptions are durable; the retained messages
	// after it.
	s.Mu.Lock()
	persistent := s.Expiry > 0
	s.Mu.Unlock()
	if !b.store.Durable() || !persistent {
		c.queueAck(false, enc, after)
		return nil
	}
	pa := c.queueAck(true, enc, after)
	b.store.Commit(func(err error) {
		if err != nil {
			c.closeWith(codec.ImplementationSpecificError, "store failure")
			return
		}
		c.ackReady(pa)
	})
	return nil
}

// onUnsubscribe handles UNSUBSCRIBE [MQTT-3.10].
func (c *conn) onUnsubscribe(h codec.Header, body []byte) error {
	b := c.b
	sc := getScratch()
	defer putScratch(sc)
	p := &sc.unsub
	if err := p.Decode(h, body, c.version); err != nil {
		return err
	}
	reasons := sc.reasons[:0]
	s := c.sess
	for _, f := range p.Filters {
		raw := string(f)
		pf, ok := b.parseFilter(raw)
		if !ok {
			reasons = append(reasons, codec.TopicFilterInvalid)
			continue
		}
		s.Mu.Lock()
		had := s.DeleteSub(raw)
		if had {
			b.store.SaveSession(s)
		}
		s.Mu.Unlock()
		if had {
			b.subs.remove(s, s.ClientID, pf.group, pf.filter)
			reasons = append(reasons, codec.Success)
		} else {
			reasons = append(reasons, codec.NoSubscriptionExisted)
		}
	}
	sc.reasons = reasons
	ack := codec.Unsuback{PacketID: p.PacketID, Reasons: append([]codec.ReasonCode(nil), reasons...)}
	v := c.version
	c.queueAck(false, func(buf []byte) []byte { return ack.Append(buf, v) }, nil)
	b.store.Commit(func(error) {})
	return nil
}
