package codec

// ReasonCode is an MQTT 5 reason code [MQTT-2.4]. The 3.1.1 CONNACK return
// codes and SUBACK return codes are carried in the same type.
type ReasonCode byte

// MQTT 5 reason codes.
const (
	Success                             ReasonCode = 0x00 // also Normal disconnection, Granted QoS 0
	GrantedQoS1                         ReasonCode = 0x01
	GrantedQoS2                         ReasonCode = 0x02
	DisconnectWithWill                  ReasonCode = 0x04
	NoMatchingSubscribers               ReasonCode = 0x10
	NoSubscriptionExisted               ReasonCode = 0x11
	ContinueAuthentication              ReasonCode = 0x18
	ReAuthenticate                      ReasonCode = 0x19
	UnspecifiedError                    ReasonCode = 0x80
	MalformedPacket                     ReasonCode = 0x81
	ProtocolError                       ReasonCode = 0x82
	ImplementationSpecificError         ReasonCode = 0x83
	UnsupportedProtocolVersion          ReasonCode = 0x84
	ClientIdentifierNotValid            ReasonCode = 0x85
	BadUserNameOrPassword               ReasonCode = 0x86
	NotAuthorized                       ReasonCode = 0x87
	ServerUnavailable                   ReasonCode = 0x88
	ServerBusy                          ReasonCode = 0x89
	Banned                              ReasonCode = 0x8A
	ServerShuttingDown                  ReasonCode = 0x8B
	BadAuthenticationMethod             ReasonCode = 0x8C
	KeepAliveTimeout                    ReasonCode = 0x8D
	SessionTakenOver                    ReasonCode = 0x8E
	TopicFilterInvalid                  ReasonCode = 0x8F
	TopicNameInvalid                    ReasonCode = 0x90
	PacketIdentifierInUse               ReasonCode = 0x91
	PacketIdentifierNotFound            ReasonCode = 0x92
	ReceiveMaximumExceeded              ReasonCode = 0x93
	TopicAliasInvalid                   ReasonCode = 0x94
	PacketTooLarge                      ReasonCode = 0x95
	MessageRateTooHigh                  ReasonCode = 0x96
	QuotaExceeded                       ReasonCode = 0x97
	AdministrativeAction                ReasonCode = 0x98
	PayloadFormatInvalid                ReasonCode = 0x99
	RetainNotSupported                  ReasonCode = 0x9A
	QoSNotSupported                     ReasonCode = 0x9B
	UseAnotherServer                    ReasonCode = 0x9C
	ServerMoved                         ReasonCode = 0x9D
	SharedSubscriptionsNotSupported     ReasonCode = 0x9E
	ConnectionRateExceeded              ReasonCode = 0x9F
	MaximumConnectTime                  ReasonCode = 0xA0
	SubscriptionIdentifiersNotSupported ReasonCode = 0xA1
	WildcardSubscriptionsNotSupported   ReasonCode = 0xA2
)

// MQTT 3.1.1 CONNACK return codes [MQTT-3.2.2.3].
const (
	ConnAccepted                  ReasonCode = 0x00
	ConnRefusedProtocolVersion    ReasonCode = 0x01
	ConnRefusedIdentifierRejected ReasonCode = 0x02
	ConnRefusedServerUnavailable  ReasonCode = 0x03
	ConnRefusedBadCredentials     ReasonCode = 0x04
	ConnRefusedNotAuthorized      ReasonCode = 0x05
)

// SubackFailure is the 3.1.1 SUBACK failure return code.
const SubackFailure ReasonCode = 0x80

// IsError reports whether r signals failure (>= 0x80).
func (r ReasonCode) IsError() bool { return r >= 0x80 }

// Error makes a ReasonCode usable as an error value the broker maps onto
// CONNACK / DISCONNECT.
func (r ReasonCode) Error() string { return "codec: reason " + r.String() }

// String returns the spec's name of the reason code.
func (r ReasonCode) String() string {
	if s, ok := reasonNames[r]; ok {
		return s
	}
	return "reason 0x" + string("0123456789abcdef"[r>>4]) + string("0123456789abcdef"[r&15])
}

var reasonNames = map[ReasonCode]string{
	Success: "success", GrantedQoS1: "granted QoS 1", GrantedQoS2: "granted QoS 2",
	DisconnectWithWill: "disconnect with will message", NoMatchingSubscribers: "no matching subscribers",
	NoSubscriptionExisted: "no subscription existed", ContinueAuthentication: "continue authentication",
	ReAuthenticate: "re-authenticate", UnspecifiedError: "unspecified error", MalformedPacket: "malformed packet",
	ProtocolError: "protocol error", ImplementationSpecificError: "implementation specific error",
	UnsupportedProtocolVersion: "unsupported protocol version", ClientIdentifierNotValid: "client identifier not valid",
	BadUserNameOrPassword: "bad user name or password", NotAuthorized: "not authorized",
	ServerUnavailable: "server unavailable", ServerBusy: "server busy", Banned: "banned",
	ServerShuttingDown: "server shutting down", BadAuthenticationMethod: "bad authentication method",
	KeepAliveTimeout: "keep alive timeout", SessionTakenOver: "session taken over",
	TopicFilterInvalid: "topic filter invalid", TopicNameInvalid: "topic name invalid",
	PacketIdentifierInUse: "packet identifier in use", PacketIdentifierNotFound: "packet identifier not found",
	ReceiveMaximumExceeded: "receive maximum exceeded", TopicAliasInvalid: "topic alias invalid",
	PacketTooLarge: "packet too large", MessageRateTooHigh: "message rate too high", QuotaExceeded: "quota exceeded",
	AdministrativeAction: "administrative action", PayloadFormatInvalid: "payload format invalid",
	RetainNotSupported: "retain not supported", QoSNotSupported: "QoS not supported",
	UseAnotherServer: "use another server", ServerMoved: "server moved",
	SharedSubscriptionsNotSupported: "shared subscriptions not supported",
	ConnectionRateExceeded:          "connection rate exceeded", MaximumConnectTime: "maximum connect time",
	SubscriptionIdentifiersNotSupported: "subscription identifiers not supported",
	WildcardSubscriptionsNotSupported:   "wildcard subscriptions not supported",
}
