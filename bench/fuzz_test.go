package bench

import (
	"bytes"
	"errors"
	"io"
	"testing"

	"github.com/mqttd/mqttd/codec"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

func FuzzDecodePayload(f *testing.F) {
	f.Add(AppendPayload(nil, Header{Pub: 3, Seq: 99, Sent: 12345}, 64))
	f.Add(AppendPayload(nil, Header{Pub: MaxPublishers - 1, Seq: MaxSeq, Sent: -1}, 16))
	f.Add([]byte{1, 2, 3})
	f.Fuzz(func(t *testing.T, p []byte) {
		h, err := DecodePayload(p)
		if len(p) < MinPayload {
			require.ErrorIs(t, err, ErrShortPayload)
			return
		}
		require.NoError(t, err)
		// Every 16-byte header decodes to values AppendPayload accepts and
		// encodes back to the same bytes.
		again := AppendPayload(nil, h, len(p))
		assert.Equal(t, p[:MinPayload], again[:MinPayload])
	})
}

// FuzzStream checks Stream against the set-based model on arbitrary
// sequences: each byte is a delta from the previous number.
func FuzzStream(f *testing.F) {
	f.Add([]byte{0, 1, 1, 1, 255, 3, 2}, uint16(0), uint16(10))
	f.Add([]byte{5, 250, 251, 7, 0, 0}, uint16(2), uint16(4))
	f.Fuzz(func(t *testing.T, deltas []byte, first, span uint16) {
		var s Stream
		m := model{seen: map[uint64]bool{}}
		q := int64(100) // start away from 0 so negative deltas stay valid
		for i, d := range deltas {
			q += int64(int8(d))
			q = max(q, 0)
			require.Equal(t, m.observe(uint64(q)), s.Observe(uint64(q)), "step %d seq %d", i, q)
		}
		lo := uint64(first) % 512
		hi := lo + uint64(span)%512
		assert.Equal(t, m.missing(lo, hi), s.Missing(lo, hi), "window [%d, %d]", lo, hi)
	})
}

// FuzzPacketReader feeds arbitrary bytes in small chunks: framing must
// end in a clean error, never a panic, and every packet it returns must be
// exactly the length its header announced.
func FuzzPacketReader(f *testing.F) {
	var seed []byte
	seed = (&codec.Publish{Topic: []byte("a"), Payload: []byte("xyz")}).Append(seed, codec.V311)
	seed = codec.AppendPingresp(seed)
	f.Add(seed, uint8(3))
	f.Add([]byte{0x30, 0xff, 0xff, 0xff, 0x7f}, uint8(1))
	f.Fuzz(func(t *testing.T, data []byte, chunk uint8) {
		rd := newPacketReader(&chunkConn{r: bytes.NewReader(data), n: int(chunk%16) + 1}, 64, newClock())
		consumed := 0
		for {
			h, body, err := rd.next()
			if err != nil {
				var me *codec.MalformedError
				require.True(t, errors.Is(err, io.EOF) || errors.As(err, &me), "unexpected error %v", err)
				return
			}
			require.Len(t, body, h.Remaining)
			consumed += 1 + codec.VarIntSize(h.Remaining) + h.Remaining
			require.LessOrEqual(t, consumed, len(data))
		}
	})
}
