package integration

import (
	"fmt"
	"net"
	"runtime"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

// TestIdleSocketsReaped opens thousands of sockets that never send CONNECT:
// the broker closes every one after its connect timeout and its memory
// comes back, while a normal client keeps working throughout.
func TestIdleSocketsReaped(t *testing.T) {
	if testing.Short() {
		t.Skip("opens 3000 sockets")
	}
	cfg := anon()
	cfg.ConnectTimeout = 4 * time.Second // longer than dialing 3000 sockets takes under -race
	s := start(t, cfg)

	normal := newClient(t, s, v5, "normal")
	require.Equal(t, byte(1), normal.Sub(t, "live/t", 1))

	runtime.GC()
	var before runtime.MemStats
	runtime.ReadMemStats(&before)

	const n = 3000
	conns := make([]net.Conn, 0, n)
	defer func() {
		for _, c := range conns {
			_ = c.Close()
		}
	}()
	for i := 0; i < n; i++ {
		c, err := net.Dial("tcp", s.TCP)
		require.NoError(t, err)
		conns = append(conns, c)
	}
	require.Eventually(t, func() bool { return s.Broker.Stats().Connections >= n },
		5*time.Second, 10*time.Millisecond, "the broker never saw the idle sockets")

	// The normal client is served while the idle sockets sit there.
	normal.Pub(t, "live/t", []byte("during"), 1, false)
	assert.Equal(t, "during", string(normal.Recv(t).Payload))

	// Every idle socket is closed by the broker: a read sees EOF.
	deadline := time.Now().Add(15 * time.Second)
	for i, c := range conns {
		_ = c.SetReadDeadline(deadline)
		var b [1]byte
		_, err := c.Read(b[:])
		require.Error(t, err, "idle socket %d was not closed", i)
		if ne, ok := err.(net.Error); ok {
			require.False(t, ne.Timeout(), "idle socket %d still open after 15s", i)
		}
	}
	require.Eventually(t, func() bool { return s.Broker.Stats().Connections == 1 },
		5*time.Second, 10*time.Millisecond, "connections left: %d", s.Broker.Stats().Connections)

	runtime.GC()
	var after runtime.MemStats
	runtime.ReadMemStats(&after)
	grown := int64(after.HeapInuse) - int64(before.HeapInuse)
	assert.Less(t, grown, int64(16<<20), "heap grew by %d KiB after the idle sockets were reaped", grown>>10)

	normal.Pub(t, "live/t", []byte("after"), 1, false)
	assert.Equal(t, "after", string(normal.Recv(t).Payload))
}

func TestConnectionCaps(t *testing.T) {
	t.Run("total", func(t *testing.T) {
		cfg := anon()
		cfg.MaxConnections = 3
		s := start(t, cfg)
		for i := 0; i < 3; i++ {
			connectRaw(t, s.TCP, connectOpts{Version: v311, ClientID: fmt.Sprint("c", i), Clean: true})
		}
		extra := dialRaw(t, s.TCP, v311)
		extra.expectClosed(t, 3*time.Second)
		assert.EqualValues(t, 1, s.Broker.Stats().RefusedConnections)
	})
	t.Run("per IP", func(t *testing.T) {
		cfg := anon()
		cfg.MaxConnectionsPerIP = 2
		s := start(t, cfg)
		a, _ := connectRaw(t, s.TCP, connectOpts{Version: v5, ClientID: "a", Clean: true})
		connectRaw(t, s.TCP, connectOpts{Version: v5, ClientID: "b", Clean: true})
		dialRaw(t, s.TCP, v5).expectClosed(t, 3*time.Second)
		// A slot frees when a connection ends.
		_ = a.conn.Close()
		require.Eventually(t, func() bool { return s.Broker.Stats().Connections == 1 }, 3*time.Second, 10*time.Millisecond)
		connectRaw(t, s.TCP, connectOpts{Version: v5, ClientID: "c", Clean: true})
	})
}

func TestConnectRate(t *testing.T) {
	cfg := anon()
	cfg.ConnectRate = 3
	s := start(t, cfg)
	var refused []byte
	for i := 0; i < 6; i++ {
		c := dialRaw(t, s.TCP, v5)
		ack := c.connect(t, connectOpts{Version: v5, ClientID: fmt.Sprint("r", i), Clean: true})
		if ack.Reason != 0 {
			refused = append(refused, ack.Reason)
		}
	}
	require.NotEmpty(t, refused, "6 CONNECTs at once with a rate of 3/s were all accepted")
	for _, r := range refused {
		assert.Equal(t, byte(0x9F), r, "connection rate exceeded")
	}
	// 3.1.1 has no such code: server unavailable.
	c := dialRaw(t, s.TCP, v311)
	ack := c.connect(t, connectOpts{Version: v311, ClientID: "r311", Clean: true})
	assert.Equal(t, byte(0x03), ack.Reason)
}

func TestMessageRate(t *testing.T) {
	cfg := anon()
	cfg.MaxMsgRate = 20
	s := start(t, cfg)
	c, _ := connectRaw(t, s.TCP, connectOpts{Version: v5, ClientID: "flood", Clean: true})
	for i := 0; i < 100; i++ {
		if err := c.tryWrite(pub{Topic: "flood/t", Payload: []byte("x")}.encode(v5)); err != nil {
			break
		}
	}
	c.expectDisconnect(t, 0x96, 3*time.Second)
	assert.EqualValues(t, 1, s.Broker.Stats().RateLimited)

	// Other clients are unaffected.
	other := newClient(t, s, v5, "calm")
	require.Equal(t, byte(0), other.Sub(t, "calm/t", 0))
	other.Pub(t, "calm/t", []byte("ok"), 0, false)
	assert.Equal(t, "ok", string(other.Recv(t).Payload))
}
