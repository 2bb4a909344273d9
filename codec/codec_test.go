package codec

import (
	"bytes"
	"errors"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

func TestDecodeFixtures(t *testing.T) {
	for _, f := range fixtures {
		t.Run(f.name, func(t *testing.T) {
			got, err := parseWhole(f.raw, f.v)
			require.NoError(t, err)
			assert.Equal(t, f.want, got)
		})
	}
}

func TestEncodeFixtures(t *testing.T) {
	for _, f := range fixtures {
		t.Run(f.name, func(t *testing.T) {
			enc := encodePacket(f.want, f.v)
			if f.nonCanonical {
				assert.NotEqual(t, f.raw, enc, "fixture marked non-canonical encodes as given")
				got, err := parseWhole(enc, f.v)
				require.NoError(t, err)
				assert.Equal(t, f.want, got)
				return
			}
			assert.Equal(t, f.raw, enc, "want % x\n got % x", f.raw, enc)
			// Appending to a non-empty slice keeps what was there.
			prefixed := encodeAfter([]byte{0xde, 0xad}, f.want, f.v)
			assert.Equal(t, append([]byte{0xde, 0xad}, f.raw...), prefixed)
		})
	}
}

// encodeAfter is encodePacket into a slice that already holds bytes.
func encodeAfter(dst []byte, pkt any, v Version) []byte {
	return append(dst, encodePacket(pkt, v)...)
}

// TestSplitEveryOffset feeds every prefix of each fixture to the framer:
// it must report "incomplete" (ErrIncomplete, or a header whose packet
// extends past the buffer) until the whole packet is there, then decode it
// as from the whole buffer. A second packet behind it must not change that.
func TestSplitEveryOffset(t *testing.T) {
	for _, f := range fixtures {
		t.Run(f.name, func(t *testing.T) {
			next := []byte{0xc0, 0x00} // a PINGREQ queued behind the packet
			stream := append(append([]byte{}, f.raw...), next...)
			for i := 0; i <= len(stream); i++ {
				// A fresh slice of exactly i bytes: reading past it panics.
				buf := append([]byte(nil), stream[:i]...)
				h, n, err := ParseHeader(buf, 0)
				if errors.Is(err, ErrIncomplete) {
					require.Less(t, i, len(f.raw), "incomplete at %d of %d bytes", i, len(f.raw))
					continue
				}
				require.NoError(t, err, "prefix of %d bytes", i)
				if len(buf) < n+h.Remaining {
					require.Less(t, i, len(f.raw), "body incomplete at %d", i)
					continue
				}
				require.GreaterOrEqual(t, i, len(f.raw), "complete after only %d bytes", i)
				require.Equal(t, len(f.raw), n+h.Remaining)
				got, err := decodePacket(h, buf[n:n+h.Remaining], f.v)
				require.NoError(t, err)
				assert.Equal(t, f.want, got)
				if i == len(stream) {
					h2, n2, err := ParseHeader(buf[n+h.Remaining:], 0)
					require.NoError(t, err)
					assert.Equal(t, Header{Type: PINGREQ}, h2)
					assert.Equal(t, 2, n2)
				}
			}
		})
	}
}

// TestDecodeTruncated cuts each fixture's body short: the decoder must fail
// with a *MalformedError (never panic), except where a shorter body is a
// valid packet of its own (PUBLISH payloads, MQTT 5 short forms).
func TestDecodeTruncated(t *testing.T) {
	for _, f := range fixtures {
		h, n, err := ParseHeader(f.raw, 0)
		require.NoError(t, err, f.name)
		for cut := 0; cut < h.Remaining; cut++ {
			body := append([]byte(nil), f.raw[n:n+cut]...)
			_, err := decodePacket(h, body, f.v)
			if err != nil {
				var me *MalformedError
				require.ErrorAs(t, err, &me, "%s cut at %d", f.name, cut)
			}
		}
	}
}

func TestDecodeReusedValueIsReset(t *testing.T) {
	full := fixtureNamed(t, "PUBLISH 5 QoS 1 properties")
	plain := fixtureNamed(t, "PUBLISH 3.1.1 QoS 0")
	var p Publish
	_, err := decodeInto(&p, full.raw, V5)
	require.NoError(t, err)
	_, err = decodeInto(&p, plain.raw, V311)
	require.NoError(t, err)
	assert.Equal(t, b("a/b"), p.Topic)
	assert.Equal(t, b("hi"), p.Payload)
	assert.Zero(t, p.PacketID)
	assert.Zero(t, p.QoS)
	assert.Zero(t, p.Props.Present)
	assert.Empty(t, p.Props.User)
	assert.Empty(t, p.Props.SubscriptionIDs)
	assert.Nil(t, p.Props.ContentType)

	var c Connect
	_, err = decodeInto(&c, fixtureNamed(t, "CONNECT 5 full").raw, V5)
	require.NoError(t, err)
	_, err = decodeInto(&c, fixtureNamed(t, "CONNECT 3.1.1 minimal").raw, V311)
	require.NoError(t, err)
	assert.False(t, c.WillFlag)
	assert.Nil(t, c.WillTopic)
	assert.Nil(t, c.Username)
	assert.Zero(t, c.Props.Present)
	assert.Zero(t, c.WillProps.Present)
	assert.Equal(t, V311, c.Version)

	var s Subscribe
	_, err = decodeInto(&s, fixtureNamed(t, "SUBSCRIBE 5 options").raw, V5)
	require.NoError(t, err)
	_, err = decodeInto(&s, []byte{0x82, 0x06, 0x00, 0x01, 0x00, 0x01, 'x', 0x00}, V311)
	require.NoError(t, err)
	assert.Equal(t, []Subscription{{Filter: b("x")}}, s.Subs)
	assert.Zero(t, s.Props.Present)
}

func fixtureNamed(t testing.TB, name string) fixture {
	t.Helper()
	for _, f := range fixtures {
		if f.name == name {
			return f
		}
	}
	t.Fatalf("no fixture %q", name)
	return fixture{}
}

// decodeInto frames raw and decodes it into p, a pointer to a packet value.
func decodeInto(p any, raw []byte, v Version) (Header, error) {
	h, n, err := ParseHeader(raw, 0)
	if err != nil {
		return h, err
	}
	body := raw[n : n+h.Remaining]
	switch p := p.(type) {
	case *Connect:
		return h, p.Decode(body)
	case *Connack:
		return h, p.Decode(h, body, v)
	case *Publish:
		return h, p.Decode(h, body, v)
	case *Ack:
		return h, p.Decode(h, body, v)
	case *Subscribe:
		return h, p.Decode(h, body, v)
	case *Suback:
		return h, p.Decode(h, body, v)
	case *Unsubscribe:
		return h, p.Decode(h, body, v)
	case *Unsuback:
		return h, p.Decode(h, body, v)
	case *Disconnect:
		return h, p.Decode(h, body, v)
	case *Auth:
		return h, p.Decode(h, body, v)
	}
	panic("decodeInto: unknown packet type")
}

func TestDecodeRejectsForeignHeader(t *testing.T) {
	body := []byte{0x00, 0x01}
	var ack Ack
	requireMalformed(t, ack.Decode(Header{Type: PUBLISH, Remaining: 2}, body, V311), PUBLISH, "packet type",
		MalformedPacket)
	requireMalformed(t, ack.Decode(Header{Type: PUBREL, Remaining: 2}, body, V311), PUBREL, "fixed header flags",
		MalformedPacket)
	var pub Publish
	requireMalformed(t, pub.Decode(Header{Type: PUBACK, Remaining: 2}, body, V311), PUBLISH, "packet type",
		MalformedPacket)
	requireMalformed(t, pub.Decode(Header{Type: PUBLISH, Flags: 0x06}, body, V311), PUBLISH, "qos",
		MalformedPacket)
	var sub Subscribe
	requireMalformed(t, sub.Decode(Header{Type: SUBSCRIBE}, body, V311), SUBSCRIBE, "fixed header flags",
		MalformedPacket)
}

func TestPublishSizeAndHeader(t *testing.T) {
	for _, f := range fixtures {
		p, ok := f.want.(*Publish)
		if !ok {
			continue
		}
		t.Run(f.name, func(t *testing.T) {
			assert.Equal(t, len(f.raw), p.Size(f.v))
			head := p.AppendHeader(nil, f.v)
			assert.Equal(t, f.raw[:len(f.raw)-len(p.Payload)], head)
			assert.Equal(t, f.raw, p.Append(nil, f.v))
		})
	}
	// A payload big enough for a three-byte remaining length.
	big := &Publish{Topic: b("t"), Payload: bytes.Repeat([]byte{1}, 20000), QoS: QoS1, PacketID: 1}
	enc := big.Append(nil, V5)
	assert.Len(t, enc, big.Size(V5))
	h, n, err := ParseHeader(enc, 0)
	require.NoError(t, err)
	assert.Equal(t, 4, n)
	var got Publish
	require.NoError(t, got.Decode(h, enc[n:], V5))
	assert.Equal(t, big.Payload, got.Payload)
}

func TestPingAppend(t *testing.T) {
	assert.Equal(t, []byte{0xc0, 0x00}, AppendPingreq(nil))
	assert.Equal(t, []byte{0xd0, 0x00}, AppendPingresp(nil))
	assert.Equal(t, []byte{1, 0xc0, 0x00}, AppendPingreq([]byte{1}))
}

func TestShortForms(t *testing.T) {
	// MQTT 5 acknowledgements, DISCONNECT and AUTH shrink to their shortest
	// valid form; 3.1.1 ignores reason codes and properties they cannot carry.
	withReason := withProps(Properties{ReasonString: b("r")}, PropReasonString)
	cases := []struct {
		name string
		pkt  any
		v    Version
		want []byte
	}{
		{"PUBACK 5 success", &Ack{Kind: PUBACK, PacketID: 9}, V5, []byte{0x40, 0x02, 0x00, 0x09}},
		{"PUBREL 5 reason", &Ack{Kind: PUBREL, PacketID: 9, Reason: PacketIdentifierNotFound}, V5,
			[]byte{0x62, 0x03, 0x00, 0x09, 0x92}},
		{"PUBACK 5 props", &Ack{Kind: PUBACK, PacketID: 9, Props: withReason}, V5,
			[]byte{0x40, 0x08, 0x00, 0x09, 0x00, 0x04, 0x1f, 0x00, 0x01, 'r'}},
		{"PUBACK 3.1.1 drops reason", &Ack{Kind: PUBACK, PacketID: 9, Reason: NotAuthorized, Props: withReason}, V311,
			[]byte{0x40, 0x02, 0x00, 0x09}},
		{"DISCONNECT 3.1.1 drops reason", &Disconnect{Reason: ServerShuttingDown}, V311, []byte{0xe0, 0x00}},
		{"DISCONNECT 5 reason", &Disconnect{Reason: ServerShuttingDown}, V5, []byte{0xe0, 0x01, 0x8b}},
		{"DISCONNECT 5 success props", &Disconnect{Props: withReason}, V5,
			[]byte{0xe0, 0x06, 0x00, 0x04, 0x1f, 0x00, 0x01, 'r'}},
		{"AUTH 5 reason no props", &Auth{Reason: ReAuthenticate}, V5, []byte{0xf0, 0x02, 0x19, 0x00}},
		{"UNSUBACK 3.1.1 drops reasons", &Unsuback{PacketID: 3, Reasons: []ReasonCode{Success}}, V311,
			[]byte{0xb0, 0x02, 0x00, 0x03}},
		{"CONNACK 3.1.1 drops props", &Connack{Reason: ConnRefusedBadCredentials, Props: withReason}, V311,
			[]byte{0x20, 0x02, 0x00, 0x04}},
		{"SUBSCRIBE 3.1.1 drops v5 options", &Subscribe{PacketID: 1, Subs: []Subscription{{Filter: b("x"),
			QoS: QoS1, NoLocal: true, RetainAsPublished: true, RetainHandling: 2}}}, V311,
			[]byte{0x82, 0x06, 0x00, 0x01, 0x00, 0x01, 'x', 0x01}},
		{"CONNECT will fields only with will flag", &Connect{Version: V311, WillQoS: QoS1, WillRetain: true,
			WillTopic: b("w"), Username: b("u")}, V311,
			[]byte{0x10, 0x0c, 0x00, 0x04, 'M', 'Q', 'T', 'T', 0x04, 0x00, 0x00, 0x00, 0x00, 0x00}},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			assert.Equal(t, c.want, encodePacket(c.pkt, c.v))
		})
	}
}

func TestMalformedErrorText(t *testing.T) {
	err := error(&MalformedError{Packet: PUBLISH, Field: "topic", Reason: TopicNameInvalid, Msg: "wildcard"})
	assert.Equal(t, "codec: malformed PUBLISH: topic: wildcard", err.Error())
	assert.ErrorIs(t, err, TopicNameInvalid)
	assert.NotErrorIs(t, err, MalformedPacket)
}
