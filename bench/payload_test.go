package bench

import (
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

func TestPayloadLayout(t *testing.T) {
	got := AppendPayload(nil, Header{Pub: 0x0a0b0c, Seq: 0x0102030405, Sent: 0x1122334455667788}, 20)
	want := []byte{
		0x0a, 0x0b, 0x0c, // publisher index, 24 bits
		0x01, 0x02, 0x03, 0x04, 0x05, // sequence number, 40 bits
		0x11, 0x22, 0x33, 0x44, 0x55, 0x66, 0x77, 0x88, // send time, Unix ns
		0, 0, 0, 0, // padding to 20 bytes
	}
	assert.Equal(t, want, got)
}

func TestPayloadRoundTrip(t *testing.T) {
	tests := []struct {
		name string
		h    Header
		size int
	}{
		{"zero", Header{}, MinPayload},
		{"typical", Header{Pub: 7, Seq: 123456, Sent: 1732550400000000000}, 64},
		{"max publisher and sequence", Header{Pub: MaxPublishers - 1, Seq: MaxSeq, Sent: -1}, 100},
		{"large", Header{Pub: 1, Seq: 2, Sent: 3}, 4096},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			p := AppendPayload([]byte("prefix"), tt.h, tt.size)
			require.Len(t, p, len("prefix")+tt.size)
			got, err := DecodePayload(p[len("prefix"):])
			require.NoError(t, err)
			assert.Equal(t, tt.h, got)

			// PutPayload rewrites the header in place.
			body := p[len("prefix"):]
			PutPayload(body, Header{Pub: 3, Seq: 4, Sent: 5})
			got, err = DecodePayload(body)
			require.NoError(t, err)
			assert.Equal(t, Header{Pub: 3, Seq: 4, Sent: 5}, got)
		})
	}
}

func TestDecodePayloadShort(t *testing.T) {
	for _, n := range []int{0, 1, 15} {
		_, err := DecodePayload(make([]byte, n))
		assert.ErrorIs(t, err, ErrShortPayload, "len %d", n)
	}
}

func TestAppendPayloadRejectsOutOfRange(t *testing.T) {
	assert.Panics(t, func() { AppendPayload(nil, Header{}, MinPayload-1) })
	assert.Panics(t, func() { AppendPayload(nil, Header{Pub: MaxPublishers}, 64) })
	assert.Panics(t, func() { AppendPayload(nil, Header{Seq: MaxSeq + 1}, 64) })
}

func TestClockMonotonic(t *testing.T) {
	c := newClock()
	prev := c.now()
	for range 1000 {
		now := c.now()
		require.GreaterOrEqual(t, now, prev)
		prev = now
	}
}
