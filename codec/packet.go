package codec

// Version is the protocol level byte of CONNECT.
type Version byte

// Protocol levels.
const (
	V31  Version = 3 // MQTT 3.1 ("MQIsdp"), decoded as 3.1.1
	V311 Version = 4 // MQTT 3.1.1
	V5   Version = 5 // MQTT 5.0
)

// Type is the MQTT control packet type (high nibble of the first byte).
type Type byte

// Control packet types [MQTT-2.1.2].
const (
	CONNECT     Type = 1
	CONNACK     Type = 2
	PUBLISH     Type = 3
	PUBACK      Type = 4
	PUBREC      Type = 5
	PUBREL      Type = 6
	PUBCOMP     Type = 7
	SUBSCRIBE   Type = 8
	SUBACK      Type = 9
	UNSUBSCRIBE Type = 10
	UNSUBACK    Type = 11
	PINGREQ     Type = 12
	PINGRESP    Type = 13
	DISCONNECT  Type = 14
	AUTH        Type = 15
)

var typeNames = [...]string{"RESERVED", "CONNECT", "CONNACK", "PUBLISH", "PUBACK", "PUBREC", "PUBREL",
	"PUBCOMP", "SUBSCRIBE", "SUBACK", "UNSUBSCRIBE", "UNSUBACK", "PINGREQ", "PINGRESP", "DISCONNECT", "AUTH"}

func (t Type) String() string {
	if int(t) < len(typeNames) {
		return typeNames[t]
	}
	return "INVALID"
}

// QoS is a quality-of-service level.
type QoS byte

// QoS levels.
const (
	QoS0 QoS = 0
	QoS1 QoS = 1
	QoS2 QoS = 2
)

// Header is a decoded fixed header.
type Header struct {
	Type      Type
	Flags     byte // low nibble of the first byte
	Remaining int  // remaining length: the body's size in bytes
}

// Connect is a CONNECT packet. After Decode, every []byte field aliases the
// decoded buffer.
type Connect struct {
	ProtocolName []byte
	Version      Version
	CleanStart   bool // "clean session" in 3.1.1
	KeepAlive    uint16
	Props        Properties
	ClientID     []byte

	WillFlag    bool
	WillQoS     QoS
	WillRetain  bool
	WillProps   Properties // MQTT 5 only
	WillTopic   []byte
	WillPayload []byte

	UsernameFlag bool
	PasswordFlag bool
	Username     []byte
	Password     []byte
}

// Connack is a CONNACK packet. In 3.1.1, Reason holds the return code (0-5).
type Connack struct {
	SessionPresent bool
	Reason         ReasonCode
	Props          Properties
}

// Publish is a PUBLISH packet (3.1.1 and 5). After Decode, Topic and Payload
// (and the []byte properties) alias the decoded buffer: valid until the
// transport reuses it.
type Publish struct {
	Topic, Payload []byte
	Props          Properties // zero value: no properties
	PacketID       uint16     // only when QoS > 0
	QoS            QoS
	Dup, Retain    bool
}

// Ack is a PUBACK, PUBREC, PUBREL or PUBCOMP: the four share one layout
// [MQTT-3.4 to 3.7], told apart by Kind.
type Ack struct {
	Kind     Type // PUBACK, PUBREC, PUBREL or PUBCOMP
	PacketID uint16
	Reason   ReasonCode // MQTT 5; Success when absent
	Props    Properties
}

// Subscription is one topic filter of a SUBSCRIBE with its options.
type Subscription struct {
	Filter            []byte
	QoS               QoS
	NoLocal           bool // MQTT 5
	RetainAsPublished bool // MQTT 5
	RetainHandling    byte // MQTT 5: 0, 1 or 2
}

// Subscribe is a SUBSCRIBE packet. Decode appends to Subs (reset to length
// 0 first), so a reused Subscribe value decodes without allocating.
type Subscribe struct {
	PacketID uint16
	Props    Properties
	Subs     []Subscription
}

// Suback is a SUBACK packet. Reasons holds one code per filter (3.1.1 return
// codes 0x00, 0x01, 0x02, 0x80 share values with the MQTT 5 codes).
type Suback struct {
	PacketID uint16
	Props    Properties
	Reasons  []ReasonCode
}

// Unsubscribe is an UNSUBSCRIBE packet. Decode appends to Filters (reset to
// length 0 first).
type Unsubscribe struct {
	PacketID uint16
	Props    Properties
	Filters  [][]byte
}

// Unsuback is an UNSUBACK packet. Reasons is MQTT 5 only; a 3.1.1 UNSUBACK
// carries just the packet id.
type Unsuback struct {
	PacketID uint16
	Props    Properties
	Reasons  []ReasonCode
}

// Disconnect is a DISCONNECT packet. In 3.1.1 it has no body.
type Disconnect struct {
	Reason ReasonCode
	Props  Properties
}

// Auth is an MQTT 5 AUTH packet.
type Auth struct {
	Reason ReasonCode
	Props  Properties
}
