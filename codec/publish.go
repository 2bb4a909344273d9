package codec

// PUBLISH fixed-header flag bits (§3.3.1).
const (
	pubRetain   = 0x01
	pubQoSShift = 1
	pubDup      = 0x08
)

// Decode decodes the body of a PUBLISH into p, which it resets first. The
// DUP, QoS and RETAIN flags come from h.Flags.
//
// Topic, Payload and the []byte properties alias body: they are valid as
// long as the buffer is; whatever outlives it must be copied. An empty
// Payload decodes as nil. Decode does not allocate unless it fails or has
// to grow p.Props.User or p.Props.SubscriptionIDs, which a reused value
// keeps.
//
// Checks: QoS 3 and DUP with QoS 0 [MQTT-3.3.1-2] are malformed; a topic
// with '+' or '#' fails with Reason TopicNameInvalid [MQTT-3.3.2-2]; an
// empty topic is malformed in 3.1.1 [MQTT-4.7.3-1] but accepted in MQTT 5,
// where a Topic Alias may stand for it (the broker resolves and checks the
// alias); a QoS 1 or 2 packet needs a non-zero packet id [MQTT-2.2.1-3].
// In MQTT 5, a Topic Alias of 0 fails with Reason TopicAliasInvalid
// [MQTT-3.3.2-8] (whether an alias exceeds the negotiated maximum is the
// broker's check) and a Response Topic must be a valid topic name
// [MQTT-3.3.2-14]. A Subscription Identifier is accepted in either
// direction: the broker rejects one from a client [MQTT-3.3.4-6].
func (p *Publish) Decode(h Header, body []byte, v Version) error {
	props := p.Props.arrays()
	*p = Publish{}
	p.Props.restore(props)
	if err := expectHeader(h, PUBLISH); err != nil {
		return err
	}
	p.Dup = h.Flags&pubDup != 0
	p.QoS = QoS(h.Flags>>pubQoSShift) & 3
	p.Retain = h.Flags&pubRetain != 0
	r := reader{b: body, pkt: PUBLISH}
	if p.Dup && p.QoS == QoS0 { // [MQTT-3.3.1-2]
		return r.fail("dup", MalformedPacket, "DUP set with QoS 0")
	}
	var err error
	if p.Topic, err = r.str("topic"); err != nil { // [MQTT-3.3.2-1]
		return err
	}
	if len(p.Topic) == 0 && v != V5 { // [MQTT-4.7.3-1]
		return r.fail("topic", MalformedPacket, "empty")
	}
	if hasWildcard(p.Topic) { // [MQTT-3.3.2-2]
		return r.fail("topic", TopicNameInvalid, "wildcard in a topic name")
	}
	if p.QoS > QoS0 {
		if p.PacketID, err = r.packetID(); err != nil {
			return err
		}
	}
	if v == V5 {
		if err := p.Props.decode(&r, &scopePublish); err != nil {
			return err
		}
	}
	p.Payload = r.rest()
	return nil
}

// remaining returns the body length of p and the size of its properties.
func (p *Publish) remaining(v Version) (rem, propSize int) {
	rem = 2 + len(p.Topic) + len(p.Payload)
	if p.QoS > QoS0 {
		rem += 2
	}
	if v == V5 {
		propSize = p.Props.Size()
		rem += propsFieldSize(propSize)
	}
	return rem, propSize
}

// Size returns the length of the whole encoded packet, to compare with a
// peer's Maximum Packet Size [MQTT-3.1.2-24] before encoding it.
func (p *Publish) Size(v Version) int {
	rem, _ := p.remaining(v)
	return packetSize(rem)
}

// AppendHeader appends everything of the PUBLISH packet but the payload:
// fixed header (whose remaining length counts the payload), topic, packet
// id (QoS 1 and 2 only) and, in MQTT 5, properties. The payload can then go
// out as its own vector without being copied. It does not allocate when
// dst has room for p.Size(v)-len(p.Payload) more bytes.
func (p *Publish) AppendHeader(dst []byte, v Version) []byte {
	rem, propSize := p.remaining(v)
	flags := byte(p.QoS&3) << pubQoSShift
	if p.Dup {
		flags |= pubDup
	}
	if p.Retain {
		flags |= pubRetain
	}
	dst = appendFixedHeader(dst, PUBLISH, flags, rem)
	dst = appendBinary(dst, p.Topic)
	if p.QoS > QoS0 {
		dst = appendU16(dst, p.PacketID)
	}
	if v == V5 {
		dst = appendProps(dst, &p.Props, propSize)
	}
	return dst
}

// Append appends the whole PUBLISH packet: AppendHeader and the payload.
func (p *Publish) Append(dst []byte, v Version) []byte {
	return append(p.AppendHeader(dst, v), p.Payload...)
}
