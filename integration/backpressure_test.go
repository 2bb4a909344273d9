package integration

import (
	"fmt"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

// TestBackpressureNoLoss: a subscriber that is slow to acknowledge fills
// its in-flight window and then its pending queue; past that the broker
// holds the publisher's PUBACKs instead of dropping messages it has
// acknowledged. When the subscriber catches up, every message arrives, in
// order, and the held PUBACKs go out.
func TestBackpressureNoLoss(t *testing.T) {
	cfg := anon()
	cfg.MaxInflight = 5
	cfg.MaxPending = 10
	s := start(t, cfg)

	subc, _ := connectRaw(t, s.TCP, connectOpts{Version: v5, ClientID: "slowsub", Clean: true})
	require.Equal(t, []byte{1}, subc.subscribe(t, nil, sub{Filter: "bp/t", QoS: 1}))
	pubc, _ := connectRaw(t, s.TCP, connectOpts{Version: v5, ClientID: "fastpub", Clean: true})

	const n = 40
	for i := 1; i <= n; i++ {
		pubc.write(t, pub{Topic: "bp/t", Payload: []byte(fmt.Sprintf("m%02d", i)), QoS: 1, PacketID: uint16(i)}.encode(v5))
	}
	// 5 in flight + 10 pending are acknowledged; the rest wait.
	acked := map[uint16]bool{}
	for {
		p, err := pubc.read(700 * time.Millisecond)
		if err != nil {
			break
		}
		require.Equal(t, pPUBACK, p.Type)
		acked[p.PacketID] = true
	}
	assert.Len(t, acked, 15, "PUBACKs before the subscriber acknowledged anything")

	// The subscriber now reads and acknowledges everything.
	var got []string
	for len(got) < n {
		p := subc.expect(t, pPUBLISH)
		got = append(got, string(p.Payload))
		subc.write(t, ackPacket(pPUBACK, p.PacketID))
	}
	for i := range got {
		require.Equal(t, fmt.Sprintf("m%02d", i+1), got[i], "lost or reordered")
	}
	for len(acked) < n {
		p, err := pubc.read(3 * time.Second)
		require.NoError(t, err, "held PUBACKs never released (%d of %d)", len(acked), n)
		require.Equal(t, pPUBACK, p.Type)
		acked[p.PacketID] = true
	}
	st := s.Broker.Stats()
	assert.Zero(t, st.DroppedPending, "the broker dropped acknowledged messages")
}
