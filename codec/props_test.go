package codec

import (
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

// specPlaces is table 2-4 of the MQTT 5 specification (§2.2.2.2), written
// out independently of the codec's masks: where each property may appear.
// "WILL" stands for the will properties of CONNECT.
var specPlaces = map[PropID][]string{
	PropPayloadFormat:        {"PUBLISH", "WILL"},
	PropMessageExpiry:        {"PUBLISH", "WILL"},
	PropContentType:          {"PUBLISH", "WILL"},
	PropResponseTopic:        {"PUBLISH", "WILL"},
	PropCorrelationData:      {"PUBLISH", "WILL"},
	PropSubscriptionID:       {"PUBLISH", "SUBSCRIBE"},
	PropSessionExpiry:        {"CONNECT", "CONNACK", "DISCONNECT"},
	PropAssignedClientID:     {"CONNACK"},
	PropServerKeepAlive:      {"CONNACK"},
	PropAuthMethod:           {"CONNECT", "CONNACK", "AUTH"},
	PropAuthData:             {"CONNECT", "CONNACK", "AUTH"},
	PropRequestProblemInfo:   {"CONNECT"},
	PropWillDelay:            {"WILL"},
	PropRequestResponseInfo:  {"CONNECT"},
	PropResponseInfo:         {"CONNACK"},
	PropServerReference:      {"CONNACK", "DISCONNECT"},
	PropReasonString:         {"CONNACK", "PUBACK", "PUBREC", "PUBREL", "PUBCOMP", "SUBACK", "UNSUBACK", "DISCONNECT", "AUTH"},
	PropReceiveMaximum:       {"CONNECT", "CONNACK"},
	PropTopicAliasMaximum:    {"CONNECT", "CONNACK"},
	PropTopicAlias:           {"PUBLISH"},
	PropMaximumQoS:           {"CONNACK"},
	PropRetainAvailable:      {"CONNACK"},
	PropUser:                 {"CONNECT", "CONNACK", "PUBLISH", "WILL", "PUBACK", "PUBREC", "PUBREL", "PUBCOMP", "SUBSCRIBE", "SUBACK", "UNSUBSCRIBE", "UNSUBACK", "DISCONNECT", "AUTH"},
	PropMaximumPacketSize:    {"CONNECT", "CONNACK"},
	PropWildcardSubAvailable: {"CONNACK"},
	PropSubIDAvailable:       {"CONNACK"},
	PropSharedSubAvailable:   {"CONNACK"},
}

var scopesByPlace = map[string]*propScope{
	"CONNECT": &scopeConnect, "WILL": &scopeWill, "CONNACK": &scopeConnack, "PUBLISH": &scopePublish,
	"PUBACK": &scopeAck[0], "PUBREC": &scopeAck[1], "PUBREL": &scopeAck[2], "PUBCOMP": &scopeAck[3],
	"SUBSCRIBE": &scopeSubscribe, "SUBACK": &scopeSuback, "UNSUBSCRIBE": &scopeUnsubscribe,
	"UNSUBACK": &scopeUnsuback, "DISCONNECT": &scopeDisconnect, "AUTH": &scopeAuth,
}

// sampleProp returns a Properties holding only id with a valid, non-zero
// value (two entries for the repeatable ones).
func sampleProp(id PropID) Properties {
	var p Properties
	switch id {
	case PropPayloadFormat:
		p.PayloadFormat = 1
	case PropMessageExpiry:
		p.MessageExpiry = 0x01020304
	case PropContentType:
		p.ContentType = b("text/plain; charset=utf-8")
	case PropResponseTopic:
		p.ResponseTopic = b("reply/to/me")
	case PropCorrelationData:
		p.CorrelationData = []byte{0, 1, 0xff}
	case PropSubscriptionID:
		p.SubscriptionIDs = []uint32{1, MaxVarInt}
	case PropSessionExpiry:
		p.SessionExpiry = 0xffffffff
	case PropAssignedClientID:
		p.AssignedClientID = b("auto-1")
	case PropServerKeepAlive:
		p.ServerKeepAlive = 0xffff
	case PropAuthMethod:
		p.AuthMethod = b("SCRAM-SHA-256")
	case PropAuthData:
		p.AuthData = []byte{9, 8, 7}
	case PropRequestProblemInfo:
		p.RequestProblemInfo = 1
	case PropWillDelay:
		p.WillDelay = 30
	case PropRequestResponseInfo:
		p.RequestResponseInfo = 1
	case PropResponseInfo:
		p.ResponseInfo = b("resp/")
	case PropServerReference:
		p.ServerReference = b("other:1883")
	case PropReasonString:
		p.ReasonString = b("because")
	case PropReceiveMaximum:
		p.ReceiveMaximum = 65535
	case PropTopicAliasMaximum:
		p.TopicAliasMaximum = 10
	case PropTopicAlias:
		p.TopicAlias = 7
	case PropMaximumQoS:
		p.MaximumQoS = 1
	case PropRetainAvailable:
		p.RetainAvailable = 1
	case PropUser:
		p.User = []UserProperty{{Key: b("k"), Value: b("v")}, {Key: b("k"), Value: b("ü")}}
	case PropMaximumPacketSize:
		p.MaximumPacketSize = 131072
	case PropWildcardSubAvailable:
		p.WildcardSubAvailable = 1
	case PropSubIDAvailable:
		p.SubIDAvailable = 1
	case PropSharedSubAvailable:
		p.SharedSubAvailable = 1
	}
	p.Set(id)
	return p
}

// packetWithProps wraps props into a valid MQTT 5 packet of the given place.
func packetWithProps(place string, props Properties) any {
	switch place {
	case "CONNECT":
		return &Connect{ProtocolName: b("MQTT"), Version: V5, ClientID: b("c"), Props: props}
	case "WILL":
		return &Connect{ProtocolName: b("MQTT"), Version: V5, ClientID: b("c"), WillFlag: true,
			WillTopic: b("w"), WillPayload: b("x"), WillProps: props}
	case "CONNACK":
		return &Connack{Props: props}
	case "PUBLISH":
		return &Publish{Topic: b("t"), QoS: QoS1, PacketID: 1, Payload: b("p"), Props: props}
	case "PUBACK", "PUBREC", "PUBREL", "PUBCOMP":
		kinds := map[string]Type{"PUBACK": PUBACK, "PUBREC": PUBREC, "PUBREL": PUBREL, "PUBCOMP": PUBCOMP}
		return &Ack{Kind: kinds[place], PacketID: 1, Props: props}
	case "SUBSCRIBE":
		return &Subscribe{PacketID: 1, Props: props, Subs: []Subscription{{Filter: b("a/#"), QoS: QoS1}}}
	case "SUBACK":
		return &Suback{PacketID: 1, Props: props, Reasons: []ReasonCode{GrantedQoS1}}
	case "UNSUBSCRIBE":
		return &Unsubscribe{PacketID: 1, Props: props, Filters: [][]byte{b("a/#")}}
	case "UNSUBACK":
		return &Unsuback{PacketID: 1, Props: props, Reasons: []ReasonCode{Success}}
	case "DISCONNECT":
		return &Disconnect{Props: props}
	case "AUTH":
		return &Auth{Reason: ContinueAuthentication, Props: props}
	}
	panic("unknown place " + place)
}

// TestPropertyRoundTrip puts every property alone in every packet that
// allows it, then encodes and decodes the packet.
func TestPropertyRoundTrip(t *testing.T) {
	require.Len(t, specPlaces, 27, "every property identifier of MQTT 5")
	for id, places := range specPlaces {
		for _, place := range places {
			props := sampleProp(id)
			if id == PropAuthData { // Authentication Data needs its method
				props.AuthMethod = b("m")
				props.Set(PropAuthMethod)
			}
			if id == PropSubscriptionID && place == "SUBSCRIBE" { // one only in SUBSCRIBE
				props.SubscriptionIDs = props.SubscriptionIDs[:1]
			}
			t.Run(place+"/"+id.String(), func(t *testing.T) {
				pkt := packetWithProps(place, props)
				enc := encodePacket(pkt, V5)
				got, err := parseWhole(enc, V5)
				require.NoError(t, err, "% x", enc)
				assert.Equal(t, pkt, got)
			})
		}
	}
}

// TestAllPropertiesRoundTrip fills each place with every property it allows.
func TestAllPropertiesRoundTrip(t *testing.T) {
	all := map[string]Properties{}
	for id, places := range specPlaces {
		for _, place := range places {
			p := all[place]
			s := sampleProp(id)
			if id == PropSubscriptionID && place == "SUBSCRIBE" { // one only in SUBSCRIBE
				s.SubscriptionIDs = s.SubscriptionIDs[:1]
			}
			mergeProps(&p, &s)
			all[place] = p
		}
	}
	require.Len(t, all, 14)
	for place, props := range all {
		t.Run(place, func(t *testing.T) {
			pkt := packetWithProps(place, props)
			enc := encodePacket(pkt, V5)
			got, err := parseWhole(enc, V5)
			require.NoError(t, err, "% x", enc)
			assert.Equal(t, pkt, got)
		})
	}
}

// mergeProps copies the present properties of src into dst.
func mergeProps(dst, src *Properties) {
	for id := PropID(0); id < 64; id++ {
		if !src.Has(id) {
			continue
		}
		dst.Set(id)
		switch propInfoOf(id).kind {
		case kindByte:
			*dst.bytePtr(id) = *src.bytePtr(id)
		case kindU16:
			*dst.u16Ptr(id) = *src.u16Ptr(id)
		case kindU32:
			*dst.u32Ptr(id) = *src.u32Ptr(id)
		case kindString, kindBinary:
			*dst.bytesPtr(id) = *src.bytesPtr(id)
		case kindVarInt:
			dst.SubscriptionIDs = src.SubscriptionIDs
		case kindPair:
			dst.User = src.User
		}
	}
}

// TestPropertyPlaces decodes a property block holding each identifier
// (all 128 single-byte ones) in each place: it must be accepted exactly
// where table 2-4 allows it.
func TestPropertyPlaces(t *testing.T) {
	for id := PropID(0); id < 0x80; id++ {
		allowedIn := map[string]bool{}
		for _, place := range specPlaces[id] {
			allowedIn[place] = true
		}
		for place, sc := range scopesByPlace {
			value := []byte{0x02, byte(id), 0x00} // unknown: any value
			if _, known := specPlaces[id]; known {
				s := sampleProp(id)
				if id == PropSubscriptionID && place == "SUBSCRIBE" { // one only in SUBSCRIBE
					s.SubscriptionIDs = s.SubscriptionIDs[:1]
				}
				value = appendProps(nil, &s, s.Size())
			}
			var p Properties
			r := reader{b: value, pkt: sc.pkt}
			err := p.decode(&r, sc)
			if allowedIn[place] {
				assert.NoError(t, err, "%v in %s", id, place)
				assert.True(t, p.Has(id), "%v in %s", id, place)
				continue
			}
			want := "property identifier"
			if place == "WILL" {
				want = "will properties: property identifier"
			}
			requireMalformed(t, err, sc.pkt, want, MalformedPacket)
		}
	}
}

// TestPropertyRepeats: only User Property may repeat, and Subscription
// Identifier in PUBLISH.
func TestPropertyRepeats(t *testing.T) {
	for id, places := range specPlaces {
		s := sampleProp(id)
		if id == PropSubscriptionID {
			s.SubscriptionIDs = []uint32{5}
		}
		one := appendProps(nil, &s, s.Size())[1:] // without the length prefix
		twice := append(AppendVarInt(nil, 2*len(one)), append(one, one...)...)
		for _, place := range places {
			sc := scopesByPlace[place]
			var p Properties
			r := reader{b: twice, pkt: sc.pkt}
			err := p.decode(&r, sc)
			if id == PropUser || (id == PropSubscriptionID && place == "PUBLISH") {
				assert.NoError(t, err, "%v twice in %s", id, place)
				continue
			}
			field := id.String()
			if place == "WILL" {
				field = "will properties: " + field
			}
			requireMalformed(t, err, sc.pkt, field, ProtocolError)
		}
	}
}

// TestBooleanProperties: the Byte properties with values 0 and 1 only.
func TestBooleanProperties(t *testing.T) {
	for _, c := range []struct {
		id    PropID
		place string
	}{
		{PropPayloadFormat, "PUBLISH"}, {PropRequestProblemInfo, "CONNECT"}, {PropRequestResponseInfo, "CONNECT"},
		{PropMaximumQoS, "CONNACK"}, {PropRetainAvailable, "CONNACK"}, {PropWildcardSubAvailable, "CONNACK"},
		{PropSubIDAvailable, "CONNACK"}, {PropSharedSubAvailable, "CONNACK"},
	} {
		sc := scopesByPlace[c.place]
		for v := 0; v < 256; v++ {
			var p Properties
			r := reader{b: []byte{0x02, byte(c.id), byte(v)}, pkt: sc.pkt}
			err := p.decode(&r, sc)
			if v <= 1 {
				require.NoError(t, err)
				assert.Equal(t, byte(v), *p.bytePtr(c.id))
			} else {
				requireMalformed(t, err, sc.pkt, c.id.String(), ProtocolError)
			}
		}
	}
}

func TestPropertiesSize(t *testing.T) {
	var empty Properties
	assert.Equal(t, 0, empty.Size())
	assert.Equal(t, []byte{0x00}, appendProps(nil, &empty, 0))

	// The presence bits of User and SubscriptionIDs are informational on
	// encode: the slices decide.
	p := Properties{User: []UserProperty{{Key: b("a"), Value: b("b")}}, SubscriptionIDs: []uint32{200}}
	assert.Equal(t, 7+3, p.Size())
	assert.Equal(t, []byte{0x0a, 0x0b, 0xc8, 0x01, 0x26, 0x00, 0x01, 'a', 0x00, 0x01, 'b'}, appendProps(nil, &p, p.Size()))
	p = Properties{}
	p.Set(PropUser)
	assert.Equal(t, 0, p.Size())

	// A present empty string is written (and is not the same as absent).
	p = Properties{}
	p.Set(PropReasonString)
	assert.Equal(t, 3, p.Size())
	assert.Equal(t, []byte{0x03, 0x1f, 0x00, 0x00}, appendProps(nil, &p, p.Size()))

	for id := range specPlaces {
		s := sampleProp(id)
		assert.Len(t, appendProps(nil, &s, s.Size()), propsFieldSize(s.Size()), id.String())
	}
}

func TestPropIDString(t *testing.T) {
	assert.Equal(t, "topic alias", PropTopicAlias.String())
	assert.Equal(t, "property 0x7f", PropID(0x7f).String())
	assert.Equal(t, "property 0x0", PropID(0).String())
}

// TestDecodeReusesUserCapacity: a reused Properties keeps its User and
// SubscriptionIDs arrays.
func TestDecodeReusesUserCapacity(t *testing.T) {
	s := sampleProp(PropUser)
	raw := appendProps(nil, &s, s.Size())
	var p Properties
	r := reader{b: raw, pkt: PUBLISH}
	require.NoError(t, p.decode(&r, &scopePublish))
	first := &p.User[0]
	arrays := p.arrays()
	p = Properties{}
	p.restore(arrays)
	r = reader{b: raw, pkt: PUBLISH}
	require.NoError(t, p.decode(&r, &scopePublish))
	assert.Same(t, first, &p.User[0])
	assert.Equal(t, s.User, p.User)
}
