package bench

import (
	"bytes"
	"io"
	"net"
	"testing"
	"time"

	"github.com/mqttd/mqttd/codec"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

// chunkConn is a net.Conn whose Read returns at most n bytes at a time.
type chunkConn struct {
	net.Conn
	r io.Reader
	n int
}

func (c *chunkConn) Read(b []byte) (int, error) {
	if len(b) > c.n {
		b = b[:c.n]
	}
	return c.r.Read(b)
}

func TestPacketReaderFramesSplitInput(t *testing.T) {
	v := codec.V311
	var stream []byte
	big := make([]byte, 3000) // larger than the reader's buffer: it must grow
	for i := range big {
		big[i] = byte(i)
	}
	pubs := []codec.Publish{
		{Topic: []byte("a/b"), Payload: []byte("hello")},
		{Topic: []byte("a/c"), QoS: codec.QoS1, PacketID: 7, Payload: big},
		{Topic: []byte("x"), QoS: codec.QoS2, PacketID: 65535},
	}
	for i := range pubs {
		stream = pubs[i].Append(stream, v)
		stream = codec.AppendPingresp(stream)
	}
	for _, chunk := range []int{1, 2, 3, 7, 64, 4096} {
		rd := newPacketReader(&chunkConn{r: bytes.NewReader(stream), n: chunk}, 256, newClock())
		waits := 0
		rd.onWait = func() error { waits++; return nil }
		for i := range pubs {
			h, body, err := rd.next()
			require.NoError(t, err, "chunk %d packet %d", chunk, i)
			require.Equal(t, codec.PUBLISH, h.Type)
			var got codec.Publish
			require.NoError(t, got.Decode(h, body, v))
			assert.Equal(t, pubs[i].Topic, got.Topic, "chunk %d", chunk)
			assert.Equal(t, pubs[i].PacketID, got.PacketID, "chunk %d", chunk)
			assert.Equal(t, len(pubs[i].Payload), len(got.Payload), "chunk %d", chunk)
			assert.True(t, bytes.Equal(pubs[i].Payload, got.Payload), "chunk %d packet %d payload", chunk, i)
			h, _, err = rd.next()
			require.NoError(t, err)
			require.Equal(t, codec.PINGRESP, h.Type)
		}
		_, _, err := rd.next()
		assert.ErrorIs(t, err, io.EOF, "chunk %d", chunk)
		assert.Positive(t, waits, "onWait runs before reads")
	}
}

func TestPacketReaderRejectsMalformed(t *testing.T) {
	rd := newPacketReader(&chunkConn{r: bytes.NewReader([]byte{0x00, 0x00}), n: 10}, 64, newClock())
	_, _, err := rd.next()
	var me *codec.MalformedError
	assert.ErrorAs(t, err, &me)
}

func TestHandshakeRefused(t *testing.T) {
	for _, v := range []codec.Version{codec.V311, codec.V5} {
		b := newFakeBroker(t)
		b.refuse = codec.ConnRefusedNotAuthorized
		if v == codec.V5 {
			b.refuse = codec.NotAuthorized
		}
		d := dialer{addr: b.addr(), spread: 1, timeout: time.Second}
		c, err := d.dial(t.Context(), 0)
		require.NoError(t, err)
		rd := newPacketReader(c, 512, newClock())
		_, err = handshake(c, rd, &connOpts{version: v, timeout: time.Second}, "x")
		assert.ErrorIs(t, err, ErrRefused, "version %d", v)
		c.Close()
	}
}

func TestHandshakeAndSubscribe(t *testing.T) {
	b := newFakeBroker(t)
	d := dialer{addr: b.addr(), spread: 4, timeout: time.Second}
	for i := range 4 {
		c, err := d.dial(t.Context(), i)
		require.NoError(t, err)
		local := c.LocalAddr().(*net.TCPAddr)
		assert.Equal(t, net.IPv4(127, 0, 0, byte(1+i)).String(), local.IP.String(), "spread source address")
		rd := newPacketReader(c, 512, newClock())
		o := &connOpts{version: codec.V5, timeout: time.Second}
		info, err := handshake(c, rd, o, clientID("run", "c", i))
		require.NoError(t, err)
		assert.Equal(t, uint16(65535), info.receiveMax)
		require.NoError(t, subscribe(c, rd, o, "a/+", codec.QoS1))
		c.Close()
	}
}

func TestIsLoopback(t *testing.T) {
	assert.True(t, isLoopback("127.0.0.1:1883"))
	assert.True(t, isLoopback("localhost:1"))
	assert.True(t, isLoopback("[::1]:1"))
	assert.False(t, isLoopback("192.168.1.1:1883"))
	assert.False(t, isLoopback("example.com:1883"))
	assert.False(t, isLoopback("127.0.0.1"))
}
