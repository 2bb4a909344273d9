package integration

import (
	"fmt"
	"testing"
	"time"

	"github.com/eclipse/paho.golang/paho"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/mqttd/mqttd/broker"
	"github.com/mqttd/mqttd/internal/brokertest"
)

// persistent connects a client to a persistent session: 3.1.1 clean
// session 0, MQTT 5 clean start 0 with the given session expiry (seconds).
// It returns the client and the CONNACK's session present flag.
func persistent(t *testing.T, s *brokertest.Server, v byte, id string, expiry uint32) (client, bool) {
	t.Helper()
	if v == v5 {
		c := connectV5(t, s.TCP, &paho.Connect{ClientID: id, CleanStart: false, KeepAlive: 30,
			Properties: &paho.ConnectProperties{SessionExpiryInterval: u32p(expiry)}})
		return c, c.Ack.SessionPresent
	}
	c := connectV3(t, "tcp://"+s.TCP, id, false, nil)
	return c, c.SessionPresent
}

// offline waits until the broker counts want connections, so that what the
// test does next happens while the other clients are offline.
func offline(t *testing.T, s *brokertest.Server, want int64) {
	t.Helper()
	require.Eventually(t, func() bool { return n64(s.Broker.Stats().Connections) == want },
		waitMsg, poll, "Stats().Connections = %d, want %d", n64(s.Broker.Stats().Connections), want)
}

// TestTakeover connects twice with one client ID: the first connection is
// closed (MQTT 5: DISCONNECT 0x8E Session Taken Over) and the second works
// [MQTT-3.1.4-3].
func TestTakeover(t *testing.T) {
	t.Parallel()
	s := start(t, anon())

	t.Run("v5", func(t *testing.T) {
		first := newClient(t, s, v5, "dev5").(*v5Client)
		second := newClient(t, s, v5, "dev5")
		d := first.Disc(t)
		assert.Equalf(t, byte(0x8E), d.ReasonCode, "DISCONNECT reason 0x%02x, want 0x8E", d.ReasonCode)
		first.Dropped(t)
		require.Equal(t, byte(1), second.Sub(t, "tk/5", 1))
		second.Pub(t, "tk/5", []byte("x"), 1, false)
		assert.Equal(t, "x", string(second.Recv(t).Payload))
	})

	t.Run("v311", func(t *testing.T) {
		first, _ := connectRaw(t, s.TCP, connectOpts{Version: v311, ClientID: "dev3", Clean: true})
		second := newClient(t, s, v311, "dev3")
		assert.Empty(t, first.expectClosed(t, waitMsg), "3.1.1 has no server DISCONNECT")
		require.Equal(t, byte(1), second.Sub(t, "tk/3", 1))
		second.Pub(t, "tk/3", []byte("x"), 1, false)
		assert.Equal(t, "x", string(second.Recv(t).Payload))
	})

	t.Run("v311_by_v5", func(t *testing.T) {
		first, _ := connectRaw(t, s.TCP, connectOpts{Version: v311, ClientID: "mixed", Clean: true})
		newClient(t, s, v5, "mixed")
		assert.Empty(t, first.expectClosed(t, waitMsg))
	})

	t.Run("session_continues", func(t *testing.T) {
		for _, v := range []byte{v311, v5} {
			id := "keep" + versionName(v)
			first, _ := persistent(t, s, v, id, 60)
			require.Equal(t, byte(1), first.Sub(t, "tk/keep/"+versionName(v), 1))
			second, present := persistent(t, s, v, id, 60)
			assert.True(t, present, "%s: session present = 0 on takeover of a persistent session", versionName(v))
			pub := newClient(t, s, v5, "p"+id)
			pub.Pub(t, "tk/keep/"+versionName(v), []byte("still subscribed"), 1, false)
			assert.Equal(t, "still subscribed", string(second.Recv(t).Payload))
		}
	})
}

// TestPersistentSessionQueue: a persistent session queues QoS 1 messages
// while offline, at most SessionMaxQueued (10) with the oldest dropped and
// counted; QoS 0 messages are not queued; on reconnect the session is
// present and the newest 10 arrive in order, then live traffic.
func TestPersistentSessionQueue(t *testing.T) {
	t.Parallel()
	for _, v := range []byte{v311, v5} {
		t.Run(versionName(v), func(t *testing.T) {
			t.Parallel()
			s := start(t, anon())
			c, present := persistent(t, s, v, "dev", 3600)
			assert.False(t, present, "session present on the first connect")
			require.Equal(t, byte(1), c.Sub(t, "q/t", 1))
			c.Close()
			pub := newClient(t, s, v5, "pub")
			offline(t, s, 1)

			before := n64(s.Broker.Stats().DroppedOffline)
			for i := 1; i <= 15; i++ {
				pub.Pub(t, "q/t", numbered("q", i), 1, false)
				if i%5 == 0 {
					pub.Pub(t, "q/t", numbered("qos0", i), 0, false)
				}
			}
			barrier(t, pub) // the QoS 0 messages are handled while "dev" is offline
			require.Eventually(t, func() bool { return n64(s.Broker.Stats().DroppedOffline)-before == 5 },
				waitMsg, poll, "Stats().DroppedOffline rose by %d, want 5", n64(s.Broker.Stats().DroppedOffline)-before)

			c, present = persistent(t, s, v, "dev", 3600)
			assert.True(t, present, "session present = 0 on reconnect")
			for i := 6; i <= 15; i++ {
				m := c.Recv(t)
				require.Equal(t, string(numbered("q", i)), string(m.Payload), "queued message out of order or missing")
				assert.Equal(t, byte(1), m.QoS)
			}
			pub.Pub(t, "q/t", []byte("live"), 1, false)
			m := c.Recv(t)
			assert.Equal(t, "live", string(m.Payload), "a message beyond the newest 10 (or a QoS 0 one) was queued")
		})
	}
}

// TestSessionExpiry: a session is gone once its expiry passes after the
// disconnect. MQTT 5 uses the client's Session Expiry Interval capped by
// SessionMaxExpiry (and a capped value is returned in CONNACK
// [MQTT-3.2.2.3.2]); a 3.1.1 persistent session gets SessionMaxExpiry.
func TestSessionExpiry(t *testing.T) {
	t.Parallel()
	cases := []struct {
		name   string
		v      byte
		expiry uint32 // requested (MQTT 5)
		cfg    broker.Config
	}{
		{"v5_client_expiry", v5, 1, anon()},
		{"v5_capped_by_server", v5, 3600, broker.Config{AllowAnonymous: true, SessionMaxExpiry: time.Second}},
		{"v311_server_expiry", v311, 0, broker.Config{AllowAnonymous: true, SessionMaxExpiry: time.Second}},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			s := start(t, tc.cfg)
			c, _ := persistent(t, s, tc.v, "exp", tc.expiry)
			if tc.name == "v5_capped_by_server" {
				p := c.(*v5Client).Ack.Properties
				require.NotNil(t, p)
				require.NotNil(t, p.SessionExpiryInterval, "CONNACK lacks the capped Session Expiry Interval")
				assert.Equal(t, uint32(1), *p.SessionExpiryInterval)
			}
			require.Equal(t, byte(1), c.Sub(t, "se/t", 1))
			c.Close()
			pub := newClient(t, s, v5, "pub")
			offline(t, s, 1)
			time.Sleep(2 * time.Second) // let the 1 s expiry pass
			pub.Pub(t, "se/t", []byte("after expiry"), 1, false)

			c, present := persistent(t, s, tc.v, "exp", 60)
			assert.False(t, present, "session present after its expiry")
			require.Equal(t, byte(1), c.Sub(t, "se/end", 1))
			pub.Pub(t, "se/t", []byte("not subscribed"), 1, false)
			pub.Pub(t, "se/end", nil, 1, false)
			assert.Empty(t, recvUntil(t, c, "se/end"), "expired session's subscription or queue survived")
		})
	}
}

// TestCleanStartDiscardsSession: clean session (3.1.1) / clean start (5)
// discards an existing session: session present = 0 and its subscriptions
// are gone [MQTT-3.1.2-4]. An MQTT 5 clean start with an expiry starts a
// new session that then persists.
func TestCleanStartDiscardsSession(t *testing.T) {
	t.Parallel()
	s := start(t, anon())
	pub := newClient(t, s, v5, "pub")
	for _, v := range []byte{v311, v5} {
		t.Run(versionName(v), func(t *testing.T) {
			id := "cs" + versionName(v)
			topic := "cs/" + versionName(v)
			c, _ := persistent(t, s, v, id, 3600)
			require.Equal(t, byte(1), c.Sub(t, topic, 1))
			c.Close()

			var fresh client
			var present bool
			if v == v5 {
				c5 := connectV5(t, s.TCP, &paho.Connect{ClientID: id, CleanStart: true, KeepAlive: 30,
					Properties: &paho.ConnectProperties{SessionExpiryInterval: u32p(3600)}})
				fresh, present = c5, c5.Ack.SessionPresent
			} else {
				c3 := connectV3(t, "tcp://"+s.TCP, id, true, nil)
				fresh, present = c3, c3.SessionPresent
			}
			assert.False(t, present, "session present with clean start")
			marker := topic + "/end"
			require.Equal(t, byte(1), fresh.Sub(t, marker, 1))
			pub.Pub(t, topic, []byte("old subscription"), 1, false)
			pub.Pub(t, marker, nil, 1, false)
			assert.Empty(t, recvUntil(t, fresh, marker), "subscription of the discarded session still delivers")

			if v == v5 {
				fresh.Close()
				_, present = persistent(t, s, v5, id, 3600)
				assert.True(t, present, "the clean-started session with expiry 3600 did not persist")
			}
		})
	}
}

// TestSessionCounters checks Stats().Sessions and Subscriptions follow
// persistent sessions across disconnects.
func TestSessionCounters(t *testing.T) {
	t.Parallel()
	s := start(t, anon())
	stats := func() broker.Stats { return s.Broker.Stats() }
	base := stats()
	c, _ := persistent(t, s, v5, "count", 3600)
	for i := 0; i < 3; i++ {
		require.Equal(t, byte(1), c.Sub(t, fmt.Sprintf("cnt/%d", i), 1))
	}
	require.Eventually(t, func() bool {
		return n64(stats().Subscriptions)-n64(base.Subscriptions) == 3 && n64(stats().Sessions)-n64(base.Sessions) == 1
	}, waitMsg, poll, "after 3 subscriptions: %+v (base %+v)", stats(), base)
	c.Close()
	offline(t, s, n64(base.Connections))
	st := stats()
	assert.Equal(t, int64(1), n64(st.Sessions)-n64(base.Sessions), "offline persistent session not counted")
	assert.Equal(t, int64(3), n64(st.Subscriptions)-n64(base.Subscriptions), "offline session's subscriptions not counted")

	clean := connectV5(t, s.TCP, &paho.Connect{ClientID: "count", CleanStart: true, KeepAlive: 30})
	clean.Close()
	require.Eventually(t, func() bool {
		return n64(stats().Subscriptions) == n64(base.Subscriptions) && n64(stats().Sessions) == n64(base.Sessions)
	}, waitMsg, poll, "after clean start and disconnect: %+v (base %+v)", stats(), base)
}

// TestGroupOnline: clients named Group@@@Device count towards their group's
// online total while connected, whatever the protocol version.
func TestGroupOnline(t *testing.T) {
	t.Parallel()
	s := start(t, anon())
	online := func(g string) int { return s.Broker.GroupOnline(g) }
	a := newClient(t, s, v5, "plant7@@@meter1")
	newClient(t, s, v311, "plant7@@@meter2")
	newClient(t, s, v5, "plant8@@@meter1")
	newClient(t, s, v5, "loner")
	require.Eventually(t, func() bool { return online("plant7") == 2 && online("plant8") == 1 }, waitMsg, poll,
		"online: plant7=%d plant8=%d, want 2 and 1", online("plant7"), online("plant8"))
	assert.Zero(t, online("loner"), "a client without a group counted as a group")

	a.Close()
	require.Eventually(t, func() bool { return online("plant7") == 1 }, waitMsg, poll,
		"plant7 online = %d after one device left, want 1", online("plant7"))
	newClient(t, s, v5, "plant8@@@meter1") // takeover: still one device online
	offline(t, s, 3)                       // the taken-over connection is gone
	assert.Equal(t, 1, online("plant8"), "a takeover changed the group's online count")
}
