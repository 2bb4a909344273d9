package codec

// PropID is an MQTT 5 property identifier [MQTT-2.2.2.2].
type PropID byte

// Property identifiers.
const (
	PropPayloadFormat        PropID = 0x01 // byte
	PropMessageExpiry        PropID = 0x02 // four-byte integer
	PropContentType          PropID = 0x03 // UTF-8 string
	PropResponseTopic        PropID = 0x08 // UTF-8 string
	PropCorrelationData      PropID = 0x09 // binary data
	PropSubscriptionID       PropID = 0x0B // variable byte integer
	PropSessionExpiry        PropID = 0x11 // four-byte integer
	PropAssignedClientID     PropID = 0x12 // UTF-8 string
	PropServerKeepAlive      PropID = 0x13 // two-byte integer
	PropAuthMethod           PropID = 0x15 // UTF-8 string
	PropAuthData             PropID = 0x16 // binary data
	PropRequestProblemInfo   PropID = 0x17 // byte
	PropWillDelay            PropID = 0x18 // four-byte integer
	PropRequestResponseInfo  PropID = 0x19 // byte
	PropResponseInfo         PropID = 0x1A // UTF-8 string
	PropServerReference      PropID = 0x1C // UTF-8 string
	PropReasonString         PropID = 0x1F // UTF-8 string
	PropReceiveMaximum       PropID = 0x21 // two-byte integer
	PropTopicAliasMaximum    PropID = 0x22 // two-byte integer
	PropTopicAlias           PropID = 0x23 // two-byte integer
	PropMaximumQoS           PropID = 0x24 // byte
	PropRetainAvailable      PropID = 0x25 // byte
	PropUser                 PropID = 0x26 // UTF-8 string pair
	PropMaximumPacketSize    PropID = 0x27 // four-byte integer
	PropWildcardSubAvailable PropID = 0x28 // byte
	PropSubIDAvailable       PropID = 0x29 // byte
	PropSharedSubAvailable   PropID = 0x2A // byte
)

// UserProperty is one User Property name/value pair. After Decode both
// alias the decoded buffer.
type UserProperty struct {
	Key, Value []byte
}

// Properties holds the MQTT 5 properties of a packet as values, with a
// presence bit per identifier: bit (1 << id) of Present is set when that
// property is present (for PropUser and PropSubscriptionID: when at least
// one is). The zero value means "no properties".
//
// After Decode, the []byte fields alias the decoded buffer. Decode appends
// to User and SubscriptionIDs (after resetting them to length 0), so a
// reused Properties value decodes without allocating.
type Properties struct {
	Present uint64

	PayloadFormat        byte
	MessageExpiry        uint32
	ContentType          []byte
	ResponseTopic        []byte
	CorrelationData      []byte
	SubscriptionIDs      []uint32 // several only in a server-to-client PUBLISH
	SessionExpiry        uint32
	AssignedClientID     []byte
	ServerKeepAlive      uint16
	AuthMethod           []byte
	AuthData             []byte
	RequestProblemInfo   byte
	WillDelay            uint32
	RequestResponseInfo  byte
	ResponseInfo         []byte
	ServerReference      []byte
	ReasonString         []byte
	ReceiveMaximum       uint16
	TopicAliasMaximum    uint16
	TopicAlias           uint16
	MaximumQoS           byte
	RetainAvailable      byte
	User                 []UserProperty
	MaximumPacketSize    uint32
	WildcardSubAvailable byte
	SubIDAvailable       byte
	SharedSubAvailable   byte
}

// Has reports whether property id is present.
func (p *Properties) Has(id PropID) bool { return p.Present&(1<<id) != 0 }

// Set marks property id present. The caller sets the value field too.
func (p *Properties) Set(id PropID) { p.Present |= 1 << id }

// Clear marks property id absent.
func (p *Properties) Clear(id PropID) { p.Present &^= 1 << id }
