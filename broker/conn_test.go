package broker

import (
	"sync/atomic"
	"testing"
	"time"
	"unsafe"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/mqttd/mqttd/codec"
	"github.com/mqttd/mqttd/transport"
)

// TestConnSize guards the per-connection footprint: idle connections are
// most of a broker's memory, and a field more moves conn (or a trie node)
// to the next size class. Put what most connections do not use in
// connCold (or nodeMore) instead.
func TestConnSize(t *testing.T) {
	assert.LessOrEqual(t, unsafe.Sizeof(conn{}), uintptr(208), "conn outgrew its 208-byte size class")
	assert.LessOrEqual(t, unsafe.Sizeof(node{}), uintptr(32), "a trie node outgrew 32 bytes")
}

// stopHousekeeping stops b's periodic sweep so that a test can run it at
// the times it chooses. b.Close still works afterwards.
func stopHousekeeping(b *Broker) {
	close(b.stop)
	b.wg.Wait()
	b.stop = make(chan struct{})
}

// sweepConns checks every connection at once, as one full round of the
// housekeeping's parts would.
func (b *Broker) sweepConns(now time.Time, dropBuffers bool) {
	b.forEachConn(func(c *conn) { b.checkConn(c, now, dropBuffers) })
}

// closeOnCleanup runs OnClose for each connection when the test ends,
// before the broker's Close (which would wait for them).
func closeOnCleanup(t *testing.T, b *Broker, tcs ...transport.Conn) {
	t.Cleanup(func() {
		for _, tc := range tcs {
			b.OnClose(tc, nil)
		}
	})
}

// closeCountConn is a benchConn that counts Close calls.
type closeCountConn struct {
	benchConn
	closed atomic.Int32
}

func (cc *closeCountConn) Close() error {
	cc.closed.Add(1)
	return nil
}

// TestIdleConnDropsWriteBuffers: a connection keeps a spare write buffer
// while it writes, and lets both go once it wrote nothing for a sweep
// period; writing again works as before.
func TestIdleConnDropsWriteBuffers(t *testing.T) {
	b := newBenchBroker(t)
	stopHousekeeping(b)
	sub := benchOpen(t, b, "idle", "t/idle", codec.QoS0)
	c := sub.ctx.(*conn)
	spare := func() []byte {
		c.outMu.Lock()
		defer c.outMu.Unlock()
		return c.wbuf[0]
	}
	require.NotNil(t, spare(), "the CONNACK/SUBACK buffer is kept for the next write")
	require.True(t, c.is(fSpare))

	b.sweepConns(time.Now(), true)
	assert.NotNil(t, spare(), "written since the last sweep: kept")
	b.sweepConns(time.Now(), false)
	assert.NotNil(t, spare(), "only a buffer sweep lets it go")
	b.sweepConns(time.Now(), true)
	assert.Nil(t, spare(), "idle for a whole period: dropped")
	assert.False(t, c.is(fSpare))
	c.outMu.Lock()
	assert.Nil(t, c.outMu.out)
	c.outMu.Unlock()

	pub := benchOpen(t, b, "pub", "", 0)
	closeOnCleanup(t, b, sub, pub)
	pkt := (&codec.Publish{Topic: []byte("t/idle"), Payload: []byte("hello")}).Append(nil, codec.V311)
	before := sub.written
	_, err := b.OnData(pub, pkt)
	require.NoError(t, err)
	sub.complete()
	assert.Equal(t, before+len(pkt), sub.written, "delivered after the buffers went")
	assert.NotNil(t, spare())
}

// TestClosingConnSwept: a refused CONNECT's final packet gets closeGrace
// to be written; once written, the connection lingers lingerFor, then the
// housekeeping closes it.
func TestClosingConnSwept(t *testing.T) {
	for _, written := range []bool{false, true} {
		name := map[bool]string{false: "final packet stuck", true: "final packet written"}[written]
		t.Run(name, func(t *testing.T) {
			b := newBenchBroker(t)
			stopHousekeeping(b)
			cc := &closeCountConn{}
			b.OnOpen(cc)
			closeOnCleanup(t, b, cc)
			pkt := (&codec.Connect{ProtocolName: []byte("MQTT"), Version: codec.V311, CleanStart: true,
				ClientID: []byte("not valid")}).Append(nil)
			_, err := b.OnData(cc, pkt)
			require.NoError(t, err)
			c := cc.ctx.(*conn)
			require.True(t, c.is(fClosing))
			require.True(t, c.is(fStopRead))
			start := time.Now()
			wait := closeGrace
			if written {
				cc.complete()
				wait = lingerFor
			}
			b.sweepConns(start.Add(wait-100*time.Millisecond), false)
			assert.Zero(t, cc.closed.Load(), "closed early")
			b.sweepConns(start.Add(wait+100*time.Millisecond), false)
			assert.EqualValues(t, 1, cc.closed.Load(), "not closed in time")
		})
	}
}
