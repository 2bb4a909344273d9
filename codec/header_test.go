package codec

import (
	"errors"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

func TestParseHeader(t *testing.T) {
	cases := []struct {
		name      string
		buf       []byte
		maxPacket int
		want      Header
		n         int
	}{
		{"zero length", []byte{0xe0, 0x00}, 0, Header{Type: DISCONNECT}, 2},
		{"one byte length", []byte{0x30, 0x7f}, 0, Header{Type: PUBLISH, Remaining: 127}, 2},
		{"two byte length", []byte{0x32, 0x80, 0x01}, 0, Header{Type: PUBLISH, Flags: 2, Remaining: 128}, 3},
		{"three byte length", []byte{0x82, 0x80, 0x80, 0x01}, 0, Header{Type: SUBSCRIBE, Flags: 2, Remaining: 16384}, 4},
		{"largest length", []byte{0x30, 0xff, 0xff, 0xff, 0x7f}, 0, Header{Type: PUBLISH, Remaining: MaxVarInt}, 5},
		{"non-minimal length accepted", []byte{0x40, 0x82, 0x00}, 0, Header{Type: PUBACK, Remaining: 2}, 3},
		{"body need not be buffered", []byte{0x30, 0x10}, 0, Header{Type: PUBLISH, Remaining: 16}, 2},
		{"exactly maxPacket", []byte{0x30, 0x62}, 100, Header{Type: PUBLISH, Remaining: 98}, 2},
		{"publish all flags", []byte{0x3d, 0x00}, 0, Header{Type: PUBLISH, Flags: 0x0d}, 2},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			h, n, err := ParseHeader(c.buf, c.maxPacket)
			require.NoError(t, err)
			assert.Equal(t, c.want, h)
			assert.Equal(t, c.n, n)
		})
	}
}

func TestParseHeaderIncomplete(t *testing.T) {
	for _, buf := range [][]byte{
		nil,
		{0x30},
		{0x30, 0x80},
		{0x30, 0x80, 0x80},
		{0x30, 0xff, 0xff, 0xff},
	} {
		_, _, err := ParseHeader(buf, 0)
		assert.ErrorIs(t, err, ErrIncomplete, "% x", buf)
	}
}

func TestParseHeaderMalformed(t *testing.T) {
	cases := []struct {
		name      string
		buf       []byte
		maxPacket int
		pkt       Type
		field     string
		reason    ReasonCode
	}{
		{"type 0 rejected from the first byte", []byte{0x00}, 0, 0, "packet type", MalformedPacket},
		{"bad flags rejected from the first byte", []byte{0x11}, 0, CONNECT, "fixed header flags", MalformedPacket},
		{"PUBLISH QoS 3", []byte{0x36, 0x00}, 0, PUBLISH, "qos", MalformedPacket},
		{"PUBLISH QoS 3 with dup and retain", []byte{0x3f}, 0, PUBLISH, "qos", MalformedPacket},
		{"PUBREL flags 0", []byte{0x60, 0x02, 0x00, 0x01}, 0, PUBREL, "fixed header flags", MalformedPacket},
		{"SUBSCRIBE flags 0", []byte{0x80, 0x00}, 0, SUBSCRIBE, "fixed header flags", MalformedPacket},
		{"UNSUBSCRIBE flags 0", []byte{0xa0, 0x00}, 0, UNSUBSCRIBE, "fixed header flags", MalformedPacket},
		{"PUBACK flags 2", []byte{0x42, 0x02}, 0, PUBACK, "fixed header flags", MalformedPacket},
		{"length of five bytes", []byte{0x30, 0xff, 0xff, 0xff, 0xff, 0x01}, 0, PUBLISH, "remaining length",
			MalformedPacket},
		{"length of five bytes, fifth not yet read", []byte{0x30, 0x80, 0x80, 0x80, 0x80}, 0, PUBLISH,
			"remaining length", MalformedPacket},
		{"over maxPacket", []byte{0x30, 0x63}, 100, PUBLISH, "remaining length", PacketTooLarge},
		{"over maxPacket before the body", []byte{0x30, 0xff, 0xff, 0x7f}, 131072, PUBLISH, "remaining length",
			PacketTooLarge},
		{"PINGREQ with a body", []byte{0xc0, 0x01, 0x00}, 0, PINGREQ, "remaining length", MalformedPacket},
		{"PINGRESP with a body", []byte{0xd0, 0x01}, 0, PINGRESP, "remaining length", MalformedPacket},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			_, _, err := ParseHeader(c.buf, c.maxPacket)
			requireMalformed(t, err, c.pkt, c.field, c.reason)
		})
	}
}

// TestParseHeaderFlags checks every type and flags combination against the
// specification's table of fixed-header flags (§2.1.3).
func TestParseHeaderFlags(t *testing.T) {
	required := map[Type]byte{
		CONNECT: 0, CONNACK: 0, PUBACK: 0, PUBREC: 0, PUBREL: 2, PUBCOMP: 0, SUBSCRIBE: 2, SUBACK: 0,
		UNSUBSCRIBE: 2, UNSUBACK: 0, PINGREQ: 0, PINGRESP: 0, DISCONNECT: 0, AUTH: 0,
	}
	for first := 0; first < 256; first++ {
		typ, flags := Type(first>>4), byte(first&15)
		var ok bool
		switch typ {
		case 0:
			ok = false
		case PUBLISH:
			ok = flags&6 != 6
		default:
			ok = flags == required[typ]
		}
		h, n, err := ParseHeader([]byte{byte(first), 0x00}, 0)
		if ok {
			require.NoError(t, err, "first byte %#02x", first)
			assert.Equal(t, Header{Type: typ, Flags: flags}, h)
			assert.Equal(t, 2, n)
		} else {
			var me *MalformedError
			require.True(t, errors.As(err, &me), "first byte %#02x accepted", first)
			assert.Equal(t, MalformedPacket, me.Reason)
		}
	}
}

func TestVarInt(t *testing.T) {
	cases := []struct {
		v    int
		wire []byte
	}{
		{0, []byte{0x00}},
		{127, []byte{0x7f}},
		{128, []byte{0x80, 0x01}},
		{16383, []byte{0xff, 0x7f}},
		{16384, []byte{0x80, 0x80, 0x01}},
		{2097151, []byte{0xff, 0xff, 0x7f}},
		{2097152, []byte{0x80, 0x80, 0x80, 0x01}},
		{MaxVarInt, []byte{0xff, 0xff, 0xff, 0x7f}},
	}
	for _, c := range cases {
		assert.Equal(t, c.wire, AppendVarInt(nil, c.v), "AppendVarInt(%d)", c.v)
		assert.Equal(t, append([]byte{9}, c.wire...), AppendVarInt([]byte{9}, c.v))
		assert.Equal(t, len(c.wire), VarIntSize(c.v), "VarIntSize(%d)", c.v)
		r := reader{b: append(c.wire, 0xee), pkt: PUBLISH}
		got, err := r.varint("x")
		require.NoError(t, err)
		assert.Equal(t, c.v, got)
		assert.Equal(t, []byte{0xee}, r.b, "varint consumed exactly its bytes")
	}
	assert.Equal(t, 4, VarIntSize(MaxVarInt+1))
	assert.Panics(t, func() { AppendVarInt(nil, -1) })
	assert.Panics(t, func() { AppendVarInt(nil, MaxVarInt+1) })

	r := reader{b: []byte{0x80, 0x80, 0x80, 0x80, 0x01}, pkt: PUBLISH}
	_, err := r.varint("x")
	requireMalformed(t, err, PUBLISH, "x", MalformedPacket)
	r = reader{b: []byte{0x80, 0x80}, pkt: PUBLISH}
	_, err = r.varint("x")
	requireMalformed(t, err, PUBLISH, "x", MalformedPacket)
}

func TestValidUTF8(t *testing.T) {
	cases := []struct {
		name string
		in   []byte
		want bool
	}{
		{"empty", nil, true},
		{"ascii", b("sensor/temp-1"), true},
		{"two-byte", b("é"), true},
		{"four-byte", b("𝄞"), true},
		{"control characters allowed", []byte{0x01, 0x1f, 0x7f}, true},
		{"non-character U+FFFF allowed", []byte{0xef, 0xbf, 0xbf}, true},
		{"null", []byte{'a', 0x00, 'b'}, false},
		{"null after multi-byte", []byte{0xc3, 0xa9, 0x00}, false},
		{"surrogate U+D800", []byte{0xed, 0xa0, 0x80}, false},
		{"surrogate U+DFFF", []byte{0xed, 0xbf, 0xbf}, false},
		{"overlong null", []byte{0xc0, 0x80}, false},
		{"overlong slash", []byte{0xe0, 0x80, 0xaf}, false},
		{"above U+10FFFF", []byte{0xf4, 0x90, 0x80, 0x80}, false},
		{"truncated sequence", []byte{0xe2, 0x82}, false},
		{"lone continuation byte", []byte{0x80}, false},
		{"invalid byte 0xff", []byte{'a', 0xff}, false},
	}
	for _, c := range cases {
		assert.Equal(t, c.want, ValidUTF8(c.in), c.name)
	}
}

func TestAppendBinaryLimit(t *testing.T) {
	assert.Len(t, appendBinary(nil, make([]byte, maxString)), 2+maxString)
	assert.Panics(t, func() { appendBinary(nil, make([]byte, maxString+1)) })
}
