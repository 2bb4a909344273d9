package codec

import "bytes"

// fixture is one whole packet as raw bytes, annotated byte by byte, beside
// the value it decodes to.
type fixture struct {
	name string
	v    Version // the connection's version (CONNECT learns its own)
	raw  []byte
	want any
	// nonCanonical: valid, but Append writes a different (shorter or
	// reordered) encoding of the same value.
	nonCanonical bool
}

// publish200 is a 3.1.1 PUBLISH whose remaining length takes two bytes.
var publish200 = append([]byte{
	0x30,       // PUBLISH, QoS 0
	0xcb, 0x01, // remaining length 203 = 0x4b + 1*128
	0x00, 0x01, 't', // topic "t"
}, bytes.Repeat([]byte{0xaa}, 200)...) // payload, 200 bytes

var fixtures = []fixture{
	// ---------------------------------------------------------------- 3.1.1
	{name: "CONNECT 3.1.1 minimal", v: V311, raw: []byte{
		0x10, 0x0e, // CONNECT, remaining length 14
		0x00, 0x04, 'M', 'Q', 'T', 'T', // protocol name "MQTT"
		0x04,       // protocol level 4
		0x02,       // connect flags: clean session
		0x00, 0x3c, // keep alive 60 s
		0x00, 0x02, 'c', '1', // client id "c1"
	}, want: &Connect{ProtocolName: b("MQTT"), Version: V311, CleanStart: true, KeepAlive: 60, ClientID: b("c1")}},

	{name: "CONNECT 3.1.1 will username password", v: V311, raw: []byte{
		0x10, 0x24, // CONNECT, remaining length 36
		0x00, 0x04, 'M', 'Q', 'T', 'T', // protocol name "MQTT"
		0x04,       // protocol level 4
		0xee,       // flags: username, password, will retain, will QoS 1, will, clean session
		0x00, 0x0a, // keep alive 10 s
		0x00, 0x03, 'd', 'e', 'v', // client id "dev"
		0x00, 0x03, 'w', '/', 't', // will topic "w/t"
		0x00, 0x03, 'b', 'y', 'e', // will payload "bye"
		0x00, 0x04, 'u', 's', 'e', 'r', // username "user"
		0x00, 0x03, 'p', 0x00, 'w', // password: binary, a zero byte is fine
	}, want: &Connect{ProtocolName: b("MQTT"), Version: V311, CleanStart: true, KeepAlive: 10, ClientID: b("dev"),
		WillFlag: true, WillQoS: QoS1, WillRetain: true, WillTopic: b("w/t"), WillPayload: b("bye"),
		UsernameFlag: true, PasswordFlag: true, Username: b("user"), Password: []byte{'p', 0, 'w'}}},

	{name: "CONNECT 3.1 MQIsdp", v: V31, raw: []byte{
		0x10, 0x0f, // CONNECT, remaining length 15
		0x00, 0x06, 'M', 'Q', 'I', 's', 'd', 'p', // protocol name "MQIsdp"
		0x03,       // protocol level 3
		0x00,       // connect flags: persistent session
		0x00, 0x1e, // keep alive 30 s
		0x00, 0x01, 'x', // client id "x"
	}, want: &Connect{ProtocolName: b("MQIsdp"), Version: V31, KeepAlive: 30, ClientID: b("x")}},

	{name: "CONNACK 3.1.1 session present", v: V311, raw: []byte{
		0x20, 0x02, // CONNACK, remaining length 2
		0x01, // acknowledge flags: session present
		0x00, // return code: accepted
	}, want: &Connack{SessionPresent: true, Reason: ConnAccepted}},

	{name: "CONNACK 3.1.1 refused", v: V311, raw: []byte{
		0x20, 0x02, // CONNACK, remaining length 2
		0x00, // acknowledge flags
		0x05, // return code: not authorized
	}, want: &Connack{Reason: ConnRefusedNotAuthorized}},

	{name: "PUBLISH 3.1.1 QoS 0", v: V311, raw: []byte{
		0x30, 0x07, // PUBLISH, QoS 0, remaining length 7
		0x00, 0x03, 'a', '/', 'b', // topic "a/b"
		'h', 'i', // payload "hi"
	}, want: &Publish{Topic: b("a/b"), Payload: b("hi")}},

	{name: "PUBLISH 3.1.1 QoS 1 dup retain", v: V311, raw: []byte{
		0x3b, 0x0a, // PUBLISH, DUP, QoS 1, RETAIN, remaining length 10
		0x00, 0x03, 'a', '/', 'b', // topic "a/b"
		0x00, 0x0a, // packet id 10
		0x01, 0x02, 0xff, // payload, binary
	}, want: &Publish{Topic: b("a/b"), Payload: []byte{1, 2, 0xff}, PacketID: 10, QoS: QoS1, Dup: true, Retain: true}},

	{name: "PUBLISH 3.1.1 QoS 2 empty payload", v: V311, raw: []byte{
		0x34, 0x07, // PUBLISH, QoS 2, remaining length 7
		0x00, 0x03, 'x', '/', 'y', // topic "x/y"
		0x12, 0x34, // packet id 0x1234; no payload
	}, want: &Publish{Topic: b("x/y"), PacketID: 0x1234, QoS: QoS2}},

	{name: "PUBLISH 3.1.1 two-byte remaining length", v: V311, raw: publish200,
		want: &Publish{Topic: b("t"), Payload: bytes.Repeat([]byte{0xaa}, 200)}},

	{name: "PUBACK 3.1.1", v: V311, raw: []byte{0x40, 0x02, 0x00, 0x01}, // PUBACK, length 2, packet id 1
		want: &Ack{Kind: PUBACK, PacketID: 1}},
	{name: "PUBREC 3.1.1", v: V311, raw: []byte{0x50, 0x02, 0x00, 0x02}, // PUBREC, length 2, packet id 2
		want: &Ack{Kind: PUBREC, PacketID: 2}},
	{name: "PUBREL 3.1.1", v: V311, raw: []byte{0x62, 0x02, 0x00, 0x03}, // PUBREL (flags 0010), length 2, packet id 3
		want: &Ack{Kind: PUBREL, PacketID: 3}},
	{name: "PUBCOMP 3.1.1", v: V311, raw: []byte{0x70, 0x02, 0x00, 0x04}, // PUBCOMP, length 2, packet id 4
		want: &Ack{Kind: PUBCOMP, PacketID: 4}},

	{name: "SUBSCRIBE 3.1.1", v: V311, raw: []byte{
		0x82, 0x0c, // SUBSCRIBE (flags 0010), remaining length 12
		0x00, 0x05, // packet id 5
		0x00, 0x03, 'a', '/', '+', // filter "a/+"
		0x01,            // options: QoS 1
		0x00, 0x01, '#', // filter "#"
		0x02, // options: QoS 2
	}, want: &Subscribe{PacketID: 5, Subs: []Subscription{{Filter: b("a/+"), QoS: QoS1}, {Filter: b("#"), QoS: QoS2}}}},

	{name: "SUBACK 3.1.1", v: V311, raw: []byte{
		0x90, 0x04, // SUBACK, remaining length 4
		0x00, 0x05, // packet id 5
		0x01, // granted QoS 1
		0x80, // failure
	}, want: &Suback{PacketID: 5, Reasons: []ReasonCode{GrantedQoS1, SubackFailure}}},

	{name: "UNSUBSCRIBE 3.1.1", v: V311, raw: []byte{
		0xa2, 0x0a, // UNSUBSCRIBE (flags 0010), remaining length 10
		0x00, 0x06, // packet id 6
		0x00, 0x03, 'a', '/', '+', // filter "a/+"
		0x00, 0x01, '#', // filter "#"
	}, want: &Unsubscribe{PacketID: 6, Filters: [][]byte{b("a/+"), b("#")}}},

	{name: "UNSUBACK 3.1.1", v: V311, raw: []byte{0xb0, 0x02, 0x00, 0x06}, // UNSUBACK, length 2, packet id 6
		want: &Unsuback{PacketID: 6}},
	{name: "PINGREQ", v: V311, raw: []byte{0xc0, 0x00}, want: ping(PINGREQ)},
	{name: "PINGRESP", v: V311, raw: []byte{0xd0, 0x00}, want: ping(PINGRESP)},
	{name: "DISCONNECT 3.1.1", v: V311, raw: []byte{0xe0, 0x00}, want: &Disconnect{}},

	// -------------------------------------------------------------- MQTT 5
	{name: "CONNECT 5 full", v: V5, raw: []byte{
		0x10, 0x71, // CONNECT, remaining length 113
		0x00, 0x04, 'M', 'Q', 'T', 'T', // protocol name "MQTT"
		0x05,       // protocol level 5
		0xd6,       // flags: username, password, will QoS 2, will, clean start
		0x00, 0x3c, // keep alive 60 s
		0x28,                         // properties length 40
		0x11, 0x00, 0x00, 0x0e, 0x10, // session expiry interval 3600 s
		0x15, 0x00, 0x05, 'S', 'C', 'R', 'A', 'M', // authentication method "SCRAM"
		0x16, 0x00, 0x02, 0x01, 0x02, // authentication data 01 02
		0x17, 0x00, // request problem information 0
		0x19, 0x01, // request response information 1
		0x21, 0x00, 0x14, // receive maximum 20
		0x22, 0x00, 0x0a, // topic alias maximum 10
		0x26, 0x00, 0x01, 'k', 0x00, 0x01, 'v', // user property k=v
		0x27, 0x00, 0x00, 0x10, 0x00, // maximum packet size 4096
		0x00, 0x03, 'd', 'e', 'v', // client id "dev"
		0x25,       // will properties length 37
		0x01, 0x01, // payload format indicator: UTF-8
		0x02, 0x00, 0x00, 0x00, 0x3c, // message expiry interval 60 s
		0x03, 0x00, 0x04, 't', 'e', 'x', 't', // content type "text"
		0x08, 0x00, 0x03, 'r', '/', '1', // response topic "r/1"
		0x09, 0x00, 0x02, 0xab, 0xcd, // correlation data ab cd
		0x18, 0x00, 0x00, 0x00, 0x05, // will delay interval 5 s
		0x26, 0x00, 0x01, 'a', 0x00, 0x01, 'b', // user property a=b
		0x00, 0x03, 'w', '/', 't', // will topic "w/t"
		0x00, 0x02, 'g', 'o', // will payload "go"
		0x00, 0x04, 'u', 's', 'e', 'r', // username "user"
		0x00, 0x02, 'p', 'w', // password "pw"
	}, want: &Connect{ProtocolName: b("MQTT"), Version: V5, CleanStart: true, KeepAlive: 60,
		Props: withProps(Properties{SessionExpiry: 3600, AuthMethod: b("SCRAM"), AuthData: []byte{1, 2},
			RequestResponseInfo: 1, ReceiveMaximum: 20, TopicAliasMaximum: 10, MaximumPacketSize: 4096,
			User: []UserProperty{{Key: b("k"), Value: b("v")}}},
			PropSessionExpiry, PropAuthMethod, PropAuthData, PropRequestProblemInfo, PropRequestResponseInfo,
			PropReceiveMaximum, PropTopicAliasMaximum, PropUser, PropMaximumPacketSize),
		ClientID: b("dev"), WillFlag: true, WillQoS: QoS2,
		WillProps: withProps(Properties{PayloadFormat: 1, MessageExpiry: 60, ContentType: b("text"),
			ResponseTopic: b("r/1"), CorrelationData: []byte{0xab, 0xcd}, WillDelay: 5,
			User: []UserProperty{{Key: b("a"), Value: b("b")}}},
			PropPayloadFormat, PropMessageExpiry, PropContentType, PropResponseTopic, PropCorrelationData,
			PropWillDelay, PropUser),
		WillTopic: b("w/t"), WillPayload: b("go"),
		UsernameFlag: true, PasswordFlag: true, Username: b("user"), Password: b("pw")}},

	{name: "CONNECT 5 password without username", v: V5, raw: []byte{
		0x10, 0x10, // CONNECT, remaining length 16
		0x00, 0x04, 'M', 'Q', 'T', 'T', // protocol name "MQTT"
		0x05,       // protocol level 5
		0x42,       // flags: password (allowed alone in MQTT 5), clean start
		0x00, 0x00, // keep alive 0: off
		0x00,       // properties length 0
		0x00, 0x00, // client id "": the server assigns one
		0x00, 0x01, 'p', // password "p"
	}, want: &Connect{ProtocolName: b("MQTT"), Version: V5, CleanStart: true, PasswordFlag: true, Password: b("p")}},

	{name: "CONNACK 5 properties", v: V5, raw: []byte{
		0x20, 0x30, // CONNACK, remaining length 48
		0x00,                         // acknowledge flags
		0x00,                         // reason: success
		0x2d,                         // properties length 45
		0x11, 0x00, 0x00, 0x00, 0x78, // session expiry interval 120 s
		0x12, 0x00, 0x04, 'a', 'u', 't', 'o', // assigned client identifier "auto"
		0x13, 0x00, 0x1e, // server keep alive 30 s
		0x1a, 0x00, 0x01, 'r', // response information "r"
		0x1f, 0x00, 0x02, 'o', 'k', // reason string "ok"
		0x21, 0x00, 0x64, // receive maximum 100
		0x22, 0x00, 0x05, // topic alias maximum 5
		0x24, 0x01, // maximum QoS 1
		0x25, 0x00, // retain available: no
		0x27, 0x00, 0x02, 0x00, 0x00, // maximum packet size 131072
		0x28, 0x01, // wildcard subscription available
		0x29, 0x00, // subscription identifiers not available
		0x2a, 0x01, // shared subscription available
	}, want: &Connack{Props: withProps(Properties{SessionExpiry: 120, AssignedClientID: b("auto"),
		ServerKeepAlive: 30, ResponseInfo: b("r"), ReasonString: b("ok"), ReceiveMaximum: 100,
		TopicAliasMaximum: 5, MaximumQoS: 1, MaximumPacketSize: 131072, WildcardSubAvailable: 1,
		SharedSubAvailable: 1},
		PropSessionExpiry, PropAssignedClientID, PropServerKeepAlive, PropResponseInfo, PropReasonString,
		PropReceiveMaximum, PropTopicAliasMaximum, PropMaximumQoS, PropRetainAvailable, PropMaximumPacketSize,
		PropWildcardSubAvailable, PropSubIDAvailable, PropSharedSubAvailable)}},

	{name: "CONNACK 5 refused", v: V5, raw: []byte{
		0x20, 0x03, // CONNACK, remaining length 3
		0x00, // acknowledge flags
		0x87, // reason: not authorized
		0x00, // properties length 0
	}, want: &Connack{Reason: NotAuthorized}},

	{name: "PUBLISH 5 QoS 1 properties", v: V5, raw: []byte{
		0x32, 0x39, // PUBLISH, QoS 1, remaining length 57
		0x00, 0x03, 'a', '/', 'b', // topic "a/b"
		0x00, 0x07, // packet id 7
		0x2f,       // properties length 47
		0x01, 0x01, // payload format indicator: UTF-8
		0x02, 0x00, 0x00, 0x00, 0x0a, // message expiry interval 10 s
		0x03, 0x00, 0x04, 'j', 's', 'o', 'n', // content type "json"
		0x08, 0x00, 0x03, 'r', '/', 'x', // response topic "r/x"
		0x09, 0x00, 0x01, 0x2a, // correlation data 2a
		0x0b, 0x05, // subscription identifier 5
		0x0b, 0x80, 0x01, // subscription identifier 128 (two-byte varint)
		0x23, 0x00, 0x02, // topic alias 2
		0x26, 0x00, 0x01, 'k', 0x00, 0x01, 'v', // user property k=v
		0x26, 0x00, 0x01, 'k', 0x00, 0x02, 'v', '2', // user property k=v2 (keys may repeat)
		'{', '}', // payload
	}, want: &Publish{Topic: b("a/b"), Payload: b("{}"), PacketID: 7, QoS: QoS1,
		Props: withProps(Properties{PayloadFormat: 1, MessageExpiry: 10, ContentType: b("json"),
			ResponseTopic: b("r/x"), CorrelationData: []byte{0x2a}, SubscriptionIDs: []uint32{5, 128},
			TopicAlias: 2, User: []UserProperty{{Key: b("k"), Value: b("v")}, {Key: b("k"), Value: b("v2")}}},
			PropPayloadFormat, PropMessageExpiry, PropContentType, PropResponseTopic, PropCorrelationData,
			PropSubscriptionID, PropTopicAlias, PropUser)}},

	{name: "PUBLISH 5 QoS 0 no properties", v: V5, raw: []byte{
		0x30, 0x08, // PUBLISH, QoS 0, remaining length 8
		0x00, 0x03, 'a', '/', 'b', // topic "a/b"
		0x00,     // properties length 0
		'h', 'i', // payload "hi"
	}, want: &Publish{Topic: b("a/b"), Payload: b("hi")}},

	{name: "PUBLISH 5 empty topic with alias", v: V5, raw: []byte{
		0x31, 0x07, // PUBLISH, QoS 0, RETAIN, remaining length 7
		0x00, 0x00, // topic "": the alias stands for it
		0x03,             // properties length 3
		0x23, 0x00, 0x01, // topic alias 1
		'x', // payload "x"
	}, want: &Publish{Payload: b("x"), Retain: true, Props: withProps(Properties{TopicAlias: 1}, PropTopicAlias)}},

	{name: "PUBACK 5 short", v: V5, raw: []byte{
		0x40, 0x02, // PUBACK, remaining length 2: success, no properties
		0x00, 0x01, // packet id 1
	}, want: &Ack{Kind: PUBACK, PacketID: 1}},

	{name: "PUBACK 5 reason only", v: V5, raw: []byte{
		0x40, 0x03, // PUBACK, remaining length 3: no property length
		0x00, 0x01, // packet id 1
		0x10, // reason: no matching subscribers
	}, want: &Ack{Kind: PUBACK, PacketID: 1, Reason: NoMatchingSubscribers}},

	{name: "PUBACK 5 success empty properties", v: V5, nonCanonical: true, raw: []byte{
		0x40, 0x04, // PUBACK, remaining length 4
		0x00, 0x01, // packet id 1
		0x00, // reason: success
		0x00, // properties length 0
	}, want: &Ack{Kind: PUBACK, PacketID: 1}},

	{name: "PUBREC 5 reason string", v: V5, raw: []byte{
		0x50, 0x09, // PUBREC, remaining length 9
		0x00, 0x02, // packet id 2
		0x80,                       // reason: unspecified error
		0x05,                       // properties length 5
		0x1f, 0x00, 0x02, 'n', 'o', // reason string "no"
	}, want: &Ack{Kind: PUBREC, PacketID: 2, Reason: UnspecifiedError,
		Props: withProps(Properties{ReasonString: b("no")}, PropReasonString)}},

	{name: "PUBREL 5 not found", v: V5, raw: []byte{
		0x62, 0x03, // PUBREL (flags 0010), remaining length 3
		0x00, 0x03, // packet id 3
		0x92, // reason: packet identifier not found
	}, want: &Ack{Kind: PUBREL, PacketID: 3, Reason: PacketIdentifierNotFound}},

	{name: "PUBCOMP 5 user property", v: V5, raw: []byte{
		0x70, 0x0b, // PUBCOMP, remaining length 11
		0x00, 0x04, // packet id 4
		0x00,                                   // reason: success
		0x07,                                   // properties length 7
		0x26, 0x00, 0x01, 'a', 0x00, 0x01, 'b', // user property a=b
	}, want: &Ack{Kind: PUBCOMP, PacketID: 4,
		Props: withProps(Properties{User: []UserProperty{{Key: b("a"), Value: b("b")}}}, PropUser)}},

	{name: "SUBSCRIBE 5 options", v: V5, raw: []byte{
		0x82, 0x0f, // SUBSCRIBE (flags 0010), remaining length 15
		0x00, 0x0b, // packet id 11
		0x02,       // properties length 2
		0x0b, 0x07, // subscription identifier 7
		0x00, 0x03, 'a', '/', '+', // filter "a/+"
		0x2d,            // options: retain handling 2, retain as published, no local, QoS 1
		0x00, 0x01, '#', // filter "#"
		0x12, // options: retain handling 1, QoS 2
	}, want: &Subscribe{PacketID: 11, Props: withProps(Properties{SubscriptionIDs: []uint32{7}}, PropSubscriptionID),
		Subs: []Subscription{
			{Filter: b("a/+"), QoS: QoS1, NoLocal: true, RetainAsPublished: true, RetainHandling: 2},
			{Filter: b("#"), QoS: QoS2, RetainHandling: 1},
		}}},

	{name: "SUBACK 5", v: V5, raw: []byte{
		0x90, 0x09, // SUBACK, remaining length 9
		0x00, 0x0b, // packet id 11
		0x04,                  // properties length 4
		0x1f, 0x00, 0x01, 'w', // reason string "w"
		0x01, // granted QoS 1
		0xa2, // wildcard subscriptions not supported
	}, want: &Suback{PacketID: 11, Props: withProps(Properties{ReasonString: b("w")}, PropReasonString),
		Reasons: []ReasonCode{GrantedQoS1, WildcardSubscriptionsNotSupported}}},

	{name: "UNSUBSCRIBE 5", v: V5, raw: []byte{
		0xa2, 0x08, // UNSUBSCRIBE (flags 0010), remaining length 8
		0x00, 0x0c, // packet id 12
		0x00,                      // properties length 0
		0x00, 0x03, 'a', '/', 'b', // filter "a/b"
	}, want: &Unsubscribe{PacketID: 12, Filters: [][]byte{b("a/b")}}},

	{name: "UNSUBACK 5", v: V5, raw: []byte{
		0xb0, 0x05, // UNSUBACK, remaining length 5
		0x00, 0x0c, // packet id 12
		0x00, // properties length 0
		0x00, // success
		0x11, // no subscription existed
	}, want: &Unsuback{PacketID: 12, Reasons: []ReasonCode{Success, NoSubscriptionExisted}}},

	{name: "DISCONNECT 5 short", v: V5, raw: []byte{0xe0, 0x00}, // DISCONNECT, no body: normal disconnection
		want: &Disconnect{}},

	{name: "DISCONNECT 5 reason only", v: V5, raw: []byte{
		0xe0, 0x01, // DISCONNECT, remaining length 1
		0x04, // reason: disconnect with will message
	}, want: &Disconnect{Reason: DisconnectWithWill}},

	{name: "DISCONNECT 5 properties", v: V5, raw: []byte{
		0xe0, 0x12, // DISCONNECT, remaining length 18
		0x8e,                         // reason: session taken over
		0x10,                         // properties length 16
		0x11, 0x00, 0x00, 0x00, 0x00, // session expiry interval 0
		0x1c, 0x00, 0x03, 's', 'r', 'v', // server reference "srv"
		0x1f, 0x00, 0x02, 'b', 'y', // reason string "by"
	}, want: &Disconnect{Reason: SessionTakenOver, Props: withProps(Properties{ServerReference: b("srv"),
		ReasonString: b("by")}, PropSessionExpiry, PropServerReference, PropReasonString)}},

	{name: "AUTH 5 short", v: V5, raw: []byte{0xf0, 0x00}, // AUTH, no body: success
		want: &Auth{}},

	{name: "AUTH 5 continue", v: V5, raw: []byte{
		0xf0, 0x10, // AUTH, remaining length 16
		0x18,                                      // reason: continue authentication
		0x0e,                                      // properties length 14
		0x15, 0x00, 0x05, 'S', 'C', 'R', 'A', 'M', // authentication method "SCRAM"
		0x16, 0x00, 0x03, 0x01, 0x02, 0x03, // authentication data 01 02 03
	}, want: &Auth{Reason: ContinueAuthentication, Props: withProps(Properties{AuthMethod: b("SCRAM"),
		AuthData: []byte{1, 2, 3}}, PropAuthMethod, PropAuthData)}},
}
