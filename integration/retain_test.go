package integration

import (
	"fmt"
	"testing"

	"github.com/eclipse/paho.golang/paho"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

// TestRetained covers the life of a retained message: stored and sent with
// the retain flag to new subscriptions [MQTT-3.3.1-6, MQTT-3.3.1-8],
// forwarded live without it [MQTT-3.3.1-9], replaced by the next retained
// publish [MQTT-3.3.1-5], left alone by non-retained ones, and removed by a
// retained publish with an empty payload [MQTT-3.3.1-10].
func TestRetained(t *testing.T) {
	t.Parallel()
	for _, v := range []byte{v311, v5} {
		t.Run(versionName(v), func(t *testing.T) {
			t.Parallel()
			s := start(t, anon())
			pub := newClient(t, s, v, "pub")
			retained := func() int64 { return n64(s.Broker.Stats().Retained) }

			pub.Pub(t, "r/a", []byte("A1"), 1, true)
			s1 := newClient(t, s, v, "s1")
			require.Equal(t, byte(1), s1.Sub(t, "r/a", 1))
			m := s1.Recv(t)
			assert.Equal(t, msg{Topic: "r/a", Payload: []byte("A1"), QoS: 1, Retain: true}, withoutProps(m))
			require.Eventually(t, func() bool { return retained() == 1 }, waitMsg, poll, "Stats().Retained = %d, want 1", retained())

			// Replaced; the live copy to the existing subscription has no
			// retain flag.
			pub.Pub(t, "r/a", []byte("A2"), 1, true)
			m = s1.Recv(t)
			assert.Equal(t, msg{Topic: "r/a", Payload: []byte("A2"), QoS: 1, Retain: false}, withoutProps(m))

			// A non-retained publish does not replace it.
			pub.Pub(t, "r/a", []byte("live"), 1, false)
			assert.Equal(t, "live", string(s1.Recv(t).Payload))

			s2 := newClient(t, s, v, "s2")
			require.Equal(t, byte(1), s2.Sub(t, "r/#", 1))
			pub.Pub(t, "r/end", nil, 1, false)
			got := recvUntil(t, s2, "r/end")
			require.Len(t, got, 1, "retained messages for r/#: %v", got)
			assert.Equal(t, msg{Topic: "r/a", Payload: []byte("A2"), QoS: 1, Retain: true}, withoutProps(got[0]))

			// An empty retained payload deletes the message and is itself
			// delivered as a normal message to current subscribers.
			pub.Pub(t, "r/a", nil, 1, true)
			m = s1.Recv(t)
			assert.Equal(t, "r/a", m.Topic)
			assert.Empty(t, m.Payload)
			assert.False(t, m.Retain)
			require.Eventually(t, func() bool { return retained() == 0 }, waitMsg, poll, "Stats().Retained = %d after delete", retained())

			s3 := newClient(t, s, v, "s3")
			require.Equal(t, byte(1), s3.Sub(t, "r/#", 1))
			pub.Pub(t, "r/end", nil, 1, false)
			assert.Empty(t, recvUntil(t, s3, "r/end"), "a deleted retained message was delivered")

			// A wildcard subscription receives every matching retained
			// message.
			for i := 1; i <= 3; i++ {
				pub.Pub(t, fmt.Sprintf("r/x/%d", i), []byte{byte('0' + i)}, 1, true)
			}
			s4 := newClient(t, s, v, "s4")
			require.Equal(t, byte(1), s4.Sub(t, "r/x/+", 1))
			var topics []string
			for i := 0; i < 3; i++ {
				m := s4.Recv(t)
				assert.True(t, m.Retain, "retained message %q without retain flag", m.Topic)
				topics = append(topics, m.Topic)
			}
			assert.ElementsMatch(t, []string{"r/x/1", "r/x/2", "r/x/3"}, topics)
		})
	}
}

// TestRetainedQoS checks that a retained message is delivered at the lower
// of its own QoS and the new subscription's.
func TestRetainedQoS(t *testing.T) {
	t.Parallel()
	s := start(t, anon())
	for _, v := range []byte{v311, v5} {
		pub := newClient(t, s, v, "pub"+versionName(v))
		for pq := byte(0); pq <= 2; pq++ {
			for sq := byte(0); sq <= 2; sq++ {
				t.Run(fmt.Sprintf("%s/pub%d_sub%d", versionName(v), pq, sq), func(t *testing.T) {
					topic := fmt.Sprintf("rq/%s/%d/%d", versionName(v), pq, sq)
					pub.Pub(t, topic, []byte("kept"), pq, true)
					barrier(t, pub) // stored before the subscription below
					c := newClient(t, s, v, fmt.Sprintf("s%s%d%d", versionName(v), pq, sq))
					require.Equal(t, sq, c.Sub(t, topic, sq))
					m := c.Recv(t)
					assert.Equal(t, msg{Topic: topic, Payload: []byte("kept"), QoS: min(pq, sq), Retain: true}, withoutProps(m))
					c.Close()
				})
			}
		}
	}
}

// TestRetainHandling checks MQTT 5 Retain Handling: 0 sends retained
// messages on every SUBSCRIBE, 1 only when the subscription is new, 2
// never [MQTT-3.3.1-9, MQTT-3.3.1-10, MQTT-3.3.1-11].
func TestRetainHandling(t *testing.T) {
	t.Parallel()
	s := start(t, anon())
	pub := newClient(t, s, v5, "pub").(*v5Client)
	pub.Pub(t, "rh/t", []byte("kept"), 1, true)
	for _, tc := range []struct {
		rh   byte
		want int // retained deliveries for two identical SUBSCRIBEs
	}{{0, 2}, {1, 1}, {2, 0}} {
		t.Run(fmt.Sprintf("rh%d", tc.rh), func(t *testing.T) {
			c := newClient(t, s, v5, fmt.Sprintf("c%d", tc.rh)).(*v5Client)
			marker := fmt.Sprintf("rh/end%d", tc.rh)
			require.Equal(t, []byte{1}, c.SubOpts(t, nil, paho.SubscribeOptions{Topic: marker, QoS: 1}))
			for i := 0; i < 2; i++ {
				require.Equal(t, []byte{1}, c.SubOpts(t, nil, paho.SubscribeOptions{Topic: "rh/t", QoS: 1, RetainHandling: tc.rh}))
			}
			pub.Pub(t, marker, nil, 1, false)
			got := recvUntil(t, c, marker)
			assert.Len(t, got, tc.want, "retained deliveries with retain handling %d: %v", tc.rh, got)
			for _, m := range got {
				assert.Equal(t, "kept", string(m.Payload))
				assert.True(t, m.Retain)
			}
		})
	}
}

// TestRetainAsPublished checks that a subscription with Retain As Published
// sees the publisher's retain flag on live messages, and one without does
// not [MQTT-3.3.1-12, MQTT-3.3.1-13]; and that a retained message keeps its
// MQTT 5 properties.
func TestRetainAsPublished(t *testing.T) {
	t.Parallel()
	s := start(t, anon())
	rap := newClient(t, s, v5, "rap").(*v5Client)
	plain := newClient(t, s, v5, "plain").(*v5Client)
	require.Equal(t, []byte{1}, rap.SubOpts(t, nil, paho.SubscribeOptions{Topic: "rap/t", QoS: 1, RetainAsPublished: true}))
	require.Equal(t, []byte{1}, plain.SubOpts(t, nil, paho.SubscribeOptions{Topic: "rap/t", QoS: 1}))
	pub := newClient(t, s, v5, "pub").(*v5Client)

	pub.PubProps(t, &paho.Publish{Topic: "rap/t", Payload: []byte("r"), QoS: 1, Retain: true, Properties: &paho.PublishProperties{
		ContentType: "text/plain",
		User:        paho.UserProperties{{Key: "k", Value: "v"}},
	}})
	assert.True(t, rap.Recv(t).Retain, "retain-as-published subscriber lost the retain flag")
	assert.False(t, plain.Recv(t).Retain, "plain subscriber got the retain flag on a live message")

	pub.Pub(t, "rap/t", []byte("n"), 1, false)
	assert.False(t, rap.Recv(t).Retain, "retain flag on a non-retained message")
	assert.False(t, plain.Recv(t).Retain)

	late := newClient(t, s, v5, "late").(*v5Client)
	require.Equal(t, byte(1), late.Sub(t, "rap/t", 1))
	m := late.Recv(t)
	assert.True(t, m.Retain)
	assert.Equal(t, "r", string(m.Payload))
	require.NotNil(t, m.Props, "retained message lost its properties")
	assert.Equal(t, "text/plain", m.Props.ContentType)
	assert.Equal(t, paho.UserProperties{{Key: "k", Value: "v"}}, m.Props.User)
}

// withoutProps drops the MQTT 5 properties for comparisons of the rest.
func withoutProps(m msg) msg {
	m.Props = nil
	if len(m.Payload) == 0 {
		m.Payload = nil
	}
	return m
}
