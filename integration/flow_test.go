package integration

import (
	"bytes"
	"fmt"
	"testing"
	"time"

	"github.com/eclipse/paho.golang/paho"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/mqttd/mqttd/broker"
)

// TestReceiveMaximumOutbound: the broker never has more unacknowledged
// QoS 1 messages out to a client than the client's Receive Maximum
// [MQTT-3.3.4-9]; acknowledging one releases the next, in order.
func TestReceiveMaximumOutbound(t *testing.T) {
	t.Parallel()
	s := start(t, anon())
	c, _ := connectRaw(t, s.TCP, connectOpts{Version: v5, ClientID: "slow", Clean: true,
		Props: props{}.u16(propReceiveMaximum, 2)})
	require.Equal(t, []byte{1}, c.subscribe(t, nil, sub{Filter: "rm/t", QoS: 1}))
	p := newClient(t, s, v5, "pub")
	const n = 8
	for i := 0; i < n; i++ {
		p.Pub(t, "rm/t", numbered("rm", i), 1, false) // PUBACK comes from the broker, not from "slow"
	}

	var inflight []packet
	for len(inflight) < 2 {
		inflight = append(inflight, c.expect(t, pPUBLISH))
	}
	c.expectSilence(t, 300*time.Millisecond) // a third would exceed Receive Maximum 2
	next := 2
	for i := 0; i < n; i++ {
		require.Equal(t, string(numbered("rm", i)), string(inflight[0].Payload), "delivery order")
		c.write(t, ackPacket(pPUBACK, inflight[0].PacketID))
		inflight = inflight[1:]
		if next < n {
			inflight = append(inflight, c.expect(t, pPUBLISH))
			next++
			c.expectSilence(t, 50*time.Millisecond)
		}
	}
	assert.Empty(t, inflight)
}

// TestReceiveMaximumInbound: with ReceiveMaximum 2 the broker announces it
// in CONNACK; a client with two QoS 2 publishes unacknowledged (no PUBREL
// yet) that sends a third is disconnected with 0x93 [MQTT-3.3.4-7]. Below
// the limit everything flows.
func TestReceiveMaximumInbound(t *testing.T) {
	t.Parallel()
	s := start(t, broker.Config{AllowAnonymous: true, ReceiveMaximum: 2})

	t.Run("within", func(t *testing.T) {
		c, ack := connectRaw(t, s.TCP, connectOpts{Version: v5, ClientID: "ok", Clean: true})
		p, ok := ack.Props.get(propReceiveMaximum)
		require.True(t, ok, "CONNACK lacks Receive Maximum: %s", ack)
		assert.Equal(t, uint32(2), p.Int)
		for id := uint16(1); id <= 2; id++ {
			c.write(t, pub{Topic: "rx/t", Payload: []byte("x"), QoS: 2, PacketID: id}.encode(v5))
			assert.Equal(t, id, c.expect(t, pPUBREC).PacketID)
		}
		c.write(t, ackPacket(pPUBREL, 1))
		assert.Equal(t, uint16(1), c.expect(t, pPUBCOMP).PacketID)
		c.write(t, pub{Topic: "rx/t", Payload: []byte("x"), QoS: 2, PacketID: 3}.encode(v5))
		assert.Equal(t, uint16(3), c.expect(t, pPUBREC).PacketID)
	})

	t.Run("exceeded", func(t *testing.T) {
		c, _ := connectRaw(t, s.TCP, connectOpts{Version: v5, ClientID: "greedy", Clean: true})
		for id := uint16(1); id <= 2; id++ {
			c.write(t, pub{Topic: "rx/t", Payload: []byte("x"), QoS: 2, PacketID: id}.encode(v5))
			assert.Equal(t, id, c.expect(t, pPUBREC).PacketID)
		}
		c.write(t, pub{Topic: "rx/t", Payload: []byte("x"), QoS: 2, PacketID: 3}.encode(v5))
		c.expectDisconnect(t, 0x93, waitMsg)
	})
}

// TestMaximumPacketSizeOutbound: a message that would exceed the client's
// Maximum Packet Size is not sent to it [MQTT-3.1.2-25]; smaller ones are.
func TestMaximumPacketSizeOutbound(t *testing.T) {
	t.Parallel()
	s := start(t, anon())
	small := connectV5(t, s.TCP, &paho.Connect{ClientID: "small", CleanStart: true, KeepAlive: 30,
		Properties: &paho.ConnectProperties{MaximumPacketSize: u32p(100)}})
	require.Equal(t, byte(1), small.Sub(t, "mp/t", 1))
	p := newClient(t, s, v5, "pub")
	big := bytes.Repeat([]byte("x"), 200)
	p.Pub(t, "mp/t", []byte("first"), 1, false)
	p.Pub(t, "mp/t", big, 1, false)
	p.Pub(t, "mp/t", big, 0, false)
	p.Pub(t, "mp/t", []byte("last"), 1, false)
	assert.Equal(t, "first", string(small.Recv(t).Payload))
	assert.Equal(t, "last", string(small.Recv(t).Payload), "a packet over the client's maximum was sent (or the next one lost)")
}

// TestServerKeepAlive: with MaxKeepAlive 60, a client asking for 0 or for
// more than 60 s gets Server Keep Alive 60 in CONNACK [MQTT-3.2.2-21]; one
// asking for less keeps its own.
func TestServerKeepAlive(t *testing.T) {
	t.Parallel()
	s := start(t, broker.Config{AllowAnonymous: true, MaxKeepAlive: 60})
	for _, tc := range []struct {
		ask  uint16
		want uint16
	}{{0, 60}, {120, 60}, {60, 60}, {30, 30}} {
		c := dialRaw(t, s.TCP, v5)
		ack := c.connect(t, connectOpts{Version: v5, ClientID: fmt.Sprintf("ka%d", tc.ask), Clean: true, KeepAlive: tc.ask})
		require.Equal(t, byte(0), ack.Reason)
		p, ok := ack.Props.get(propServerKeepAlive)
		if tc.want == tc.ask && !ok {
			continue // absent means "your own value"
		}
		require.True(t, ok, "keepalive %d: CONNACK lacks Server Keep Alive (%s)", tc.ask, ack)
		assert.Equal(t, uint32(tc.want), p.Int, "keepalive %d", tc.ask)
	}
}

// TestKeepAliveTimeout: a client silent for 1.5 times its keepalive is
// disconnected [MQTT-3.1.2-24] (MQTT 5 may get DISCONNECT 0x8D first); a
// client that pings stays connected.
func TestKeepAliveTimeout(t *testing.T) {
	t.Parallel()
	s := start(t, anon())
	for _, v := range []byte{v311, v5} {
		t.Run("silent_"+versionName(v), func(t *testing.T) {
			t.Parallel()
			c := dialRaw(t, s.TCP, v)
			require.Equal(t, byte(0), c.connect(t, connectOpts{Version: v, ClientID: "quiet" + versionName(v), Clean: true, KeepAlive: 1}).Reason)
			connected := time.Now()
			got := c.expectClosed(t, 4*time.Second)
			elapsed := time.Since(connected)
			assert.GreaterOrEqual(t, elapsed, 1400*time.Millisecond, "closed after %v: before 1.5 x keepalive", elapsed)
			assert.Less(t, elapsed, 3*time.Second, "closed after %v", elapsed)
			if v == v311 {
				assert.Empty(t, got)
			} else if len(got) > 0 {
				last := got[len(got)-1]
				assert.Equal(t, pDISCONNECT, last.Type, "%s", last)
				assert.Equal(t, byte(0x8D), last.Reason, "%s", last)
			}
		})
	}
	t.Run("silent_long", func(t *testing.T) {
		// A keepalive over 4 s is checked once a second, not every tick:
		// closed after 1.5 x 5 s and at most 1.25 s later (README).
		t.Parallel()
		c := dialRaw(t, s.TCP, v311)
		require.Equal(t, byte(0), c.connect(t, connectOpts{Version: v311, ClientID: "quiet-long", Clean: true, KeepAlive: 5}).Reason)
		connected := time.Now()
		c.expectClosed(t, 12*time.Second)
		elapsed := time.Since(connected)
		assert.GreaterOrEqual(t, elapsed, 7400*time.Millisecond, "closed after %v: before 1.5 x keepalive", elapsed)
		assert.Less(t, elapsed, 9500*time.Millisecond, "closed after %v", elapsed)
	})
	t.Run("pinging", func(t *testing.T) {
		t.Parallel()
		c := dialRaw(t, s.TCP, v5)
		require.Equal(t, byte(0), c.connect(t, connectOpts{Version: v5, ClientID: "alive", Clean: true, KeepAlive: 1}).Reason)
		for i := 0; i < 6; i++ {
			time.Sleep(500 * time.Millisecond) // keepalive traffic, as a client sends it
			c.ping(t)
		}
	})
}
