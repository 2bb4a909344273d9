package codec

import (
	"errors"
	"fmt"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

// ping stands for a PINGREQ or PINGRESP in the fixture tables: the two
// have no struct of their own.
type ping Type

// b is shorthand for []byte("...") in expected structs.
func b(s string) []byte { return []byte(s) }

// withProps returns p with the presence bits of ids set, so fixtures say
// explicitly which properties they expect.
func withProps(p Properties, ids ...PropID) Properties {
	for _, id := range ids {
		p.Set(id)
	}
	return p
}

// decodePacket decodes a body with the decoder of h.Type into a fresh value.
func decodePacket(h Header, body []byte, v Version) (any, error) {
	switch h.Type {
	case CONNECT:
		p := &Connect{}
		return p, p.Decode(body)
	case CONNACK:
		p := &Connack{}
		return p, p.Decode(h, body, v)
	case PUBLISH:
		p := &Publish{}
		return p, p.Decode(h, body, v)
	case PUBACK, PUBREC, PUBREL, PUBCOMP:
		p := &Ack{}
		return p, p.Decode(h, body, v)
	case SUBSCRIBE:
		p := &Subscribe{}
		return p, p.Decode(h, body, v)
	case SUBACK:
		p := &Suback{}
		return p, p.Decode(h, body, v)
	case UNSUBSCRIBE:
		p := &Unsubscribe{}
		return p, p.Decode(h, body, v)
	case UNSUBACK:
		p := &Unsuback{}
		return p, p.Decode(h, body, v)
	case PINGREQ, PINGRESP:
		if len(body) != 0 {
			return nil, errors.New("ping with a body")
		}
		return ping(h.Type), nil
	case DISCONNECT:
		p := &Disconnect{}
		return p, p.Decode(h, body, v)
	case AUTH:
		p := &Auth{}
		return p, p.Decode(h, body, v)
	}
	return nil, fmt.Errorf("no decoder for %v", h.Type)
}

// encodePacket appends pkt, a value decodePacket returns, to a nil slice.
func encodePacket(pkt any, v Version) []byte {
	switch p := pkt.(type) {
	case *Connect:
		return p.Append(nil)
	case *Connack:
		return p.Append(nil, v)
	case *Publish:
		return p.Append(nil, v)
	case *Ack:
		return p.Append(nil, v)
	case *Subscribe:
		return p.Append(nil, v)
	case *Suback:
		return p.Append(nil, v)
	case *Unsubscribe:
		return p.Append(nil, v)
	case *Unsuback:
		return p.Append(nil, v)
	case *Disconnect:
		return p.Append(nil, v)
	case *Auth:
		return p.Append(nil, v)
	case ping:
		if Type(p) == PINGREQ {
			return AppendPingreq(nil)
		}
		return AppendPingresp(nil)
	}
	panic(fmt.Sprintf("no encoder for %T", pkt))
}

// parseWhole frames raw, which must be exactly one packet, and decodes it.
func parseWhole(raw []byte, v Version) (any, error) {
	h, n, err := ParseHeader(raw, 0)
	if err != nil {
		return nil, err
	}
	if len(raw) != n+h.Remaining {
		return nil, fmt.Errorf("test bug: %d bytes, but the header says %d", len(raw), n+h.Remaining)
	}
	return decodePacket(h, raw[n:], v)
}

// requireMalformed asserts err is a *MalformedError with these packet,
// field and reason, and that errors.Is matches the reason code.
func requireMalformed(t testing.TB, err error, pkt Type, field string, reason ReasonCode) {
	t.Helper()
	var me *MalformedError
	require.ErrorAs(t, err, &me)
	assert.Equal(t, pkt, me.Packet, "packet (error: %v)", err)
	assert.Equal(t, field, me.Field, "field (error: %v)", err)
	assert.Equal(t, reason, me.Reason, "reason (error: %v)", err)
	assert.ErrorIs(t, err, reason)
}

// checkRoundTrip decodes body; when that succeeds, the packet must encode
// to a frame that decodes to an equal value. Failures must be
// *MalformedError. Fuzz targets run it on arbitrary input.
func checkRoundTrip(t *testing.T, h Header, body []byte, v Version) {
	t.Helper()
	first, err := decodePacket(h, body, v)
	if err != nil {
		var me *MalformedError
		require.ErrorAs(t, err, &me, "decode failed with a foreign error type")
		require.NotEmpty(t, me.Field)
		return
	}
	if c, ok := first.(*Connect); ok {
		v = c.Version
	}
	enc := encodePacket(first, v)
	h2, n, err := ParseHeader(enc, 0)
	require.NoError(t, err, "re-encoded % x", enc)
	require.Equal(t, len(enc), n+h2.Remaining, "re-encoded frame length")
	require.Equal(t, h.Type, h2.Type)
	second, err := decodePacket(h2, enc[n:], v)
	require.NoError(t, err, "decoding the re-encoded % x", enc)
	require.Equal(t, first, second)
}
