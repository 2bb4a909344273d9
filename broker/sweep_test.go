package broker

import (
	"fmt"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/mqttd/mqttd/codec"
)

// openKA connects a 3.1.1 client with the given keepalive on a
// connection that counts its closes.
func openKA(t *testing.T, b *Broker, id string, ka uint16) (*closeCountConn, *conn) {
	t.Helper()
	cc := &closeCountConn{}
	b.OnOpen(cc)
	pkt := (&codec.Connect{ProtocolName: []byte("MQTT"), Version: codec.V311, CleanStart: true, KeepAlive: ka,
		ClientID: []byte(id)}).Append(nil)
	_, err := b.OnData(cc, pkt)
	require.NoError(t, err)
	cc.complete()
	c := cc.ctx.(*conn)
	require.True(t, c.is(fConnected))
	return cc, c
}

// TestWatchList: the sweep looks every tick at connections awaiting their
// CONNECT, with a short keepalive, closing or congested, once each however
// often they are watched, and lets go of the others.
func TestWatchList(t *testing.T) {
	b := newBenchBroker(t)
	stopHousekeeping(b)

	waiting := &closeCountConn{}
	b.OnOpen(waiting)
	closeOnCleanup(t, b, waiting)
	assert.Equal(t, 1, b.watchedCount(), "awaiting CONNECT")

	slow, slowC := openKA(t, b, "slow", 60)
	fast, fastC := openKA(t, b, "fast", 2)
	none, noneC := openKA(t, b, "none", 0)
	closeOnCleanup(t, b, slow, fast, none)
	assert.Equal(t, 4, b.watchedCount())
	b.sweepWatched(time.Now())
	assert.Equal(t, 2, b.watchedCount(), "the waiting one and the 2 s keepalive stay")
	assert.False(t, slowC.is(fWatched))
	assert.True(t, fastC.is(fWatched))

	for range 3 {
		noneC.congest()
		b.watch(noneC)
	}
	assert.Equal(t, 3, b.watchedCount(), "listed once however often watched")
	b.sweepWatched(time.Now())
	assert.Equal(t, 2, b.watchedCount(), "the drain cleared the congestion: let go")

	slowC.closeWith(codec.AdministrativeAction, "test")
	assert.Equal(t, 3, b.watchedCount(), "closing")
	b.OnClose(slow, nil)
	b.sweepWatched(time.Now())
	assert.Equal(t, 2, b.watchedCount(), "gone: let go")

	// The waiting connection's timeout comes from the watch list alone.
	b.sweepWatched(time.Now().Add(b.cfg.ConnectTimeout + time.Second))
	assert.True(t, waiting.ctx.(*conn).is(fClosing), "connect timeout from the watch list")
}

// TestSweepParts: each tick visits one part of the registry; a silent
// client with a long keepalive is closed by the visit of its own part, so
// within sweepParts ticks of its deadline.
func TestSweepParts(t *testing.T) {
	b := newBenchBroker(t)
	stopHousekeeping(b)
	var ccs []*closeCountConn
	var cs []*conn
	for i := range 2 * len(b.conns) {
		cc, c := openKA(t, b, fmt.Sprintf("c%d", i), 10)
		ccs, cs = append(ccs, cc), append(cs, c)
	}
	b.sweepWatched(time.Now())
	require.Zero(t, b.watchedCount())

	late := time.Now().Add(20 * time.Second)
	for p := range sweepParts {
		b.sweepPart(late, p, false)
		for i, c := range cs {
			visited := int(c.shard)%sweepParts <= p
			assert.Equal(t, visited, c.is(fClosing), "conn %d in shard %d after part %d", i, c.shard, p)
		}
	}
	for _, cc := range ccs {
		b.OnClose(cc, nil)
	}
}
