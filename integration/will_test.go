package integration

import (
	"testing"
	"time"

	"github.com/eclipse/paho.golang/paho"
	mqtt "github.com/eclipse/paho.mqtt.golang"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/mqttd/mqttd/internal/brokertest"
)

// willV3 connects a 3.1.1 client with a will on topic.
func willV3(t *testing.T, s *brokertest.Server, id, topic string, qos byte, retain bool) *v3Client {
	t.Helper()
	return connectV3(t, "tcp://"+s.TCP, id, true, func(o *mqtt.ClientOptions) {
		o.SetBinaryWill(topic, []byte("gone:"+id), qos, retain)
	})
}

// willV5 connects an MQTT 5 client with a will on topic; delay and expiry
// are the Will Delay Interval and Session Expiry Interval in seconds.
func willV5(t *testing.T, s *brokertest.Server, id, topic string, delay, expiry uint32) *v5Client {
	t.Helper()
	cp := &paho.Connect{
		ClientID: id, CleanStart: true, KeepAlive: 30,
		WillMessage:    &paho.WillMessage{Topic: topic, Payload: []byte("gone:" + id), QoS: 1},
		WillProperties: &paho.WillProperties{WillDelayInterval: u32p(delay)},
		Properties:     &paho.ConnectProperties{SessionExpiryInterval: u32p(expiry)},
	}
	return connectV5(t, s.TCP, cp)
}

// watcher subscribes to will/# and to the marker topic will-end.
func watcher(t *testing.T, s *brokertest.Server) *v5Client {
	t.Helper()
	w := newClient(t, s, v5, "watcher").(*v5Client)
	require.Equal(t, byte(1), w.Sub(t, "will/#", 1))
	require.Equal(t, byte(1), w.Sub(t, "will-end", 1))
	return w
}

// noWill proves that no will was published: after the client's session is
// gone from the broker's connection count, a marker published afterwards
// arrives first.
func noWill(t *testing.T, s *brokertest.Server, w *v5Client, connections int64) {
	t.Helper()
	require.Eventually(t, func() bool { return n64(s.Broker.Stats().Connections) == connections },
		waitMsg, poll, "Stats().Connections never fell to %d", connections)
	marker := newClient(t, s, v5, "marker")
	marker.Pub(t, "will-end", nil, 1, false)
	got := recvUntil(t, w, "will-end")
	assert.Empty(t, got, "unexpected will message(s)")
}

// TestWillOnNetworkDrop closes the socket without DISCONNECT: the will is
// published with its topic, payload, QoS and retain flag [MQTT-3.1.2-8].
func TestWillOnNetworkDrop(t *testing.T) {
	t.Parallel()
	s := start(t, anon())
	w := watcher(t, s)

	c3 := willV3(t, s, "dev3", "will/dev3", 1, true)
	c3.Drop(t)
	m := w.Recv(t)
	assert.Equal(t, "will/dev3", m.Topic)
	assert.Equal(t, "gone:dev3", string(m.Payload))
	assert.Equal(t, byte(1), m.QoS)

	c5 := willV5(t, s, "dev5", "will/dev5", 0, 0)
	c5.Drop(t)
	m = w.Recv(t)
	assert.Equal(t, "will/dev5", m.Topic)
	assert.Equal(t, "gone:dev5", string(m.Payload))

	// The 3.1.1 will was retained: a new subscriber gets it.
	late := newClient(t, s, v311, "late")
	require.Equal(t, byte(1), late.Sub(t, "will/dev3", 1))
	m = late.Recv(t)
	assert.True(t, m.Retain, "retained will not stored as retained")
	assert.Equal(t, "gone:dev3", string(m.Payload))
}

// TestWillNotSentOnCleanDisconnect checks that a normal DISCONNECT discards
// the will [MQTT-3.1.2-10, MQTT-3.14.4-3].
func TestWillNotSentOnCleanDisconnect(t *testing.T) {
	t.Parallel()
	s := start(t, anon())
	w := watcher(t, s)
	willV3(t, s, "dev3", "will/dev3", 1, false).Close()
	willV5(t, s, "dev5", "will/dev5", 0, 0).Close()
	noWill(t, s, w, 1)
}

// TestWillOnDisconnectWithWill: an MQTT 5 DISCONNECT with reason 0x04
// (Disconnect with Will Message) publishes the will.
func TestWillOnDisconnectWithWill(t *testing.T) {
	t.Parallel()
	s := start(t, anon())
	w := watcher(t, s)
	c := willV5(t, s, "dev5", "will/dev5", 0, 0)
	require.NoError(t, c.Disconnect(&paho.Disconnect{ReasonCode: 0x04}))
	m := w.Recv(t)
	assert.Equal(t, "will/dev5", m.Topic)
	assert.Equal(t, "gone:dev5", string(m.Payload))
}

// TestWillDelay: with a Will Delay Interval of 2 s and a longer session
// expiry, the will is published no earlier than 2 s after the drop
// [MQTT-3.1.3-9].
func TestWillDelay(t *testing.T) {
	t.Parallel()
	s := start(t, anon())
	w := watcher(t, s)
	c := willV5(t, s, "dev5", "will/dev5", 2, 60)
	dropped := time.Now()
	c.Drop(t)
	m := w.Recv(t)
	elapsed := time.Since(dropped)
	assert.Equal(t, "will/dev5", m.Topic)
	assert.GreaterOrEqual(t, elapsed, 1900*time.Millisecond, "will published %v after the drop, before its 2 s delay", elapsed)
	assert.Less(t, elapsed, 4*time.Second, "will published %v after the drop", elapsed)
}

// TestWillDelayCancelledByReconnect: a client that reconnects to its
// session within the will delay cancels the will [MQTT-3.1.3-9].
func TestWillDelayCancelledByReconnect(t *testing.T) {
	t.Parallel()
	s := start(t, anon())
	w := watcher(t, s)
	c := willV5(t, s, "dev5", "will/dev5", 2, 60)
	c.Drop(t)
	again := connectV5(t, s.TCP, &paho.Connect{ClientID: "dev5", CleanStart: false, KeepAlive: 30,
		Properties: &paho.ConnectProperties{SessionExpiryInterval: u32p(60)}})
	assert.True(t, again.Ack.SessionPresent, "session not present on reconnect within the will delay")
	time.Sleep(2500 * time.Millisecond) // let the will delay pass
	noWill(t, s, w, 2)
}

// TestWillDelaySessionExpiryZero: when the session ends with the connection
// (expiry 0), the will is published at once despite a will delay: the will
// goes out when the delay passes or the session ends, whichever is first.
func TestWillDelaySessionExpiryZero(t *testing.T) {
	t.Parallel()
	s := start(t, anon())
	w := watcher(t, s)
	c := willV5(t, s, "dev5", "will/dev5", 30, 0)
	dropped := time.Now()
	c.Drop(t)
	m := w.Recv(t)
	assert.Equal(t, "will/dev5", m.Topic)
	assert.Less(t, time.Since(dropped), 2*time.Second, "will delayed although the session ended")
}

// TestWillOnTakeover: when a second connection takes over a client ID, the
// first connection's will is published (its network connection ended
// without a DISCONNECT from the client).
func TestWillOnTakeover(t *testing.T) {
	t.Parallel()
	s := start(t, anon())
	w := watcher(t, s)

	willV5(t, s, "dev5", "will/dev5", 0, 0)
	newClient(t, s, v5, "dev5")
	m := w.Recv(t)
	assert.Equal(t, "will/dev5", m.Topic)
	assert.Equal(t, "gone:dev5", string(m.Payload))

	willV3(t, s, "dev3", "will/dev3", 1, false)
	newClient(t, s, v311, "dev3")
	m = w.Recv(t)
	assert.Equal(t, "will/dev3", m.Topic)
	assert.Equal(t, "gone:dev3", string(m.Payload))
}

// TestWillOnKeepAliveTimeout: a client that goes silent past 1.5 times its
// keepalive is disconnected and its will published [MQTT-3.1.2-24].
func TestWillOnKeepAliveTimeout(t *testing.T) {
	t.Parallel()
	s := start(t, anon())
	w := watcher(t, s)
	c := dialRaw(t, s.TCP, v311)
	ack := c.connect(t, connectOpts{Version: v311, ClientID: "quiet", Clean: true, KeepAlive: 1,
		Will: &will{Topic: "will/quiet", Payload: "gone:quiet", QoS: 1}})
	require.Equal(t, byte(0), ack.Reason)
	m := w.Recv(t)
	assert.Equal(t, "will/quiet", m.Topic)
	c.expectClosed(t, waitMsg)
}
