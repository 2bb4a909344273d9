package crash

import (
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/mqttd/mqttd/codec"
)

// The QoS 2 exchange cut at each step by a kill -9, on both sides of the
// broker. After the restart the exchange completes and the subscriber's
// application sees the message exactly once.

// TestQoS2InboundCutMidway cuts the publisher → broker exchange.
func TestQoS2InboundCutMidway(t *testing.T) {
	t.Parallel()
	t.Run("after PUBREC, before PUBREL", func(t *testing.T) {
		t.Parallel()
		srv := newServer(t)
		srv.Start()
		sub, _ := mustDial(t, srv.Addr, connOpts{ClientID: "in-a-sub"})
		sub.mustSubscribe(t, codec.QoS2, "in/a")
		sub.disconnect()

		pub, _ := mustDial(t, srv.Addr, connOpts{ClientID: "in-a-pub"})
		require.NoError(t, pub.publish(&codec.Publish{Topic: []byte("in/a"), Payload: []byte("first"), QoS: codec.QoS2, PacketID: 7}))
		pub.expectAck(t, codec.PUBREC, 7)

		srv.Restart()

		// The publisher goes on with PUBREL only [MQTT-4.3.3-3], then
		// reuses the released packet id for a new message, which must not
		// be taken for the old one.
		pub, present := mustDial(t, srv.Addr, connOpts{ClientID: "in-a-pub"})
		require.True(t, present, "the publisher's session (with packet id 7 unreleased) survives")
		require.NoError(t, pub.ack(codec.PUBREL, 7))
		pub.expectAck(t, codec.PUBCOMP, 7)
		pub.mustPublish(t, 7, codec.QoS2, "in/a", "second", false)

		sub, _ = mustDial(t, srv.Addr, connOpts{ClientID: "in-a-sub"})
		got := receive(t, sub, 2)
		assert.Equal(t, []string{"first", "second"}, payloadsOf(got))
	})
	t.Run("PUBREC lost, PUBLISH resent", func(t *testing.T) {
		t.Parallel()
		srv := newServer(t)
		srv.Start()
		sub, _ := mustDial(t, srv.Addr, connOpts{ClientID: "in-b-sub"})
		sub.mustSubscribe(t, codec.QoS2, "in/b")
		sub.disconnect()

		pub, _ := mustDial(t, srv.Addr, connOpts{ClientID: "in-b-pub"})
		p := &codec.Publish{Topic: []byte("in/b"), Payload: []byte("once"), QoS: codec.QoS2, PacketID: 9}
		require.NoError(t, pub.publish(p))
		pub.expectAck(t, codec.PUBREC, 9) // the broker has it: durable from here

		srv.Restart()

		// As if the PUBREC had been lost: the client resends the PUBLISH
		// with DUP [MQTT-4.4.0-1]. The broker holds id 9: it answers
		// PUBREC and does not route the message again [MQTT-4.3.3-10].
		pub, present := mustDial(t, srv.Addr, connOpts{ClientID: "in-b-pub"})
		require.True(t, present)
		p.Dup = true
		require.NoError(t, pub.publish(p))
		pub.expectAck(t, codec.PUBREC, 9)
		require.NoError(t, pub.ack(codec.PUBREL, 9))
		pub.expectAck(t, codec.PUBCOMP, 9)

		sub, _ = mustDial(t, srv.Addr, connOpts{ClientID: "in-b-sub"})
		got := receive(t, sub, 1)
		assert.Equal(t, []string{"once"}, payloadsOf(got))
	})
}

// TestQoS2OutboundCutMidway cuts the broker → subscriber exchange.
func TestQoS2OutboundCutMidway(t *testing.T) {
	t.Parallel()
	// setup subscribes an online persistent subscriber and publishes one
	// QoS 2 message to it; it returns the subscriber's connection with
	// the PUBLISH read.
	setup := func(t *testing.T, id string) (*server, *conn, *codec.Publish) {
		srv := newServer(t)
		srv.Start()
		sub, _ := mustDial(t, srv.Addr, connOpts{ClientID: id})
		sub.mustSubscribe(t, codec.QoS2, "out/"+id)
		pub, _ := mustDial(t, srv.Addr, connOpts{ClientID: id + "-pub", Clean: true})
		pub.mustPublish(t, 1, codec.QoS2, "out/"+id, "payload-"+id, false)
		p := sub.expectPublish(t)
		require.Equal(t, codec.QoS2, p.QoS)
		require.Equal(t, "payload-"+id, string(p.Payload))
		return srv, sub, p
	}

	t.Run("PUBLISH received, no PUBREC", func(t *testing.T) {
		t.Parallel()
		srv, _, p := setup(t, "out-a")
		srv.Restart()
		sub, present := mustDial(t, srv.Addr, connOpts{ClientID: "out-a"})
		require.True(t, present)
		// The broker resends the same message with the same packet id
		// and DUP set [MQTT-4.4.0-1], [MQTT-3.3.1-1].
		again := sub.expectPublish(t)
		assert.Equal(t, p.PacketID, again.PacketID)
		assert.True(t, again.Dup)
		assert.Equal(t, string(p.Payload), string(again.Payload))
		require.NoError(t, sub.ack(codec.PUBREC, again.PacketID))
		sub.expectAck(t, codec.PUBREL, again.PacketID)
		require.NoError(t, sub.ack(codec.PUBCOMP, again.PacketID))
		expectSilence(t, sub)
	})
	t.Run("PUBREL received, no PUBCOMP", func(t *testing.T) {
		t.Parallel()
		srv, sub, p := setup(t, "out-b")
		require.NoError(t, sub.ack(codec.PUBREC, p.PacketID))
		sub.expectAck(t, codec.PUBREL, p.PacketID) // the release is durable from here
		srv.Restart()
		sub, present := mustDial(t, srv.Addr, connOpts{ClientID: "out-b"})
		require.True(t, present)
		// Only the PUBREL again, never the PUBLISH [MQTT-4.3.3-5]: the
		// subscriber has already forgotten the packet id and would
		// deliver a PUBLISH as a new message.
		sub.expectAck(t, codec.PUBREL, p.PacketID)
		require.NoError(t, sub.ack(codec.PUBCOMP, p.PacketID))
		expectSilence(t, sub)
	})
	t.Run("PUBREC sent, killed at once", func(t *testing.T) {
		t.Parallel()
		srv, sub, p := setup(t, "out-c")
		require.NoError(t, sub.ack(codec.PUBREC, p.PacketID))
		srv.Restart() // the PUBREC may or may not have been processed
		sub, present := mustDial(t, srv.Addr, connOpts{ClientID: "out-c"})
		require.True(t, present)
		// Either the PUBREL (PUBREC was recorded) or the PUBLISH again
		// with the same id (it was not); the subscriber still holds the
		// id, so neither delivers twice.
		pk, err := sub.readTimeout(waitMsg)
		require.NoError(t, err)
		switch pk.h.Type {
		case codec.PUBREL:
			var a codec.Ack
			require.NoError(t, a.Decode(pk.h, pk.body, sub.v))
			assert.Equal(t, p.PacketID, a.PacketID)
			t.Log("the PUBREC was recorded: PUBREL resent")
		case codec.PUBLISH:
			var again codec.Publish
			require.NoError(t, again.Decode(pk.h, pk.body, sub.v))
			assert.Equal(t, p.PacketID, again.PacketID, "resent with the same packet id")
			assert.True(t, again.Dup)
			require.NoError(t, sub.ack(codec.PUBREC, p.PacketID))
			sub.expectAck(t, codec.PUBREL, p.PacketID)
			t.Log("the PUBREC was not recorded: PUBLISH resent")
		default:
			t.Fatalf("unexpected %v", pk.h.Type)
		}
		require.NoError(t, sub.ack(codec.PUBCOMP, p.PacketID))
		expectSilence(t, sub)
	})
}
