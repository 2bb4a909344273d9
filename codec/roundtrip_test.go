package codec

import (
	"bytes"
	"fmt"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

// roundTripCases are packets built by hand, beyond the fixtures, each valid
// in the versions listed.
func roundTripCases() []struct {
	name     string
	versions []Version
	pkt      any
} {
	manySubs := &Subscribe{PacketID: 65535}
	manyReasons := &Suback{PacketID: 2}
	for i := 0; i < 300; i++ {
		manySubs.Subs = append(manySubs.Subs, Subscription{Filter: []byte(fmt.Sprintf("dev/%d/+", i)), QoS: QoS(i % 3)})
		manyReasons.Reasons = append(manyReasons.Reasons, ReasonCode(i%3))
	}
	both := []Version{V311, V5}
	return []struct {
		name     string
		versions []Version
		pkt      any
	}{
		{"CONNECT 3.1 will", []Version{V31}, &Connect{ProtocolName: b("MQIsdp"), Version: V31, CleanStart: true,
			KeepAlive: 65535, ClientID: b("client-31"), WillFlag: true, WillQoS: QoS2, WillTopic: b("lwt"),
			UsernameFlag: true, Username: b("u"), PasswordFlag: true, Password: b("p")}},
		{"CONNECT 3.1.1 empty will payload and password", []Version{V311}, &Connect{ProtocolName: b("MQTT"),
			Version: V311, ClientID: b("c"), WillFlag: true, WillTopic: b("t"), UsernameFlag: true,
			Username: b("ü"), PasswordFlag: true}},
		{"CONNECT 5 will retain", []Version{V5}, &Connect{ProtocolName: b("MQTT"), Version: V5, ClientID: b("c"),
			WillFlag: true, WillRetain: true, WillQoS: QoS1, WillTopic: b("t"), WillPayload: bytes.Repeat(b("x"), 70000)[:65535]}},
		{"CONNACK every 3.1.1 code", []Version{V311}, &Connack{Reason: ConnRefusedServerUnavailable}},
		{"PUBLISH unicode topic", both, &Publish{Topic: b("温度/センサー/🌡"), Payload: b("21.5"), QoS: QoS2,
			PacketID: 65535, Retain: true}},
		{"PUBLISH empty payload QoS 0", both, &Publish{Topic: b("a")}},
		{"PUBLISH large payload", both, &Publish{Topic: b("big"), Payload: bytes.Repeat([]byte{7}, 300000), QoS: QoS1,
			PacketID: 3, Dup: true}},
		{"PUBLISH topic of 65535 bytes", both, &Publish{Topic: bytes.Repeat(b("a"), 65535)}},
		{"SUBSCRIBE 300 filters", both, manySubs},
		{"SUBACK 300 reasons", both, manyReasons},
		{"UNSUBSCRIBE", both, &Unsubscribe{PacketID: 9, Filters: [][]byte{b("$share/g/a/#"), b("+/+")}}},
		{"UNSUBACK 5 reasons", []Version{V5}, &Unsuback{PacketID: 9, Reasons: []ReasonCode{NotAuthorized,
			TopicFilterInvalid, PacketIdentifierInUse}}},
		{"PUBREC 5 quota", []Version{V5}, &Ack{Kind: PUBREC, PacketID: 1, Reason: QuotaExceeded}},
		{"DISCONNECT 5 every reason", []Version{V5}, &Disconnect{Reason: WildcardSubscriptionsNotSupported}},
		{"AUTH 5 re-authenticate", []Version{V5}, &Auth{Reason: ReAuthenticate, Props: withProps(Properties{
			AuthMethod: b("m")}, PropAuthMethod)}},
	}
}

func TestRoundTrip(t *testing.T) {
	for _, c := range roundTripCases() {
		for _, v := range c.versions {
			t.Run(fmt.Sprintf("%s/v%d", c.name, v), func(t *testing.T) {
				enc := encodePacket(c.pkt, v)
				got, err := parseWhole(enc, v)
				require.NoError(t, err)
				assert.Equal(t, c.pkt, got)
			})
		}
	}
}

// TestRoundTripFixtures: every fixture's value encodes and decodes back,
// in the version of its fixture.
func TestRoundTripFixtures(t *testing.T) {
	for _, f := range fixtures {
		t.Run(f.name, func(t *testing.T) {
			enc := encodePacket(f.want, f.v)
			got, err := parseWhole(enc, f.v)
			require.NoError(t, err)
			assert.Equal(t, f.want, got)
		})
	}
}

// TestReasonCodesRoundTrip sends every reason code each packet allows, and
// checks that every other code is refused.
func TestReasonCodesRoundTrip(t *testing.T) {
	allowed := map[string][]ReasonCode{
		"CONNACK": {0x00, 0x80, 0x81, 0x82, 0x83, 0x84, 0x85, 0x86, 0x87, 0x88, 0x89, 0x8a, 0x8c, 0x90, 0x95, 0x97,
			0x99, 0x9a, 0x9b, 0x9c, 0x9d, 0x9f},
		"PUBACK":   {0x00, 0x10, 0x80, 0x83, 0x87, 0x90, 0x91, 0x97, 0x99},
		"PUBREC":   {0x00, 0x10, 0x80, 0x83, 0x87, 0x90, 0x91, 0x97, 0x99},
		"PUBREL":   {0x00, 0x92},
		"PUBCOMP":  {0x00, 0x92},
		"SUBACK":   {0x00, 0x01, 0x02, 0x80, 0x83, 0x87, 0x8f, 0x91, 0x97, 0x9e, 0xa1, 0xa2},
		"UNSUBACK": {0x00, 0x11, 0x80, 0x83, 0x87, 0x8f, 0x91},
		"DISCONNECT": {0x00, 0x04, 0x80, 0x81, 0x82, 0x83, 0x87, 0x89, 0x8b, 0x8d, 0x8e, 0x8f, 0x90, 0x93, 0x94,
			0x95, 0x96, 0x97, 0x98, 0x99, 0x9a, 0x9b, 0x9c, 0x9d, 0x9e, 0x9f, 0xa0, 0xa1, 0xa2},
		"AUTH": {0x00, 0x18, 0x19},
	}
	build := func(place string, rc ReasonCode) any {
		switch place {
		case "CONNACK":
			return &Connack{Reason: rc}
		case "SUBACK":
			return &Suback{PacketID: 1, Reasons: []ReasonCode{rc}}
		case "UNSUBACK":
			return &Unsuback{PacketID: 1, Reasons: []ReasonCode{rc}}
		case "DISCONNECT":
			return &Disconnect{Reason: rc}
		case "AUTH":
			return &Auth{Reason: rc}
		}
		return &Ack{Kind: map[string]Type{"PUBACK": PUBACK, "PUBREC": PUBREC, "PUBREL": PUBREL,
			"PUBCOMP": PUBCOMP}[place], PacketID: 1, Reason: rc}
	}
	for place, codes := range allowed {
		ok := map[ReasonCode]bool{}
		for _, rc := range codes {
			ok[rc] = true
		}
		for code := 0; code < 256; code++ {
			rc := ReasonCode(code)
			pkt := build(place, rc)
			got, err := parseWhole(encodePacket(pkt, V5), V5)
			if ok[rc] {
				require.NoError(t, err, "%s %v", place, rc)
				assert.Equal(t, pkt, got)
			} else {
				var me *MalformedError
				require.ErrorAs(t, err, &me, "%s accepted %v", place, rc)
				assert.Contains(t, me.Field, "reason code")
			}
		}
	}
}
