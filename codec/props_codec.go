package codec

import (
	"math/bits"
	"strconv"
)

// propKind is the wire type of a property's value (§2.2.2.2).
type propKind byte

const (
	kindNone   propKind = iota // not a property identifier
	kindByte                   // Byte
	kindU16                    // Two Byte Integer
	kindU32                    // Four Byte Integer
	kindVarInt                 // Variable Byte Integer (Subscription Identifier)
	kindString                 // UTF-8 Encoded String
	kindBinary                 // Binary Data
	kindPair                   // UTF-8 String Pair (User Property)
)

// propInfo describes one property identifier.
type propInfo struct {
	name string
	kind propKind
}

var propTable = [...]propInfo{
	PropPayloadFormat:        {"payload format indicator", kindByte},
	PropMessageExpiry:        {"message expiry interval", kindU32},
	PropContentType:          {"content type", kindString},
	PropResponseTopic:        {"response topic", kindString},
	PropCorrelationData:      {"correlation data", kindBinary},
	PropSubscriptionID:       {"subscription identifier", kindVarInt},
	PropSessionExpiry:        {"session expiry interval", kindU32},
	PropAssignedClientID:     {"assigned client identifier", kindString},
	PropServerKeepAlive:      {"server keep alive", kindU16},
	PropAuthMethod:           {"authentication method", kindString},
	PropAuthData:             {"authentication data", kindBinary},
	PropRequestProblemInfo:   {"request problem information", kindByte},
	PropWillDelay:            {"will delay interval", kindU32},
	PropRequestResponseInfo:  {"request response information", kindByte},
	PropResponseInfo:         {"response information", kindString},
	PropServerReference:      {"server reference", kindString},
	PropReasonString:         {"reason string", kindString},
	PropReceiveMaximum:       {"receive maximum", kindU16},
	PropTopicAliasMaximum:    {"topic alias maximum", kindU16},
	PropTopicAlias:           {"topic alias", kindU16},
	PropMaximumQoS:           {"maximum qos", kindByte},
	PropRetainAvailable:      {"retain available", kindByte},
	PropUser:                 {"user property", kindPair},
	PropMaximumPacketSize:    {"maximum packet size", kindU32},
	PropWildcardSubAvailable: {"wildcard subscription available", kindByte},
	PropSubIDAvailable:       {"subscription identifier available", kindByte},
	PropSharedSubAvailable:   {"shared subscription available", kindByte},
}

func propInfoOf(id PropID) propInfo {
	if int(id) < len(propTable) {
		return propTable[id]
	}
	return propInfo{}
}

// String returns the specification's name of the property.
func (id PropID) String() string {
	if info := propInfoOf(id); info.kind != kindNone {
		return info.name
	}
	return "property 0x" + strconv.FormatUint(uint64(id), 16)
}

func bit(id PropID) uint64 { return 1 << id }

const (
	bitPayloadFormat        = uint64(1) << PropPayloadFormat
	bitMessageExpiry        = uint64(1) << PropMessageExpiry
	bitContentType          = uint64(1) << PropContentType
	bitResponseTopic        = uint64(1) << PropResponseTopic
	bitCorrelationData      = uint64(1) << PropCorrelationData
	bitSubscriptionID       = uint64(1) << PropSubscriptionID
	bitSessionExpiry        = uint64(1) << PropSessionExpiry
	bitAssignedClientID     = uint64(1) << PropAssignedClientID
	bitServerKeepAlive      = uint64(1) << PropServerKeepAlive
	bitAuthMethod           = uint64(1) << PropAuthMethod
	bitAuthData             = uint64(1) << PropAuthData
	bitRequestProblemInfo   = uint64(1) << PropRequestProblemInfo
	bitWillDelay            = uint64(1) << PropWillDelay
	bitRequestResponseInfo  = uint64(1) << PropRequestResponseInfo
	bitResponseInfo         = uint64(1) << PropResponseInfo
	bitServerReference      = uint64(1) << PropServerReference
	bitReasonString         = uint64(1) << PropReasonString
	bitReceiveMaximum       = uint64(1) << PropReceiveMaximum
	bitTopicAliasMaximum    = uint64(1) << PropTopicAliasMaximum
	bitTopicAlias           = uint64(1) << PropTopicAlias
	bitMaximumQoS           = uint64(1) << PropMaximumQoS
	bitRetainAvailable      = uint64(1) << PropRetainAvailable
	bitUser                 = uint64(1) << PropUser
	bitMaximumPacketSize    = uint64(1) << PropMaximumPacketSize
	bitWildcardSubAvailable = uint64(1) << PropWildcardSubAvailable
	bitSubIDAvailable       = uint64(1) << PropSubIDAvailable
	bitSharedSubAvailable   = uint64(1) << PropSharedSubAvailable

	// bitsAll is every defined property.
	bitsAll = bitPayloadFormat | bitMessageExpiry | bitContentType | bitResponseTopic | bitCorrelationData |
		bitSubscriptionID | bitSessionExpiry | bitAssignedClientID | bitServerKeepAlive | bitAuthMethod |
		bitAuthData | bitRequestProblemInfo | bitWillDelay | bitRequestResponseInfo | bitResponseInfo |
		bitServerReference | bitReasonString | bitReceiveMaximum | bitTopicAliasMaximum | bitTopicAlias |
		bitMaximumQoS | bitRetainAvailable | bitUser | bitMaximumPacketSize | bitWildcardSubAvailable |
		bitSubIDAvailable | bitSharedSubAvailable

	// bitsBoolean are the Byte properties whose only values are 0 and 1
	// (Maximum QoS included: 2 is expressed by its absence).
	bitsBoolean = bitPayloadFormat | bitRequestProblemInfo | bitRequestResponseInfo | bitMaximumQoS |
		bitRetainAvailable | bitWildcardSubAvailable | bitSubIDAvailable | bitSharedSubAvailable
)

// propScope is where a property block sits: which identifiers it allows
// (the specification's table 2-4, §2.2.2.2) and how errors name it.
type propScope struct {
	pkt     Type
	allowed uint64
	prefix  string // prepended to field names: "will properties: " in will properties
	lenName string // the property length's field name
	// multiSubID: Subscription Identifier may repeat (a PUBLISH carries one
	// per matching subscription [MQTT-3.3.4-3]).
	multiSubID bool
}

var (
	scopeConnect = propScope{pkt: CONNECT, lenName: "properties length", allowed: bitSessionExpiry | bitAuthMethod |
		bitAuthData | bitRequestProblemInfo | bitRequestResponseInfo | bitReceiveMaximum |
		bitTopicAliasMaximum | bitUser | bitMaximumPacketSize}
	scopeWill = propScope{pkt: CONNECT, prefix: "will properties: ", lenName: "will properties length",
		allowed: bitPayloadFormat | bitMessageExpiry | bitContentType | bitResponseTopic | bitCorrelationData |
			bitWillDelay | bitUser}
	scopeConnack = propScope{pkt: CONNACK, lenName: "properties length", allowed: bitSessionExpiry |
		bitAssignedClientID | bitServerKeepAlive | bitAuthMethod | bitAuthData | bitResponseInfo |
		bitServerReference | bitReasonString | bitReceiveMaximum | bitTopicAliasMaximum | bitMaximumQoS |
		bitRetainAvailable | bitUser | bitMaximumPacketSize | bitWildcardSubAvailable | bitSubIDAvailable |
		bitSharedSubAvailable}
	scopePublish = propScope{pkt: PUBLISH, lenName: "properties length", multiSubID: true,
		allowed: bitPayloadFormat | bitMessageExpiry | bitContentType | bitResponseTopic | bitCorrelationData |
			bitSubscriptionID | bitTopicAlias | bitUser}
	scopeAck = [4]propScope{
		{pkt: PUBACK, lenName: "properties length", allowed: bitReasonString | bitUser},
		{pkt: PUBREC, lenName: "properties length", allowed: bitReasonString | bitUser},
		{pkt: PUBREL, lenName: "properties length", allowed: bitReasonString | bitUser},
		{pkt: PUBCOMP, lenName: "properties length", allowed: bitReasonString | bitUser},
	}
	scopeSubscribe   = propScope{pkt: SUBSCRIBE, lenName: "properties length", allowed: bitSubscriptionID | bitUser}
	scopeSuback      = propScope{pkt: SUBACK, lenName: "properties length", allowed: bitReasonString | bitUser}
	scopeUnsubscribe = propScope{pkt: UNSUBSCRIBE, lenName: "properties length", allowed: bitUser}
	scopeUnsuback    = propScope{pkt: UNSUBACK, lenName: "properties length", allowed: bitReasonString | bitUser}
	scopeDisconnect  = propScope{pkt: DISCONNECT, lenName: "properties length", allowed: bitSessionExpiry |
		bitServerReference | bitReasonString | bitUser}
	scopeAuth = propScope{pkt: AUTH, lenName: "properties length", allowed: bitAuthMethod | bitAuthData |
		bitReasonString | bitUser}
)

// propArrays holds the backing arrays of a Properties' slices across a
// reset, so that decoding into a reused value does not allocate.
type propArrays struct {
	user []UserProperty
	ids  []uint32
}

// arrays returns p's slices emptied, for restore after p is zeroed.
func (p *Properties) arrays() propArrays {
	return propArrays{user: p.User[:0], ids: p.SubscriptionIDs[:0]}
}

func (p *Properties) restore(a propArrays) { p.User, p.SubscriptionIDs = a.user, a.ids }

// bytePtr, u16Ptr, u32Ptr and bytesPtr return the value field of a property
// of that kind, nil for any other identifier.
func (p *Properties) bytePtr(id PropID) *byte {
	switch id {
	case PropPayloadFormat:
		return &p.PayloadFormat
	case PropRequestProblemInfo:
		return &p.RequestProblemInfo
	case PropRequestResponseInfo:
		return &p.RequestResponseInfo
	case PropMaximumQoS:
		return &p.MaximumQoS
	case PropRetainAvailable:
		return &p.RetainAvailable
	case PropWildcardSubAvailable:
		return &p.WildcardSubAvailable
	case PropSubIDAvailable:
		return &p.SubIDAvailable
	case PropSharedSubAvailable:
		return &p.SharedSubAvailable
	}
	return nil
}

func (p *Properties) u16Ptr(id PropID) *uint16 {
	switch id {
	case PropServerKeepAlive:
		return &p.ServerKeepAlive
	case PropReceiveMaximum:
		return &p.ReceiveMaximum
	case PropTopicAliasMaximum:
		return &p.TopicAliasMaximum
	case PropTopicAlias:
		return &p.TopicAlias
	}
	return nil
}

func (p *Properties) u32Ptr(id PropID) *uint32 {
	switch id {
	case PropMessageExpiry:
		return &p.MessageExpiry
	case PropSessionExpiry:
		return &p.SessionExpiry
	case PropWillDelay:
		return &p.WillDelay
	case PropMaximumPacketSize:
		return &p.MaximumPacketSize
	}
	return nil
}

func (p *Properties) bytesPtr(id PropID) *[]byte {
	switch id {
	case PropContentType:
		return &p.ContentType
	case PropResponseTopic:
		return &p.ResponseTopic
	case PropCorrelationData:
		return &p.CorrelationData
	case PropAssignedClientID:
		return &p.AssignedClientID
	case PropAuthMethod:
		return &p.AuthMethod
	case PropAuthData:
		return &p.AuthData
	case PropResponseInfo:
		return &p.ResponseInfo
	case PropServerReference:
		return &p.ServerReference
	case PropReasonString:
		return &p.ReasonString
	}
	return nil
}

// encodedMask is the set of properties the encoder writes: the present
// scalar and []byte properties, and User Property and Subscription
// Identifier whenever their slices are non-empty (their presence bits are
// informational on encode).
func (p *Properties) encodedMask() uint64 {
	m := p.Present & bitsAll &^ (bitUser | bitSubscriptionID)
	if len(p.SubscriptionIDs) > 0 {
		m |= bitSubscriptionID
	}
	if len(p.User) > 0 {
		m |= bitUser
	}
	return m
}

// Size returns the encoded length of the properties without the property
// length prefix that precedes them: 0 when there are none.
func (p *Properties) Size() int {
	n := 0
	for m := p.encodedMask(); m != 0; m &= m - 1 {
		id := PropID(bits.TrailingZeros64(m))
		switch propTable[id].kind {
		case kindByte:
			n += 2
		case kindU16:
			n += 3
		case kindU32:
			n += 5
		case kindString, kindBinary:
			n += 3 + len(*p.bytesPtr(id))
		case kindVarInt:
			for _, s := range p.SubscriptionIDs {
				n += 1 + VarIntSize(int(s))
			}
		case kindPair:
			for _, u := range p.User {
				n += 5 + len(u.Key) + len(u.Value)
			}
		}
	}
	return n
}

// appendProps appends the property length (size, from p.Size) and the
// properties in ascending identifier order (any order is valid, §2.2.2).
// Every encoded property is written, whatever the packet: choosing the
// properties that belong in a packet is the caller's job.
func appendProps(dst []byte, p *Properties, size int) []byte {
	dst = AppendVarInt(dst, size)
	for m := p.encodedMask(); m != 0; m &= m - 1 {
		id := PropID(bits.TrailingZeros64(m))
		switch propTable[id].kind {
		case kindByte:
			dst = append(dst, byte(id), *p.bytePtr(id))
		case kindU16:
			dst = appendU16(append(dst, byte(id)), *p.u16Ptr(id))
		case kindU32:
			dst = appendU32(append(dst, byte(id)), *p.u32Ptr(id))
		case kindString, kindBinary:
			dst = appendBinary(append(dst, byte(id)), *p.bytesPtr(id))
		case kindVarInt:
			for _, s := range p.SubscriptionIDs {
				dst = AppendVarInt(append(dst, byte(id)), int(s))
			}
		case kindPair:
			for _, u := range p.User {
				dst = appendBinary(append(dst, byte(id)), u.Key)
				dst = appendBinary(dst, u.Value)
			}
		}
	}
	return dst
}

// propsFieldSize is the encoded length of a property block of size bytes,
// its length prefix included.
func propsFieldSize(size int) int { return VarIntSize(size) + size }

// decode reads a property length and the properties it spans into p,
// which must be reset (the packet decoders reset it with the packet),
// checking each identifier against sc
// (§2.2.2.2), repetitions and the values the
// specification constrains. It allocates only to grow p.User and
// p.SubscriptionIDs.
func (p *Properties) decode(r *reader, sc *propScope) error {
	n, err := r.varint(sc.lenName)
	if err != nil {
		return err
	}
	if n > len(r.b) {
		return r.fail(sc.lenName, MalformedPacket, strconv.Itoa(n)+" exceeds the packet")
	}
	pr := reader{b: r.b[:n:n], pkt: r.pkt, prefix: sc.prefix}
	r.b = r.b[n:]
	for len(pr.b) > 0 {
		// An identifier is a Variable Byte Integer, but every defined one
		// is a single byte: a longer one is unknown anyway.
		id := PropID(pr.b[0])
		pr.b = pr.b[1:]
		info := propInfoOf(id)
		if info.kind == kindNone || sc.allowed&bit(id) == 0 {
			return pr.fail("property identifier", MalformedPacket, id.String()+" not allowed in "+sc.pkt.String())
		}
		if p.Present&bit(id) != 0 && id != PropUser && (id != PropSubscriptionID || !sc.multiSubID) {
			return pr.fail(info.name, ProtocolError, "included more than once") // §2.2.2.2
		}
		p.Present |= bit(id)
		if err := p.decodeValue(&pr, id, info); err != nil {
			return err
		}
	}
	return nil
}

// decodeValue reads the value of property id.
func (p *Properties) decodeValue(pr *reader, id PropID, info propInfo) error {
	switch info.kind {
	case kindByte:
		v, err := pr.u8(info.name)
		if err != nil {
			return err
		}
		if bit(id)&bitsBoolean != 0 && v > 1 {
			return pr.fail(info.name, ProtocolError, "must be 0 or 1, got "+strconv.Itoa(int(v)))
		}
		*p.bytePtr(id) = v
	case kindU16:
		v, err := pr.u16(info.name)
		if err != nil {
			return err
		}
		switch {
		case id == PropReceiveMaximum && v == 0: // §3.1.2.11.3, §3.2.2.3.3
			return pr.fail(info.name, ProtocolError, "0")
		case id == PropTopicAlias && v == 0: // [MQTT-3.3.2-8]
			return pr.fail(info.name, TopicAliasInvalid, "0")
		}
		*p.u16Ptr(id) = v
	case kindU32:
		v, err := pr.u32(info.name)
		if err != nil {
			return err
		}
		if id == PropMaximumPacketSize && v == 0 { // §3.1.2.11.4, §3.2.2.3.6
			return pr.fail(info.name, ProtocolError, "0")
		}
		*p.u32Ptr(id) = v
	case kindString, kindBinary:
		var v []byte
		var err error
		if info.kind == kindString {
			v, err = pr.str(info.name)
		} else {
			v, err = pr.binary(info.name)
		}
		if err != nil {
			return err
		}
		// The Response Topic is a Topic Name [MQTT-3.3.2-13], [MQTT-3.3.2-14].
		if id == PropResponseTopic && (len(v) == 0 || hasWildcard(v)) {
			return pr.fail(info.name, ProtocolError, "not a valid topic name")
		}
		*p.bytesPtr(id) = v
	case kindVarInt:
		v, err := pr.varint(info.name)
		if err != nil {
			return err
		}
		if v == 0 { // §3.8.2.1.2: 1 to 268,435,455
			return pr.fail(info.name, ProtocolError, "0")
		}
		p.SubscriptionIDs = append(p.SubscriptionIDs, uint32(v))
	case kindPair:
		k, err := pr.str("user property name")
		if err != nil {
			return err
		}
		v, err := pr.str("user property value")
		if err != nil {
			return err
		}
		p.User = append(p.User, UserProperty{Key: k, Value: v})
	}
	return nil
}

// checkAuthProps enforces that Authentication Data comes with an
// Authentication Method (§3.1.2.11.10), (§3.2.2.3.18), (§3.15.2.2.3).
func checkAuthProps(p *Properties, pkt Type) error {
	if p.Has(PropAuthData) && !p.Has(PropAuthMethod) {
		return &MalformedError{Packet: pkt, Field: PropAuthData.String(), Reason: ProtocolError,
			Msg: "without an authentication method"}
	}
	return nil
}
