package integration

import (
	"bytes"
	"fmt"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

// binaryPayload holds every byte value, so a payload that is cut, re-coded
// or treated as a string shows.
func binaryPayload(tag string) []byte {
	b := []byte(tag + ":")
	for i := 0; i < 256; i++ {
		b = append(b, byte(i))
	}
	return b
}

// TestPubSubQoS publishes at each QoS to a subscriber at each QoS, across
// both protocol versions in all four combinations: the message arrives once
// with topic and payload intact and QoS = min(publish, subscription)
// [MQTT-3.8.4-8].
func TestPubSubQoS(t *testing.T) {
	t.Parallel()
	s := start(t, anon())
	pubs := map[byte]client{v311: newClient(t, s, v311, "pub3"), v5: newClient(t, s, v5, "pub5")}
	subs := map[byte]client{v311: newClient(t, s, v311, "sub3"), v5: newClient(t, s, v5, "sub5")}

	for _, pv := range []byte{v311, v5} {
		for _, sv := range []byte{v311, v5} {
			for pq := byte(0); pq <= 2; pq++ {
				for sq := byte(0); sq <= 2; sq++ {
					name := fmt.Sprintf("%s_to_%s/pub_qos%d/sub_qos%d", versionName(pv), versionName(sv), pq, sq)
					t.Run(name, func(t *testing.T) {
						topic := fmt.Sprintf("qos/%s-%s/p%d/s%d", versionName(pv), versionName(sv), pq, sq)
						granted := subs[sv].Sub(t, topic, sq)
						require.Equal(t, sq, granted, "SUBACK granted QoS")
						payload := binaryPayload(name)
						pubs[pv].Pub(t, topic, payload, pq, false)
						m := subs[sv].Recv(t)
						assert.Equal(t, topic, m.Topic)
						assert.True(t, bytes.Equal(payload, m.Payload), "payload changed: got %q", m.Payload)
						assert.Equal(t, min(pq, sq), m.QoS, "delivered QoS")
						assert.False(t, m.Retain)
					})
				}
			}
		}
	}

	t.Run("large_payload", func(t *testing.T) {
		// 100 KiB: within the default 128 KiB packet limit.
		big := bytes.Repeat([]byte("0123456789abcdef"), 100<<10/16)
		for _, v := range []byte{v311, v5} {
			topic := "qos/big/" + versionName(v)
			require.Equal(t, byte(1), subs[v].Sub(t, topic, 1))
			pubs[v].Pub(t, topic, big, 1, false)
			m := subs[v].Recv(t)
			assert.Equal(t, topic, m.Topic)
			assert.True(t, bytes.Equal(big, m.Payload), "%s: 100 KiB payload changed (got %d bytes)", versionName(v), len(m.Payload))
		}
	})

	t.Run("empty_payload", func(t *testing.T) {
		for _, v := range []byte{v311, v5} {
			topic := "qos/empty/" + versionName(v)
			require.Equal(t, byte(1), subs[v].Sub(t, topic, 1))
			pubs[v].Pub(t, topic, nil, 1, false)
			m := subs[v].Recv(t)
			assert.Equal(t, topic, m.Topic)
			assert.Empty(t, m.Payload)
		}
	})
}

// TestPubSubOrder sends 500 numbered QoS 1 messages from one publisher: the
// subscriber sees them all, once each, in the order sent [MQTT-4.6.0-6].
func TestPubSubOrder(t *testing.T) {
	t.Parallel()
	for _, v := range []byte{v311, v5} {
		t.Run(versionName(v), func(t *testing.T) {
			s := start(t, anon())
			sub := newClient(t, s, v, "sub")
			pub := newClient(t, s, v, "pub")
			require.Equal(t, byte(1), sub.Sub(t, "order/+", 1))
			const n = 500
			done := make(chan struct{})
			go func() {
				defer close(done)
				// The publisher runs beside the receiver so neither side's
				// buffers have to hold all 500.
				for i := 0; i < n; i++ {
					if err := publishAsync(pub, "order/x", numbered("m", i), 1); err != nil {
						t.Errorf("publishing message %d: %v", i, err)
						return
					}
				}
			}()
			for i := 0; i < n; i++ {
				m := sub.Recv(t)
				require.Equal(t, string(numbered("m", i)), string(m.Payload), "message %d out of order", i)
				require.Equal(t, byte(1), m.QoS)
			}
			<-done
			st := s.Broker.Stats()
			assert.GreaterOrEqual(t, n64(st.MessagesIn), int64(n), "Stats().MessagesIn")
			assert.GreaterOrEqual(t, n64(st.MessagesOut), int64(n), "Stats().MessagesOut")
		})
	}
}

// TestWildcards checks which topics each filter matches, including the
// rules that '#' matches its parent level [MQTT-4.7.1-2], '+' matches an
// empty level, and a leading wildcard does not match a topic whose first
// level starts with '$' [MQTT-4.7.2-1].
func TestWildcards(t *testing.T) {
	t.Parallel()
	s := start(t, anon())
	topics := []string{"sport", "sport/tennis", "sport/tennis/player1", "sport/", "/finance", "finance", "$foo/bar", "$foo"}
	cases := []struct {
		filter string
		want   []string
	}{
		{"#", []string{"sport", "sport/tennis", "sport/tennis/player1", "sport/", "/finance", "finance"}},
		{"sport/#", []string{"sport", "sport/tennis", "sport/tennis/player1", "sport/"}},
		{"sport/+", []string{"sport/tennis", "sport/"}},
		{"+", []string{"sport", "finance"}},
		{"+/+", []string{"sport/tennis", "sport/", "/finance"}},
		{"/+", []string{"/finance"}},
		{"+/tennis/#", []string{"sport/tennis", "sport/tennis/player1"}},
		{"sport/tennis/+", []string{"sport/tennis/player1"}},
		{"sport/tennis/player1", []string{"sport/tennis/player1"}},
		{"+/bar", nil},
		{"+/#", []string{"sport", "sport/tennis", "sport/tennis/player1", "sport/", "/finance", "finance"}},
		{"$foo/#", []string{"$foo/bar", "$foo"}},
		{"$foo/+", []string{"$foo/bar"}},
		{"$foo", []string{"$foo"}},
	}
	const marker = "end"
	clients := make([]*v5Client, len(cases))
	for i, tc := range cases {
		c := newClient(t, s, v5, fmt.Sprintf("w%d", i)).(*v5Client)
		require.Equal(t, byte(1), c.Sub(t, tc.filter, 1), "subscribing to %q", tc.filter)
		if tc.filter != "#" && tc.filter != "+" && tc.filter != "+/#" {
			require.Equal(t, byte(1), c.Sub(t, marker, 1))
		}
		clients[i] = c
	}
	pub := newClient(t, s, v5, "pub")
	for _, tp := range topics {
		pub.Pub(t, tp, []byte(tp), 1, false)
	}
	pub.Pub(t, marker, nil, 1, false)

	for i, tc := range cases {
		t.Run(tc.filter, func(t *testing.T) {
			var got []string
			for _, m := range recvUntil(t, clients[i], marker) {
				got = append(got, m.Topic)
				assert.Equal(t, m.Topic, string(m.Payload), "payload belongs to another topic")
			}
			assert.ElementsMatch(t, tc.want, got, "topics matched by %q", tc.filter)
		})
	}

	t.Run("sys_filter_allowed", func(t *testing.T) {
		// Subscribing to the broker's own topics is allowed; publishing
		// there is not (TestSysTopicPublishRefused).
		assert.Equal(t, byte(0), clients[0].Sub(t, "$SYS/#", 0))
	})
}

// TestInvalidFilters sends one SUBSCRIBE with a valid filter and several
// invalid ones: each invalid filter is refused in its own SUBACK slot
// (3.1.1: 0x80; 5: 0x8F Topic Filter Invalid) and the valid one works
// [MQTT-4.7.1-1, MQTT-4.7.1-2, MQTT-4.7.1-3].
func TestInvalidFilters(t *testing.T) {
	t.Parallel()
	s := start(t, anon())
	invalid := []string{"a/#/b", "a+", "#/a", "a/b#", "+a/b", "a/+b", "a b/#"}
	for _, v := range []byte{v311, v5} {
		t.Run(versionName(v), func(t *testing.T) {
			c, _ := connectRaw(t, s.TCP, connectOpts{Version: v, ClientID: "f" + versionName(v), Clean: true})
			subs := []sub{{Filter: "ok/#", QoS: 1}}
			for _, f := range invalid {
				subs = append(subs, sub{Filter: f, QoS: 1})
			}
			codes := c.subscribe(t, nil, subs...)
			assert.Equal(t, byte(1), codes[0], "valid filter ok/#")
			want := byte(0x80)
			if v == v5 {
				want = 0x8F
			}
			for i, f := range invalid {
				assert.Equalf(t, want, codes[i+1], "filter %q: reason 0x%02x, want 0x%02x", f, codes[i+1], want)
			}
			c.publish(t, pub{Topic: "ok/x", Payload: []byte("fine"), QoS: 1})
			m := c.recv(t)
			assert.Equal(t, "ok/x", m.Topic)
			assert.Equal(t, "fine", string(m.Payload))
		})
	}
}

// TestUnsubscribe: UNSUBSCRIBE removes the subscription and the UNSUBACK
// answers for each filter (MQTT 5: 0x00 Success, 0x11 No Subscription
// Existed) [MQTT-3.10.4-1, MQTT-3.11.3-1]; later messages no longer arrive.
func TestUnsubscribe(t *testing.T) {
	t.Parallel()
	s := start(t, anon())
	p := newClient(t, s, v5, "pub")
	for _, v := range []byte{v311, v5} {
		t.Run(versionName(v), func(t *testing.T) {
			c, _ := connectRaw(t, s.TCP, connectOpts{Version: v, ClientID: "u" + versionName(v), Clean: true})
			a, b := "u/"+versionName(v)+"/a", "u/"+versionName(v)+"/b"
			require.Equal(t, []byte{1, 1}, c.subscribe(t, nil, sub{Filter: a, QoS: 1}, sub{Filter: b, QoS: 1}))
			codes := c.unsubscribe(t, a, "u/none")
			if v == v5 {
				assert.Equal(t, []byte{0x00, 0x11}, codes)
			} else {
				assert.Empty(t, codes, "3.1.1 UNSUBACK carries no reason codes")
			}
			p.Pub(t, a, []byte("unsubscribed"), 1, false)
			p.Pub(t, b, []byte("still subscribed"), 1, false)
			m := c.recv(t)
			assert.Equal(t, b, m.Topic, "message on an unsubscribed filter delivered: %s", m)
		})
	}
}
