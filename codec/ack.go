package codec

// Reason codes each acknowledgement may carry in MQTT 5 (§3.4.2.1,
// §3.5.2.1, §3.6.2.1, §3.7.2.1).
var (
	pubackReasons = reasonSet(Success, NoMatchingSubscribers, UnspecifiedError, ImplementationSpecificError,
		NotAuthorized, TopicNameInvalid, PacketIdentifierInUse, QuotaExceeded, PayloadFormatInvalid)
	pubrelReasons = reasonSet(Success, PacketIdentifierNotFound)
)

// Decode decodes the body of a PUBACK, PUBREC, PUBREL or PUBCOMP into p,
// which it resets first; p.Kind is set from h.Type. In 3.1.1 the body is the
// packet id alone. In MQTT 5 the reason code may be omitted (remaining
// length 2: Success) and so may the property length (remaining length 3)
// (§3.4.2.1). The []byte properties alias body.
func (p *Ack) Decode(h Header, body []byte, v Version) error {
	props := p.Props.arrays()
	*p = Ack{}
	p.Props.restore(props)
	if h.Type < PUBACK || h.Type > PUBCOMP {
		return &MalformedError{Packet: h.Type, Field: "packet type", Reason: MalformedPacket,
			Msg: "not an acknowledgement"}
	}
	if err := checkFixedHeader(h); err != nil {
		return err
	}
	p.Kind = h.Type
	r := reader{b: body, pkt: h.Type}
	var err error
	if p.PacketID, err = r.packetID(); err != nil {
		return err
	}
	if v != V5 || len(r.b) == 0 {
		return r.end()
	}
	code, _ := r.u8("reason code") // r.b is not empty
	p.Reason = ReasonCode(code)
	valid := &pubackReasons
	if p.Kind == PUBREL || p.Kind == PUBCOMP {
		valid = &pubrelReasons
	}
	if !valid.has(p.Reason) {
		return r.fail("reason code", MalformedPacket, p.Reason.String()+" not valid in "+p.Kind.String())
	}
	if len(r.b) == 0 {
		return nil
	}
	if err := p.Props.decode(&r, &scopeAck[p.Kind-PUBACK]); err != nil {
		return err
	}
	return r.end()
}

// Append appends p as a whole packet of type p.Kind, which must be PUBACK,
// PUBREC, PUBREL or PUBCOMP. MQTT 5 uses the shortest form: the packet id
// alone for Success without properties, no property length when there are
// no properties (§3.4.2.1).
func (p *Ack) Append(dst []byte, v Version) []byte {
	first := byte(p.Kind)<<4 | fixedFlags[p.Kind&15]
	if v != V5 {
		return append(dst, first, 2, byte(p.PacketID>>8), byte(p.PacketID))
	}
	propSize := p.Props.Size()
	switch {
	case propSize == 0 && p.Reason == Success:
		return append(dst, first, 2, byte(p.PacketID>>8), byte(p.PacketID))
	case propSize == 0:
		return append(dst, first, 3, byte(p.PacketID>>8), byte(p.PacketID), byte(p.Reason))
	}
	dst = appendFixedHeader(dst, p.Kind, fixedFlags[p.Kind&15], 3+propsFieldSize(propSize))
	dst = append(dst, byte(p.PacketID>>8), byte(p.PacketID), byte(p.Reason))
	return appendProps(dst, &p.Props, propSize)
}
