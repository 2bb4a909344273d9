package codec

// Reason codes of DISCONNECT and AUTH (§3.14.2.1, §3.15.2.1).
var (
	disconnectReasons = reasonSet(Success, DisconnectWithWill, UnspecifiedError, MalformedPacket, ProtocolError,
		ImplementationSpecificError, NotAuthorized, ServerBusy, ServerShuttingDown, KeepAliveTimeout,
		SessionTakenOver, TopicFilterInvalid, TopicNameInvalid, ReceiveMaximumExceeded, TopicAliasInvalid,
		PacketTooLarge, MessageRateTooHigh, QuotaExceeded, AdministrativeAction, PayloadFormatInvalid,
		RetainNotSupported, QoSNotSupported, UseAnotherServer, ServerMoved, SharedSubscriptionsNotSupported,
		ConnectionRateExceeded, MaximumConnectTime, SubscriptionIdentifiersNotSupported,
		WildcardSubscriptionsNotSupported)
	authReasons = reasonSet(Success, ContinueAuthentication, ReAuthenticate)
)

// Decode decodes the body of a DISCONNECT into p, which it resets first.
// A 3.1.1 DISCONNECT has no body [MQTT-3.14.1-1]. In MQTT 5 an empty body
// means Success (normal disconnection) and a one-byte body a reason code
// without properties (§3.14.2.1). The []byte properties alias body.
func (p *Disconnect) Decode(h Header, body []byte, v Version) error {
	props := p.Props.arrays()
	*p = Disconnect{}
	p.Props.restore(props)
	if err := expectHeader(h, DISCONNECT); err != nil {
		return err
	}
	r := reader{b: body, pkt: DISCONNECT}
	if v != V5 || len(r.b) == 0 {
		return r.end()
	}
	code, _ := r.u8("reason code") // r.b is not empty
	p.Reason = ReasonCode(code)
	if !disconnectReasons.has(p.Reason) {
		return r.fail("reason code", MalformedPacket, p.Reason.String()+" not valid in DISCONNECT")
	}
	if len(r.b) == 0 {
		return nil
	}
	if err := p.Props.decode(&r, &scopeDisconnect); err != nil {
		return err
	}
	return r.end()
}

// Append appends p as a whole DISCONNECT packet. 3.1.1: e0 00. MQTT 5 uses
// the shortest form: no body for Success without properties, the reason
// code alone when there are no properties.
func (p *Disconnect) Append(dst []byte, v Version) []byte {
	if v != V5 {
		return append(dst, byte(DISCONNECT)<<4, 0)
	}
	propSize := p.Props.Size()
	switch {
	case propSize == 0 && p.Reason == Success:
		return append(dst, byte(DISCONNECT)<<4, 0)
	case propSize == 0:
		return append(dst, byte(DISCONNECT)<<4, 1, byte(p.Reason))
	}
	dst = appendFixedHeader(dst, DISCONNECT, 0, 1+propsFieldSize(propSize))
	dst = append(dst, byte(p.Reason))
	return appendProps(dst, &p.Props, propSize)
}

// Decode decodes the body of an AUTH into p, which it resets first. AUTH
// exists in MQTT 5 only: with any other v it is malformed. An empty body
// means Success; otherwise the reason code is followed by the properties
// (§3.15.2). The []byte properties alias body.
func (p *Auth) Decode(h Header, body []byte, v Version) error {
	props := p.Props.arrays()
	*p = Auth{}
	p.Props.restore(props)
	if err := expectHeader(h, AUTH); err != nil {
		return err
	}
	r := reader{b: body, pkt: AUTH}
	if v != V5 {
		return r.fail("packet type", MalformedPacket, "AUTH before MQTT 5")
	}
	if len(r.b) == 0 {
		return nil
	}
	code, _ := r.u8("reason code") // r.b is not empty
	p.Reason = ReasonCode(code)
	if !authReasons.has(p.Reason) {
		return r.fail("reason code", MalformedPacket, p.Reason.String()+" not valid in AUTH")
	}
	if err := p.Props.decode(&r, &scopeAuth); err != nil {
		return err
	}
	if err := checkAuthProps(&p.Props, AUTH); err != nil {
		return err
	}
	return r.end()
}

// Append appends p as a whole AUTH packet, which exists in MQTT 5 only (v is
// accepted for symmetry and not consulted). Success without properties is
// the empty form (§3.15.2.1).
func (p *Auth) Append(dst []byte, v Version) []byte {
	propSize := p.Props.Size()
	if propSize == 0 && p.Reason == Success {
		return append(dst, byte(AUTH)<<4, 0)
	}
	dst = appendFixedHeader(dst, AUTH, 0, 1+propsFieldSize(propSize))
	dst = append(dst, byte(p.Reason))
	return appendProps(dst, &p.Props, propSize)
}

// AppendPingreq appends a PINGREQ packet: c0 00 (§3.12).
func AppendPingreq(dst []byte) []byte { return append(dst, byte(PINGREQ)<<4, 0) }

// AppendPingresp appends a PINGRESP packet: d0 00 (§3.13).
func AppendPingresp(dst []byte) []byte { return append(dst, byte(PINGRESP)<<4, 0) }
