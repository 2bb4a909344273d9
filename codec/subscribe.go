package codec

import "strconv"

// Subscription Options bits (§3.8.3.1).
const (
	subQoSMask           = 0x03
	subNoLocal           = 0x04
	subRetainAsPublished = 0x08
	subRetainShift       = 4
	subReserved311       = 0xfc // 3.1.1: all but QoS [MQTT-3.8.3-4]
	subReserved5         = 0xc0 // 5: bits 6 and 7 [MQTT-3.8.3-5]
)

// Reason codes of SUBACK and UNSUBACK (§3.9.3, §3.11.3). The 3.1.1 SUBACK
// return codes are the first four of the MQTT 5 set.
var (
	subackReasons311 = reasonSet(Success, GrantedQoS1, GrantedQoS2, SubackFailure)
	subackReasons5   = reasonSet(Success, GrantedQoS1, GrantedQoS2, UnspecifiedError,
		ImplementationSpecificError, NotAuthorized, TopicFilterInvalid, PacketIdentifierInUse, QuotaExceeded,
		SharedSubscriptionsNotSupported, SubscriptionIdentifiersNotSupported, WildcardSubscriptionsNotSupported)
	unsubackReasons5 = reasonSet(Success, NoSubscriptionExisted, UnspecifiedError, ImplementationSpecificError,
		NotAuthorized, TopicFilterInvalid, PacketIdentifierInUse)
)

// Decode decodes the body of a SUBSCRIBE into p, which it resets first. It
// appends to p.Subs from length 0, so a reused value decodes without
// allocating; the filters and []byte properties alias body.
//
// The payload needs at least one filter (Reason ProtocolError)
// [MQTT-3.8.3-3]. Each filter must be a non-empty UTF-8 string
// [MQTT-4.7.3-1]; its options must have the reserved bits clear (3.1.1:
// bits 2-7, 5: bits 6-7) and a QoS below 3 [MQTT-3.8.3-4], and Retain
// Handling 3 is a ProtocolError (§3.8.3.1). Wildcard placement and the
// broker's own topic rules are left to the broker, which answers them per
// filter in the SUBACK.
func (p *Subscribe) Decode(h Header, body []byte, v Version) error {
	props, list := p.Props.arrays(), p.Subs[:0]
	*p = Subscribe{Subs: list}
	p.Props.restore(props)
	if err := expectHeader(h, SUBSCRIBE); err != nil {
		return err
	}
	r := reader{b: body, pkt: SUBSCRIBE}
	var err error
	if p.PacketID, err = r.packetID(); err != nil {
		return err
	}
	reserved := byte(subReserved311)
	if v == V5 {
		if err := p.Props.decode(&r, &scopeSubscribe); err != nil {
			return err
		}
		reserved = subReserved5
	}
	if len(r.b) == 0 { // [MQTT-3.8.3-3]
		return r.fail("topic filters", ProtocolError, "no topic filter")
	}
	for len(r.b) > 0 {
		var s Subscription
		if s.Filter, err = r.str("topic filter"); err != nil {
			return err
		}
		if len(s.Filter) == 0 { // [MQTT-4.7.3-1]
			return r.fail("topic filter", MalformedPacket, "empty")
		}
		opts, err := r.u8("subscription options")
		if err != nil {
			return err
		}
		if opts&reserved != 0 {
			return r.fail("subscription options", MalformedPacket,
				"reserved bits set: 0x"+strconv.FormatUint(uint64(opts), 16))
		}
		s.QoS = QoS(opts & subQoSMask)
		if s.QoS == 3 {
			return r.fail("subscription options", MalformedPacket, "QoS 3")
		}
		s.NoLocal = opts&subNoLocal != 0
		s.RetainAsPublished = opts&subRetainAsPublished != 0
		s.RetainHandling = opts >> subRetainShift & 3
		if s.RetainHandling == 3 { // §3.8.3.1
			return r.fail("subscription options", ProtocolError, "retain handling 3")
		}
		p.Subs = append(p.Subs, s)
	}
	return nil
}

// Append appends p as a whole SUBSCRIBE packet. In 3.1.1 only each
// subscription's QoS is written to its options byte; Props only in MQTT 5.
func (p *Subscribe) Append(dst []byte, v Version) []byte {
	rem := 2
	propSize := 0
	if v == V5 {
		propSize = p.Props.Size()
		rem += propsFieldSize(propSize)
	}
	for i := range p.Subs {
		rem += 2 + len(p.Subs[i].Filter) + 1
	}
	dst = appendFixedHeader(dst, SUBSCRIBE, fixedFlags[SUBSCRIBE], rem)
	dst = appendU16(dst, p.PacketID)
	if v == V5 {
		dst = appendProps(dst, &p.Props, propSize)
	}
	for i := range p.Subs {
		s := &p.Subs[i]
		opts := byte(s.QoS) & subQoSMask
		if v == V5 {
			if s.NoLocal {
				opts |= subNoLocal
			}
			if s.RetainAsPublished {
				opts |= subRetainAsPublished
			}
			opts |= (s.RetainHandling & 3) << subRetainShift
		}
		dst = appendBinary(dst, s.Filter)
		dst = append(dst, opts)
	}
	return dst
}

// decodeReasons appends the reason codes filling the rest of r to dst,
// checking each against valid; at least one is required (one per filter of
// the request, which has at least one).
func decodeReasons(r *reader, dst []ReasonCode, valid *reasonBits) ([]ReasonCode, error) {
	if len(r.b) == 0 {
		return dst, r.fail("reason codes", MalformedPacket, "none")
	}
	for _, c := range r.b {
		rc := ReasonCode(c)
		if !valid.has(rc) {
			return dst, r.fail("reason codes", MalformedPacket, rc.String()+" not valid in "+r.pkt.String())
		}
		dst = append(dst, rc)
	}
	r.b = nil
	return dst, nil
}

func appendReasons(dst []byte, reasons []ReasonCode) []byte {
	for _, rc := range reasons {
		dst = append(dst, byte(rc))
	}
	return dst
}

// Decode decodes the body of a SUBACK into p, which it resets first,
// appending to p.Reasons from length 0. In 3.1.1 the codes are 0x00, 0x01,
// 0x02 and 0x80 [MQTT-3.9.3-2].
func (p *Suback) Decode(h Header, body []byte, v Version) error {
	props, list := p.Props.arrays(), p.Reasons[:0]
	*p = Suback{Reasons: list}
	p.Props.restore(props)
	if err := expectHeader(h, SUBACK); err != nil {
		return err
	}
	r := reader{b: body, pkt: SUBACK}
	var err error
	if p.PacketID, err = r.packetID(); err != nil {
		return err
	}
	valid := &subackReasons311
	if v == V5 {
		if err := p.Props.decode(&r, &scopeSuback); err != nil {
			return err
		}
		valid = &subackReasons5
	}
	p.Reasons, err = decodeReasons(&r, p.Reasons, valid)
	return err
}

// Append appends p as a whole SUBACK packet; Props only in MQTT 5.
func (p *Suback) Append(dst []byte, v Version) []byte {
	rem := 2 + len(p.Reasons)
	propSize := 0
	if v == V5 {
		propSize = p.Props.Size()
		rem += propsFieldSize(propSize)
	}
	dst = appendFixedHeader(dst, SUBACK, 0, rem)
	dst = appendU16(dst, p.PacketID)
	if v == V5 {
		dst = appendProps(dst, &p.Props, propSize)
	}
	return appendReasons(dst, p.Reasons)
}

// Decode decodes the body of an UNSUBSCRIBE into p, which it resets first,
// appending to p.Filters from length 0; the filters alias body. At least
// one filter is required (Reason ProtocolError) [MQTT-3.10.3-2], each a
// non-empty UTF-8 string [MQTT-4.7.3-1].
func (p *Unsubscribe) Decode(h Header, body []byte, v Version) error {
	props, list := p.Props.arrays(), p.Filters[:0]
	*p = Unsubscribe{Filters: list}
	p.Props.restore(props)
	if err := expectHeader(h, UNSUBSCRIBE); err != nil {
		return err
	}
	r := reader{b: body, pkt: UNSUBSCRIBE}
	var err error
	if p.PacketID, err = r.packetID(); err != nil {
		return err
	}
	if v == V5 {
		if err := p.Props.decode(&r, &scopeUnsubscribe); err != nil {
			return err
		}
	}
	if len(r.b) == 0 { // [MQTT-3.10.3-2]
		return r.fail("topic filters", ProtocolError, "no topic filter")
	}
	for len(r.b) > 0 {
		f, err := r.str("topic filter")
		if err != nil {
			return err
		}
		if len(f) == 0 { // [MQTT-4.7.3-1]
			return r.fail("topic filter", MalformedPacket, "empty")
		}
		p.Filters = append(p.Filters, f)
	}
	return nil
}

// Append appends p as a whole UNSUBSCRIBE packet; Props only in MQTT 5.
func (p *Unsubscribe) Append(dst []byte, v Version) []byte {
	rem := 2
	propSize := 0
	if v == V5 {
		propSize = p.Props.Size()
		rem += propsFieldSize(propSize)
	}
	for _, f := range p.Filters {
		rem += 2 + len(f)
	}
	dst = appendFixedHeader(dst, UNSUBSCRIBE, fixedFlags[UNSUBSCRIBE], rem)
	dst = appendU16(dst, p.PacketID)
	if v == V5 {
		dst = appendProps(dst, &p.Props, propSize)
	}
	for _, f := range p.Filters {
		dst = appendBinary(dst, f)
	}
	return dst
}

// Decode decodes the body of an UNSUBACK into p, which it resets first. A
// 3.1.1 UNSUBACK is the packet id alone; an MQTT 5 one adds properties and
// one reason code per filter, appended to p.Reasons from length 0.
func (p *Unsuback) Decode(h Header, body []byte, v Version) error {
	props, list := p.Props.arrays(), p.Reasons[:0]
	*p = Unsuback{Reasons: list}
	p.Props.restore(props)
	if err := expectHeader(h, UNSUBACK); err != nil {
		return err
	}
	r := reader{b: body, pkt: UNSUBACK}
	var err error
	if p.PacketID, err = r.packetID(); err != nil {
		return err
	}
	if v != V5 {
		return r.end()
	}
	if err := p.Props.decode(&r, &scopeUnsuback); err != nil {
		return err
	}
	p.Reasons, err = decodeReasons(&r, p.Reasons, &unsubackReasons5)
	return err
}

// Append appends p as a whole UNSUBACK packet. In 3.1.1 it is the packet id
// alone: Props and Reasons are not written.
func (p *Unsuback) Append(dst []byte, v Version) []byte {
	if v != V5 {
		return append(dst, byte(UNSUBACK)<<4, 2, byte(p.PacketID>>8), byte(p.PacketID))
	}
	propSize := p.Props.Size()
	dst = appendFixedHeader(dst, UNSUBACK, 0, 2+propsFieldSize(propSize)+len(p.Reasons))
	dst = appendU16(dst, p.PacketID)
	dst = appendProps(dst, &p.Props, propSize)
	return appendReasons(dst, p.Reasons)
}
