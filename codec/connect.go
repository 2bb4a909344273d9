package codec

import (
	"bytes"
	"strconv"
)

// Protocol names of CONNECT (§3.1.2.1).
var (
	nameMQTT   = []byte("MQTT")   // 3.1.1 and 5
	nameMQIsdp = []byte("MQIsdp") // 3.1
)

// CONNECT flag bits (§3.1.2.3).
const (
	connReserved     = 0x01
	connCleanStart   = 0x02
	connWillFlag     = 0x04
	connWillQoSShift = 3
	connWillRetain   = 0x20
	connPasswordFlag = 0x40
	connUsernameFlag = 0x80
)

// Decode decodes the body of a CONNECT packet (buf[n:n+h.Remaining] after
// ParseHeader) into p, which it resets first; the version comes from the
// packet itself: "MQTT" with level 4 or 5, or "MQIsdp" with level 3.
//
// A known protocol name with another level fails with Reason
// UnsupportedProtocolVersion (Field "protocol version") and leaves
// p.ProtocolName and p.Version as sent, so the broker can answer CONNACK
// 0x01 (3.1.1) or 0x84 (5) [MQTT-3.1.2-2]. An unknown protocol name is a
// MalformedPacket (Field "protocol name"): the server may simply close
// [MQTT-3.1.2-1].
//
// The []byte fields alias body. Decode does not allocate unless it fails or
// has to grow the User slices of p.Props or p.WillProps.
func (p *Connect) Decode(body []byte) error {
	props, willProps := p.Props.arrays(), p.WillProps.arrays()
	*p = Connect{}
	p.Props.restore(props)
	p.WillProps.restore(willProps)
	r := reader{b: body, pkt: CONNECT}

	name, err := r.str("protocol name")
	if err != nil {
		return err
	}
	level, err := r.u8("protocol version")
	if err != nil {
		return err
	}
	p.ProtocolName, p.Version = name, Version(level)
	switch {
	case bytes.Equal(name, nameMQTT):
		if p.Version != V311 && p.Version != V5 {
			return r.fail("protocol version", UnsupportedProtocolVersion, "MQTT level "+strconv.Itoa(int(level)))
		}
	case bytes.Equal(name, nameMQIsdp):
		if p.Version != V31 {
			return r.fail("protocol version", UnsupportedProtocolVersion, "MQIsdp level "+strconv.Itoa(int(level)))
		}
	default:
		return r.fail("protocol name", MalformedPacket, "unknown protocol") // [MQTT-3.1.2-1]
	}
	v5 := p.Version == V5

	flags, err := r.u8("connect flags")
	if err != nil {
		return err
	}
	if flags&connReserved != 0 { // [MQTT-3.1.2-3]
		return r.fail("connect flags", MalformedPacket, "reserved bit set")
	}
	p.CleanStart = flags&connCleanStart != 0
	p.WillFlag = flags&connWillFlag != 0
	p.WillQoS = QoS(flags>>connWillQoSShift) & 3
	p.WillRetain = flags&connWillRetain != 0
	p.PasswordFlag = flags&connPasswordFlag != 0
	p.UsernameFlag = flags&connUsernameFlag != 0
	switch {
	case p.WillQoS == 3: // 3.1.1 [MQTT-3.1.2-14], 5 [MQTT-3.1.2-12]
		return r.fail("will qos", MalformedPacket, "QoS 3")
	case !p.WillFlag && p.WillQoS != 0: // 3.1.1 [MQTT-3.1.2-13], 5 [MQTT-3.1.2-11]
		return r.fail("will qos", MalformedPacket, "set without the will flag")
	case !p.WillFlag && p.WillRetain: // 3.1.1 [MQTT-3.1.2-15], 5 [MQTT-3.1.2-13]
		return r.fail("will retain", MalformedPacket, "set without the will flag")
	case !v5 && p.PasswordFlag && !p.UsernameFlag: // 3.1.1 [MQTT-3.1.2-22]; 5 allows it
		return r.fail("password flag", MalformedPacket, "set without the username flag")
	}
	if p.KeepAlive, err = r.u16("keep alive"); err != nil {
		return err
	}
	if v5 {
		if err := p.Props.decode(&r, &scopeConnect); err != nil {
			return err
		}
		if err := checkAuthProps(&p.Props, CONNECT); err != nil {
			return err
		}
	}

	// Payload (§3.1.3): client id, will, username, password, in this order.
	if p.ClientID, err = r.str("client id"); err != nil { // [MQTT-3.1.3-4]
		return err
	}
	if p.WillFlag {
		if v5 {
			if err := p.WillProps.decode(&r, &scopeWill); err != nil {
				return err
			}
		}
		if p.WillTopic, err = r.str("will topic"); err != nil {
			return err
		}
		if len(p.WillTopic) == 0 { // a Topic Name has at least one character [MQTT-4.7.3-1]
			return r.fail("will topic", MalformedPacket, "empty")
		}
		if hasWildcard(p.WillTopic) { // [MQTT-3.3.2-2]
			return r.fail("will topic", TopicNameInvalid, "wildcard in a topic name")
		}
		if p.WillPayload, err = r.binary("will payload"); err != nil {
			return err
		}
	}
	if p.UsernameFlag {
		if p.Username, err = r.str("username"); err != nil {
			return err
		}
	}
	if p.PasswordFlag {
		if p.Password, err = r.binary("password"); err != nil {
			return err
		}
	}
	return r.end()
}

// Append appends p as a whole CONNECT packet in the version p.Version
// (V31 writes "MQIsdp" level 3, V311 and V5 "MQTT"; the ProtocolName field
// is not consulted). The flags come from the Flag fields; WillQoS and
// WillRetain are written only with WillFlag, the will fields only with
// WillFlag, Username only with UsernameFlag and Password only with
// PasswordFlag. Props and WillProps are written in MQTT 5 only.
func (p *Connect) Append(dst []byte) []byte {
	v5 := p.Version == V5
	name := nameMQTT
	if p.Version == V31 {
		name = nameMQIsdp
	}
	var flags byte
	if p.CleanStart {
		flags |= connCleanStart
	}
	rem := 2 + len(name) + 1 + 1 + 2 + 2 + len(p.ClientID)
	var propSize, willPropSize int
	if v5 {
		propSize = p.Props.Size()
		rem += propsFieldSize(propSize)
	}
	if p.WillFlag {
		flags |= connWillFlag | byte(p.WillQoS&3)<<connWillQoSShift
		if p.WillRetain {
			flags |= connWillRetain
		}
		if v5 {
			willPropSize = p.WillProps.Size()
			rem += propsFieldSize(willPropSize)
		}
		rem += 2 + len(p.WillTopic) + 2 + len(p.WillPayload)
	}
	if p.UsernameFlag {
		flags |= connUsernameFlag
		rem += 2 + len(p.Username)
	}
	if p.PasswordFlag {
		flags |= connPasswordFlag
		rem += 2 + len(p.Password)
	}

	dst = appendFixedHeader(dst, CONNECT, 0, rem)
	dst = appendBinary(dst, name)
	dst = append(dst, byte(p.Version), flags)
	dst = appendU16(dst, p.KeepAlive)
	if v5 {
		dst = appendProps(dst, &p.Props, propSize)
	}
	dst = appendBinary(dst, p.ClientID)
	if p.WillFlag {
		if v5 {
			dst = appendProps(dst, &p.WillProps, willPropSize)
		}
		dst = appendBinary(dst, p.WillTopic)
		dst = appendBinary(dst, p.WillPayload)
	}
	if p.UsernameFlag {
		dst = appendBinary(dst, p.Username)
	}
	if p.PasswordFlag {
		dst = appendBinary(dst, p.Password)
	}
	return dst
}

// connackReasons5 are the reason codes an MQTT 5 CONNACK may carry (§3.2.2.2).
var connackReasons5 = reasonSet(Success, UnspecifiedError, MalformedPacket, ProtocolError,
	ImplementationSpecificError, UnsupportedProtocolVersion, ClientIdentifierNotValid, BadUserNameOrPassword,
	NotAuthorized, ServerUnavailable, ServerBusy, Banned, BadAuthenticationMethod, TopicNameInvalid,
	PacketTooLarge, QuotaExceeded, PayloadFormatInvalid, RetainNotSupported, QoSNotSupported,
	UseAnotherServer, ServerMoved, ConnectionRateExceeded)

// Decode decodes the body of a CONNACK into p, which it resets first. In
// 3.1.1 the return code (0 to 5) lands in p.Reason. The []byte properties
// alias body.
func (p *Connack) Decode(h Header, body []byte, v Version) error {
	props := p.Props.arrays()
	*p = Connack{}
	p.Props.restore(props)
	if err := expectHeader(h, CONNACK); err != nil {
		return err
	}
	r := reader{b: body, pkt: CONNACK}
	flags, err := r.u8("acknowledge flags")
	if err != nil {
		return err
	}
	if flags&^1 != 0 { // [MQTT-3.2.2-1]
		return r.fail("acknowledge flags", MalformedPacket, "reserved bits set")
	}
	p.SessionPresent = flags == 1
	code, err := r.u8("reason code")
	if err != nil {
		return err
	}
	p.Reason = ReasonCode(code)
	if v == V5 {
		if !connackReasons5.has(p.Reason) {
			return r.fail("reason code", MalformedPacket, p.Reason.String()+" not valid in CONNACK")
		}
		if err := p.Props.decode(&r, &scopeConnack); err != nil {
			return err
		}
		if err := checkAuthProps(&p.Props, CONNACK); err != nil {
			return err
		}
	} else if p.Reason > ConnRefusedNotAuthorized { // 3.1.1 return codes 6-255 are reserved
		return r.fail("reason code", MalformedPacket, "reserved return code "+strconv.Itoa(int(code)))
	}
	if p.SessionPresent && p.Reason != Success { // 3.1.1 [MQTT-3.2.2-4], 5 [MQTT-3.2.2-6]
		return r.fail("acknowledge flags", ProtocolError, "session present with a refusal")
	}
	return r.end()
}

// Append appends p as a whole CONNACK packet; Props only in MQTT 5.
func (p *Connack) Append(dst []byte, v Version) []byte {
	var flags byte
	if p.SessionPresent {
		flags = 1
	}
	if v != V5 {
		return append(dst, byte(CONNACK)<<4, 2, flags, byte(p.Reason))
	}
	propSize := p.Props.Size()
	dst = appendFixedHeader(dst, CONNACK, 0, 2+propsFieldSize(propSize))
	dst = append(dst, flags, byte(p.Reason))
	return appendProps(dst, &p.Props, propSize)
}
