package integration

import (
	"bytes"
	"net"
	"runtime"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

// TestSlowConsumer: a subscriber that never reads must not hold the broker
// back. While ~20 MB of QoS 0 traffic flows, a normal subscriber receives
// every message promptly, the broker drops (and counts) QoS 0 messages for
// the stuck one instead of buffering them without bound, and the broker
// still accepts new clients.
func TestSlowConsumer(t *testing.T) {
	s := start(t, anon())

	// The stuck subscriber: subscribes, then never reads again. A small
	// receive buffer keeps the kernel from absorbing much on its behalf.
	stuck, _ := connectRaw(t, s.TCP, connectOpts{Version: v311, ClientID: "stuck", Clean: true, KeepAlive: 0})
	require.Equal(t, []byte{0}, stuck.subscribe(t, nil, sub{Filter: "slow/#", QoS: 0}))
	if tc, ok := stuck.conn.(*net.TCPConn); ok {
		require.NoError(t, tc.SetReadBuffer(4096))
	}

	normal := newClient(t, s, v5, "normal")
	require.Equal(t, byte(0), normal.Sub(t, "slow/#", 0))
	pub := newClient(t, s, v311, "pub")

	const (
		size  = 10 << 10 // payload bytes
		total = 2000     // 20 MB
		batch = 40       // 400 KB per batch, well under the 1 MiB outbound limit
	)
	filler := bytes.Repeat([]byte{'s'}, size)
	before := n64(s.Broker.Stats().DroppedQoS0)
	started := time.Now()
	for sent := 0; sent < total; sent += batch {
		for i := 0; i < batch; i++ {
			payload := append([]byte(nil), filler...) // the client may hold it after Pub returns
			copy(payload, numbered("slow", sent+i))
			pub.Pub(t, "slow/data", payload, 0, false)
		}
		// The normal subscriber keeps up: each batch arrives in full and in
		// order before the next is sent, so its own queue stays small.
		for i := 0; i < batch; i++ {
			m := normal.Recv(t)
			require.Len(t, m.Payload, size)
			require.Equal(t, string(numbered("slow", sent+i)), string(m.Payload[:len(numbered("slow", 0))]),
				"normal subscriber lost or reordered a message")
		}
	}
	elapsed := time.Since(started)
	assert.Less(t, elapsed, 30*time.Second, "20 MB took %v with a stuck subscriber", elapsed)

	dropped := n64(s.Broker.Stats().DroppedQoS0) - before
	assert.Positive(t, dropped, "no QoS 0 message to the stuck subscriber was dropped: the broker buffered 20 MB for it")

	var ms runtime.MemStats
	runtime.ReadMemStats(&ms)
	assert.Less(t, ms.HeapInuse, uint64(256<<20), "heap in use %d MiB after the run", ms.HeapInuse>>20)

	// Still healthy: a new client connects and round-trips at once.
	fresh := newClient(t, s, v5, "fresh")
	require.Equal(t, byte(1), fresh.Sub(t, "after/t", 1))
	fresh.Pub(t, "after/t", []byte("ok"), 1, false)
	assert.Equal(t, "ok", string(fresh.Recv(t).Payload))
	t.Logf("20 MB in %v; %d QoS 0 messages dropped for the stuck subscriber", elapsed, dropped)
}
