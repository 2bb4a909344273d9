package codec

import (
	"testing"
)

// frame builds a packet from its first byte and body, computing the
// remaining length, so malformed cases show only the bytes that matter.
func frame(first byte, body ...byte) []byte {
	return append(AppendVarInt([]byte{first}, len(body)), body...)
}

// cat joins byte slices.
func cat(parts ...[]byte) []byte {
	var out []byte
	for _, p := range parts {
		out = append(out, p...)
	}
	return out
}

var (
	mqtt4 = []byte{0x00, 0x04, 'M', 'Q', 'T', 'T', 0x04} // protocol name and level 4
	mqtt5 = []byte{0x00, 0x04, 'M', 'Q', 'T', 'T', 0x05} // protocol name and level 5
	id1   = []byte{0x00, 0x01, 'c'}                      // client id "c"
	ka    = []byte{0x00, 0x3c}                           // keep alive 60
)

type malformedCase struct {
	name   string
	v      Version
	raw    []byte
	pkt    Type
	field  string
	reason ReasonCode
}

var malformedCases = []malformedCase{
	// CONNECT
	{"CONNECT unknown protocol name", V311, frame(0x10, cat([]byte{0x00, 0x04, 'M', 'Q', 'T', 'X', 0x04, 0x02}, ka,
		id1)...), CONNECT, "protocol name", MalformedPacket},
	{"CONNECT MQTT level 3", V311, frame(0x10, cat([]byte{0x00, 0x04, 'M', 'Q', 'T', 'T', 0x03, 0x02}, ka, id1)...),
		CONNECT, "protocol version", UnsupportedProtocolVersion},
	{"CONNECT MQTT level 6", V311, frame(0x10, cat([]byte{0x00, 0x04, 'M', 'Q', 'T', 'T', 0x06, 0x02}, ka, id1)...),
		CONNECT, "protocol version", UnsupportedProtocolVersion},
	{"CONNECT MQIsdp level 4", V311, frame(0x10, cat([]byte{0x00, 0x06, 'M', 'Q', 'I', 's', 'd', 'p', 0x04, 0x02},
		ka, id1)...), CONNECT, "protocol version", UnsupportedProtocolVersion},
	{"CONNECT truncated protocol name", V311, frame(0x10, 0x00, 0x04, 'M', 'Q'), CONNECT, "protocol name",
		MalformedPacket},
	{"CONNECT missing level", V311, frame(0x10, 0x00, 0x04, 'M', 'Q', 'T', 'T'), CONNECT, "protocol version",
		MalformedPacket},
	{"CONNECT reserved flag", V311, frame(0x10, cat(mqtt4, []byte{0x03}, ka, id1)...), CONNECT, "connect flags",
		MalformedPacket},
	{"CONNECT will QoS 3", V311, frame(0x10, cat(mqtt4, []byte{0x1e}, ka, id1)...), CONNECT, "will qos",
		MalformedPacket},
	{"CONNECT will QoS without will", V311, frame(0x10, cat(mqtt4, []byte{0x0a}, ka, id1)...), CONNECT, "will qos",
		MalformedPacket},
	{"CONNECT will retain without will", V311, frame(0x10, cat(mqtt4, []byte{0x22}, ka, id1)...), CONNECT,
		"will retain", MalformedPacket},
	{"CONNECT 3.1.1 password without username", V311, frame(0x10, cat(mqtt4, []byte{0x42}, ka, id1,
		[]byte{0x00, 0x01, 'p'})...), CONNECT, "password flag", MalformedPacket},
	{"CONNECT truncated keep alive", V311, frame(0x10, cat(mqtt4, []byte{0x02, 0x00})...), CONNECT, "keep alive",
		MalformedPacket},
	{"CONNECT missing client id", V311, frame(0x10, cat(mqtt4, []byte{0x02}, ka)...), CONNECT, "client id",
		MalformedPacket},
	{"CONNECT client id past the end", V311, frame(0x10, cat(mqtt4, []byte{0x02}, ka, []byte{0x00, 0x05, 'a'})...),
		CONNECT, "client id", MalformedPacket},
	{"CONNECT client id invalid UTF-8", V311, frame(0x10, cat(mqtt4, []byte{0x02}, ka, []byte{0x00, 0x01, 0xff})...),
		CONNECT, "client id", MalformedPacket},
	{"CONNECT client id with U+0000", V311, frame(0x10, cat(mqtt4, []byte{0x02}, ka,
		[]byte{0x00, 0x02, 'a', 0x00})...), CONNECT, "client id", MalformedPacket},
	{"CONNECT will topic wildcard", V311, frame(0x10, cat(mqtt4, []byte{0x06}, ka, id1,
		[]byte{0x00, 0x03, 'a', '/', '#', 0x00, 0x00})...), CONNECT, "will topic", TopicNameInvalid},
	{"CONNECT will topic empty", V311, frame(0x10, cat(mqtt4, []byte{0x06}, ka, id1,
		[]byte{0x00, 0x00, 0x00, 0x00})...), CONNECT, "will topic", MalformedPacket},
	{"CONNECT missing will payload", V311, frame(0x10, cat(mqtt4, []byte{0x06}, ka, id1,
		[]byte{0x00, 0x01, 'w'})...), CONNECT, "will payload", MalformedPacket},
	{"CONNECT missing username", V311, frame(0x10, cat(mqtt4, []byte{0x82}, ka, id1)...), CONNECT, "username",
		MalformedPacket},
	{"CONNECT missing password", V311, frame(0x10, cat(mqtt4, []byte{0xc2}, ka, id1,
		[]byte{0x00, 0x01, 'u'})...), CONNECT, "password", MalformedPacket},
	{"CONNECT trailing bytes", V311, frame(0x10, cat(mqtt4, []byte{0x02}, ka, id1, []byte{0x00})...), CONNECT,
		"remaining length", MalformedPacket},
	{"CONNECT 5 missing properties", V5, frame(0x10, cat(mqtt5, []byte{0x02}, ka)...), CONNECT,
		"properties length", MalformedPacket},
	{"CONNECT 5 properties past the end", V5, frame(0x10, cat(mqtt5, []byte{0x02}, ka, []byte{0x09, 0x11})...),
		CONNECT, "properties length", MalformedPacket},
	{"CONNECT 5 topic alias not allowed", V5, frame(0x10, cat(mqtt5, []byte{0x02}, ka,
		[]byte{0x03, 0x23, 0x00, 0x01}, id1)...), CONNECT, "property identifier", MalformedPacket},
	{"CONNECT 5 unknown property", V5, frame(0x10, cat(mqtt5, []byte{0x02}, ka, []byte{0x02, 0x7f, 0x00}, id1)...),
		CONNECT, "property identifier", MalformedPacket},
	{"CONNECT 5 receive maximum 0", V5, frame(0x10, cat(mqtt5, []byte{0x02}, ka, []byte{0x03, 0x21, 0x00, 0x00},
		id1)...), CONNECT, "receive maximum", ProtocolError},
	{"CONNECT 5 maximum packet size 0", V5, frame(0x10, cat(mqtt5, []byte{0x02}, ka,
		[]byte{0x05, 0x27, 0x00, 0x00, 0x00, 0x00}, id1)...), CONNECT, "maximum packet size", ProtocolError},
	{"CONNECT 5 session expiry twice", V5, frame(0x10, cat(mqtt5, []byte{0x02}, ka,
		[]byte{0x0a, 0x11, 0, 0, 0, 1, 0x11, 0, 0, 0, 2}, id1)...), CONNECT, "session expiry interval",
		ProtocolError},
	{"CONNECT 5 request problem information 2", V5, frame(0x10, cat(mqtt5, []byte{0x02}, ka,
		[]byte{0x02, 0x17, 0x02}, id1)...), CONNECT, "request problem information", ProtocolError},
	{"CONNECT 5 truncated property value", V5, frame(0x10, cat(mqtt5, []byte{0x02}, ka,
		[]byte{0x03, 0x11, 0x00, 0x00}, id1)...), CONNECT, "session expiry interval", MalformedPacket},
	{"CONNECT 5 authentication data without method", V5, frame(0x10, cat(mqtt5, []byte{0x02}, ka,
		[]byte{0x04, 0x16, 0x00, 0x01, 0x01}, id1)...), CONNECT, "authentication data", ProtocolError},
	{"CONNECT 5 user property name invalid", V5, frame(0x10, cat(mqtt5, []byte{0x02}, ka,
		[]byte{0x07, 0x26, 0x00, 0x01, 0xc0, 0x00, 0x01, 'v'}, id1)...), CONNECT, "user property name",
		MalformedPacket},
	{"CONNECT 5 will delay twice", V5, frame(0x10, cat(mqtt5, []byte{0x06}, ka, []byte{0x00}, id1,
		[]byte{0x0a, 0x18, 0, 0, 0, 1, 0x18, 0, 0, 0, 2, 0x00, 0x01, 'w', 0x00, 0x00})...), CONNECT,
		"will properties: will delay interval", ProtocolError},
	{"CONNECT 5 session expiry in will properties", V5, frame(0x10, cat(mqtt5, []byte{0x06}, ka, []byte{0x00}, id1,
		[]byte{0x05, 0x11, 0, 0, 0, 1, 0x00, 0x01, 'w', 0x00, 0x00})...), CONNECT,
		"will properties: property identifier", MalformedPacket},
	{"CONNECT 5 will response topic wildcard", V5, frame(0x10, cat(mqtt5, []byte{0x06}, ka, []byte{0x00}, id1,
		[]byte{0x04, 0x08, 0x00, 0x01, '+', 0x00, 0x01, 'w', 0x00, 0x00})...), CONNECT,
		"will properties: response topic", ProtocolError},
	{"CONNECT 5 will properties past the end", V5, frame(0x10, cat(mqtt5, []byte{0x06}, ka, []byte{0x00}, id1,
		[]byte{0x40, 0x01})...), CONNECT, "will properties length", MalformedPacket},

	// CONNACK
	{"CONNACK reserved flags", V311, frame(0x20, 0x02, 0x00), CONNACK, "acknowledge flags", MalformedPacket},
	{"CONNACK 3.1.1 return code 6", V311, frame(0x20, 0x00, 0x06), CONNACK, "reason code", MalformedPacket},
	{"CONNACK session present with refusal", V311, frame(0x20, 0x01, 0x05), CONNACK, "acknowledge flags",
		ProtocolError},
	{"CONNACK 3.1.1 trailing", V311, frame(0x20, 0x00, 0x00, 0x00), CONNACK, "remaining length", MalformedPacket},
	{"CONNACK truncated", V311, frame(0x20, 0x00), CONNACK, "reason code", MalformedPacket},
	{"CONNACK 5 reason not for CONNACK", V5, frame(0x20, 0x00, 0x10, 0x00), CONNACK, "reason code",
		MalformedPacket},
	{"CONNACK 5 missing properties", V5, frame(0x20, 0x00, 0x00), CONNACK, "properties length", MalformedPacket},
	{"CONNACK 5 maximum QoS 2", V5, frame(0x20, 0x00, 0x00, 0x02, 0x24, 0x02), CONNACK, "maximum qos",
		ProtocolError},
	{"CONNACK 5 retain available 2", V5, frame(0x20, 0x00, 0x00, 0x02, 0x25, 0x02), CONNACK, "retain available",
		ProtocolError},
	{"CONNACK 5 will delay not allowed", V5, frame(0x20, 0x00, 0x00, 0x05, 0x18, 0, 0, 0, 1), CONNACK,
		"property identifier", MalformedPacket},

	// PUBLISH
	{"PUBLISH DUP with QoS 0", V311, frame(0x38, 0x00, 0x01, 't'), PUBLISH, "dup", MalformedPacket},
	{"PUBLISH topic with +", V311, frame(0x30, 0x00, 0x03, 'a', '/', '+'), PUBLISH, "topic", TopicNameInvalid},
	{"PUBLISH topic with #", V5, frame(0x30, 0x00, 0x01, '#', 0x00), PUBLISH, "topic", TopicNameInvalid},
	{"PUBLISH 3.1.1 empty topic", V311, frame(0x30, 0x00, 0x00, 'x'), PUBLISH, "topic", MalformedPacket},
	{"PUBLISH topic surrogate", V311, frame(0x30, 0x00, 0x03, 0xed, 0xa0, 0x80), PUBLISH, "topic", MalformedPacket},
	{"PUBLISH topic past the end", V311, frame(0x30, 0x00, 0x09, 'a'), PUBLISH, "topic", MalformedPacket},
	{"PUBLISH empty body", V311, frame(0x30), PUBLISH, "topic", MalformedPacket},
	{"PUBLISH QoS 1 packet id 0", V311, frame(0x32, 0x00, 0x01, 't', 0x00, 0x00), PUBLISH, "packet id",
		MalformedPacket},
	{"PUBLISH QoS 2 truncated packet id", V311, frame(0x34, 0x00, 0x01, 't', 0x00), PUBLISH, "packet id",
		MalformedPacket},
	{"PUBLISH 5 missing properties", V5, frame(0x30, 0x00, 0x01, 't'), PUBLISH, "properties length",
		MalformedPacket},
	{"PUBLISH 5 properties length five bytes", V5, frame(0x30, 0x00, 0x01, 't', 0x80, 0x80, 0x80, 0x80, 0x01),
		PUBLISH, "properties length", MalformedPacket},
	{"PUBLISH 5 subscription identifier 0", V5, frame(0x30, 0x00, 0x01, 't', 0x02, 0x0b, 0x00), PUBLISH,
		"subscription identifier", ProtocolError},
	{"PUBLISH 5 subscription identifier five bytes", V5, frame(0x30, 0x00, 0x01, 't', 0x06, 0x0b,
		0x80, 0x80, 0x80, 0x80, 0x01), PUBLISH, "subscription identifier", MalformedPacket},
	{"PUBLISH 5 topic alias 0", V5, frame(0x30, 0x00, 0x01, 't', 0x03, 0x23, 0x00, 0x00), PUBLISH, "topic alias",
		TopicAliasInvalid},
	{"PUBLISH 5 topic alias twice", V5, frame(0x30, 0x00, 0x01, 't', 0x06, 0x23, 0x00, 0x01, 0x23, 0x00, 0x02),
		PUBLISH, "topic alias", ProtocolError},
	{"PUBLISH 5 payload format 2", V5, frame(0x30, 0x00, 0x01, 't', 0x02, 0x01, 0x02), PUBLISH,
		"payload format indicator", ProtocolError},
	{"PUBLISH 5 session expiry not allowed", V5, frame(0x30, 0x00, 0x01, 't', 0x05, 0x11, 0, 0, 0, 1), PUBLISH,
		"property identifier", MalformedPacket},
	{"PUBLISH 5 response topic wildcard", V5, frame(0x30, 0x00, 0x01, 't', 0x06, 0x08, 0x00, 0x03, 'a', '/', '#'),
		PUBLISH, "response topic", ProtocolError},
	{"PUBLISH 5 content type past the property block", V5, frame(0x30, 0x00, 0x01, 't', 0x03, 0x03, 0x00, 0x02,
		'a', 'b'), PUBLISH, "content type", MalformedPacket},
	{"PUBLISH 5 content type invalid UTF-8", V5, frame(0x30, 0x00, 0x01, 't', 0x04, 0x03, 0x00, 0x01, 0xfe),
		PUBLISH, "content type", MalformedPacket},
	{"PUBLISH 5 user property value missing", V5, frame(0x30, 0x00, 0x01, 't', 0x04, 0x26, 0x00, 0x01, 'k'),
		PUBLISH, "user property value", MalformedPacket},

	// PUBACK, PUBREC, PUBREL, PUBCOMP
	{"PUBACK 3.1.1 trailing", V311, frame(0x40, 0x00, 0x01, 0x00), PUBACK, "remaining length", MalformedPacket},
	{"PUBACK packet id 0", V311, frame(0x40, 0x00, 0x00), PUBACK, "packet id", MalformedPacket},
	{"PUBREC truncated", V5, frame(0x50, 0x00), PUBREC, "packet id", MalformedPacket},
	{"PUBACK 5 reason for PUBREL", V5, frame(0x40, 0x00, 0x01, 0x92), PUBACK, "reason code", MalformedPacket},
	{"PUBREL 5 reason for PUBACK", V5, frame(0x62, 0x00, 0x01, 0x10), PUBREL, "reason code", MalformedPacket},
	{"PUBCOMP 5 reason not defined", V5, frame(0x70, 0x00, 0x01, 0x01), PUBCOMP, "reason code", MalformedPacket},
	{"PUBACK 5 topic alias not allowed", V5, frame(0x40, 0x00, 0x01, 0x00, 0x03, 0x23, 0x00, 0x01), PUBACK,
		"property identifier", MalformedPacket},
	{"PUBREC 5 reason string twice", V5, frame(0x50, 0x00, 0x01, 0x00, 0x06, 0x1f, 0x00, 0x00, 0x1f, 0x00, 0x00),
		PUBREC, "reason string", ProtocolError},
	{"PUBACK 5 trailing after properties", V5, frame(0x40, 0x00, 0x01, 0x00, 0x00, 0x00), PUBACK,
		"remaining length", MalformedPacket},
	{"PUBACK 5 user property value invalid", V5, frame(0x40, 0x00, 0x01, 0x00, 0x07, 0x26, 0x00, 0x01, 'k', 0x00,
		0x01, 0x00), PUBACK, "user property value", MalformedPacket},

	// SUBSCRIBE
	{"SUBSCRIBE no filter", V311, frame(0x82, 0x00, 0x01), SUBSCRIBE, "topic filters", ProtocolError},
	{"SUBSCRIBE 5 no filter", V5, frame(0x82, 0x00, 0x01, 0x00), SUBSCRIBE, "topic filters", ProtocolError},
	{"SUBSCRIBE packet id 0", V311, frame(0x82, 0x00, 0x00, 0x00, 0x01, 'a', 0x00), SUBSCRIBE, "packet id",
		MalformedPacket},
	{"SUBSCRIBE empty filter", V311, frame(0x82, 0x00, 0x01, 0x00, 0x00, 0x00), SUBSCRIBE, "topic filter",
		MalformedPacket},
	{"SUBSCRIBE filter invalid UTF-8", V311, frame(0x82, 0x00, 0x01, 0x00, 0x01, 0xff, 0x00), SUBSCRIBE,
		"topic filter", MalformedPacket},
	{"SUBSCRIBE missing options", V311, frame(0x82, 0x00, 0x01, 0x00, 0x01, 'a'), SUBSCRIBE,
		"subscription options", MalformedPacket},
	{"SUBSCRIBE 3.1.1 reserved option bit 2", V311, frame(0x82, 0x00, 0x01, 0x00, 0x01, 'a', 0x04), SUBSCRIBE,
		"subscription options", MalformedPacket},
	{"SUBSCRIBE 5 reserved option bit 6", V5, frame(0x82, 0x00, 0x01, 0x00, 0x00, 0x01, 'a', 0x40), SUBSCRIBE,
		"subscription options", MalformedPacket},
	{"SUBSCRIBE QoS 3", V311, frame(0x82, 0x00, 0x01, 0x00, 0x01, 'a', 0x03), SUBSCRIBE, "subscription options",
		MalformedPacket},
	{"SUBSCRIBE 5 retain handling 3", V5, frame(0x82, 0x00, 0x01, 0x00, 0x00, 0x01, 'a', 0x30), SUBSCRIBE,
		"subscription options", ProtocolError},
	{"SUBSCRIBE second filter bad", V311, frame(0x82, 0x00, 0x01, 0x00, 0x01, 'a', 0x00, 0x00, 0x01, 'b', 0x08),
		SUBSCRIBE, "subscription options", MalformedPacket},
	{"SUBSCRIBE 5 subscription identifier twice", V5, frame(0x82, 0x00, 0x01, 0x04, 0x0b, 0x01, 0x0b, 0x02,
		0x00, 0x01, 'a', 0x00), SUBSCRIBE, "subscription identifier", ProtocolError},
	{"SUBSCRIBE 5 subscription identifier 0", V5, frame(0x82, 0x00, 0x01, 0x02, 0x0b, 0x00, 0x00, 0x01, 'a',
		0x00), SUBSCRIBE, "subscription identifier", ProtocolError},
	{"SUBSCRIBE 5 reason string not allowed", V5, frame(0x82, 0x00, 0x01, 0x03, 0x1f, 0x00, 0x00, 0x00, 0x01,
		'a', 0x00), SUBSCRIBE, "property identifier", MalformedPacket},

	// SUBACK
	{"SUBACK no reasons", V311, frame(0x90, 0x00, 0x01), SUBACK, "reason codes", MalformedPacket},
	{"SUBACK 3.1.1 reason 0x87", V311, frame(0x90, 0x00, 0x01, 0x87), SUBACK, "reason codes", MalformedPacket},
	{"SUBACK 5 reason 0x11", V5, frame(0x90, 0x00, 0x01, 0x00, 0x00, 0x11), SUBACK, "reason codes",
		MalformedPacket},
	{"SUBACK packet id 0", V311, frame(0x90, 0x00, 0x00, 0x00), SUBACK, "packet id", MalformedPacket},

	// UNSUBSCRIBE
	{"UNSUBSCRIBE no filter", V311, frame(0xa2, 0x00, 0x01), UNSUBSCRIBE, "topic filters", ProtocolError},
	{"UNSUBSCRIBE 5 no filter", V5, frame(0xa2, 0x00, 0x01, 0x00), UNSUBSCRIBE, "topic filters", ProtocolError},
	{"UNSUBSCRIBE empty filter", V311, frame(0xa2, 0x00, 0x01, 0x00, 0x00), UNSUBSCRIBE, "topic filter",
		MalformedPacket},
	{"UNSUBSCRIBE truncated filter", V311, frame(0xa2, 0x00, 0x01, 0x00, 0x03, 'a'), UNSUBSCRIBE, "topic filter",
		MalformedPacket},
	{"UNSUBSCRIBE 5 subscription identifier not allowed", V5, frame(0xa2, 0x00, 0x01, 0x02, 0x0b, 0x01, 0x00,
		0x01, 'a'), UNSUBSCRIBE, "property identifier", MalformedPacket},

	// UNSUBACK
	{"UNSUBACK 3.1.1 trailing", V311, frame(0xb0, 0x00, 0x01, 0x00), UNSUBACK, "remaining length", MalformedPacket},
	{"UNSUBACK 5 no reasons", V5, frame(0xb0, 0x00, 0x01, 0x00), UNSUBACK, "reason codes", MalformedPacket},
	{"UNSUBACK 5 reason 0x01", V5, frame(0xb0, 0x00, 0x01, 0x00, 0x01), UNSUBACK, "reason codes", MalformedPacket},

	// DISCONNECT
	{"DISCONNECT 3.1.1 with a body", V311, frame(0xe0, 0x00), DISCONNECT, "remaining length", MalformedPacket},
	{"DISCONNECT 5 reason 0x01", V5, frame(0xe0, 0x01), DISCONNECT, "reason code", MalformedPacket},
	{"DISCONNECT 5 properties past the end", V5, frame(0xe0, 0x00, 0x05), DISCONNECT, "properties length",
		MalformedPacket},
	{"DISCONNECT 5 topic alias not allowed", V5, frame(0xe0, 0x00, 0x03, 0x23, 0x00, 0x01), DISCONNECT,
		"property identifier", MalformedPacket},
	{"DISCONNECT 5 trailing", V5, frame(0xe0, 0x00, 0x00, 0x00), DISCONNECT, "remaining length", MalformedPacket},

	// AUTH
	{"AUTH in 3.1.1", V311, frame(0xf0), AUTH, "packet type", MalformedPacket},
	{"AUTH 5 reason 0x80", V5, frame(0xf0, 0x80, 0x00), AUTH, "reason code", MalformedPacket},
	{"AUTH 5 reason without properties", V5, frame(0xf0, 0x18), AUTH, "properties length", MalformedPacket},
	{"AUTH 5 data without method", V5, frame(0xf0, 0x18, 0x04, 0x16, 0x00, 0x01, 0x01), AUTH,
		"authentication data", ProtocolError},
	{"AUTH 5 method twice", V5, frame(0xf0, 0x18, 0x08, 0x15, 0x00, 0x01, 'a', 0x15, 0x00, 0x01, 'b'), AUTH,
		"authentication method", ProtocolError},
}

func TestDecodeMalformed(t *testing.T) {
	for _, c := range malformedCases {
		t.Run(c.name, func(t *testing.T) {
			_, err := parseWhole(c.raw, c.v)
			requireMalformed(t, err, c.pkt, c.field, c.reason)
		})
	}
}

// TestConnectUnsupportedVersionKeepsWhatWasSent lets the broker choose the
// CONNACK format for a version it refuses.
func TestConnectUnsupportedVersionKeepsWhatWasSent(t *testing.T) {
	raw := frame(0x10, cat([]byte{0x00, 0x04, 'M', 'Q', 'T', 'T', 0x06, 0x02}, ka, id1)...)
	var c Connect
	_, err := decodeInto(&c, raw, V311)
	requireMalformed(t, err, CONNECT, "protocol version", UnsupportedProtocolVersion)
	if c.Version != 6 || string(c.ProtocolName) != "MQTT" {
		t.Fatalf("Version %d, ProtocolName %q: want what the client sent", c.Version, c.ProtocolName)
	}
}
