package integration

import (
	"bytes"
	"errors"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/mqttd/mqttd/broker"
)

// sizedPublish returns a QoS 1 PUBLISH to topic of exactly size bytes.
func sizedPublish(t *testing.T, version byte, topic string, size int) []byte {
	t.Helper()
	for payload := size; payload >= 0; payload-- {
		b := pub{Topic: topic, Payload: bytes.Repeat([]byte{'p'}, payload), QoS: 1, PacketID: 1}.encode(version)
		if len(b) == size {
			return b
		}
	}
	t.Fatalf("no PUBLISH of exactly %d bytes", size)
	return nil
}

// TestMaxPacketSize: with MaxPacketSize 1 KiB a packet of exactly 1024
// bytes is accepted and a larger one is refused: MQTT 5 DISCONNECT 0x95
// [MQTT-3.2.2-15 announces the limit], 3.1.1 close. A length prefix
// announcing a huge packet is refused before its body arrives.
func TestMaxPacketSize(t *testing.T) {
	t.Parallel()
	s := start(t, broker.Config{AllowAnonymous: true, MaxPacketSize: 1024})
	for _, v := range []byte{v311, v5} {
		t.Run(versionName(v), func(t *testing.T) {
			c, ack := connectRaw(t, s.TCP, connectOpts{Version: v, ClientID: "big" + versionName(v), Clean: true})
			if v == v5 {
				p, ok := ack.Props.get(propMaximumPacketSize)
				require.True(t, ok, "CONNACK lacks Maximum Packet Size: %s", ack)
				assert.Equal(t, uint32(1024), p.Int)
			}
			c.write(t, sizedPublish(t, v, "mp/t", 1024))
			require.Equal(t, byte(0), c.expect(t, pPUBACK).Reason, "a packet of exactly the limit was refused")

			c.write(t, sizedPublish(t, v, "mp/t", 2000))
			if v == v5 {
				c.expectDisconnect(t, 0x95, waitMsg)
			} else {
				assert.Empty(t, c.expectClosed(t, waitMsg), "3.1.1: close without a reply")
			}
		})
		t.Run("length_prefix_only_"+versionName(v), func(t *testing.T) {
			c, _ := connectRaw(t, s.TCP, connectOpts{Version: v, ClientID: "pre" + versionName(v), Clean: true})
			c.write(t, appendVBI([]byte{pPUBLISH << 4}, 100<<20)) // 100 MiB announced, nothing sent
			got := c.expectClosed(t, 2*time.Second)
			for _, p := range got {
				assert.True(t, p.Type == pDISCONNECT && p.Reason == 0x95, "unexpected %s", p)
			}
		})
	}
}

// TestClientIDRules checks the strict client ID rules (at most 128 of
// [0-9A-Za-z_-], optionally Group@@@Device): a bad ID is CONNACK 0x02
// (3.1.1) / 0x85 (5) and the connection is closed [MQTT-3.2.2-5];
// Names=mqtt accepts any UTF-8 ID.
func TestClientIDRules(t *testing.T) {
	t.Parallel()
	strict := start(t, anon())
	relaxed := start(t, broker.Config{AllowAnonymous: true, Names: broker.NamesMQTT})
	cases := []struct {
		name    string
		id      string
		relaxed bool // connect to the Names=mqtt broker
		ok      bool
	}{
		{"plain", "dev-01_X", false, true},
		{"group", "Group@@@Device", false, true},
		{"128_chars", strings.Repeat("a", 128), false, true},
		{"129_chars", strings.Repeat("a", 129), false, false},
		{"space_bang", "bad id!", false, false},
		{"slash", "a/b", false, false},
		{"dot", "a.b", false, false},
		{"non_ascii", "gerät", false, false},
		{"mqtt_names_space_bang", "bad id!", true, true},
		{"mqtt_names_non_ascii", "gerät", true, true},
	}
	for _, tc := range cases {
		for _, v := range []byte{v311, v5} {
			t.Run(tc.name+"_"+versionName(v), func(t *testing.T) {
				s := strict
				if tc.relaxed {
					s = relaxed
				}
				c := dialRaw(t, s.TCP, v)
				ack := c.connect(t, connectOpts{Version: v, ClientID: tc.id, Clean: true})
				if tc.ok {
					require.Equalf(t, byte(0), ack.Reason, "client ID %q refused: %s", tc.id, ack)
					c.ping(t)
					return
				}
				want := byte(0x02)
				if v == v5 {
					want = 0x85
				}
				assert.Equalf(t, want, ack.Reason, "client ID %q: CONNACK 0x%02x, want 0x%02x", tc.id, ack.Reason, want)
				c.expectClosed(t, waitMsg)
			})
		}
	}

	t.Run("empty_persistent_v311", func(t *testing.T) {
		// [MQTT-3.1.3-8]: an empty client ID needs clean session in 3.1.1.
		c := dialRaw(t, strict.TCP, v311)
		ack := c.connect(t, connectOpts{Version: v311, ClientID: "", Clean: false})
		assert.Equal(t, byte(0x02), ack.Reason, "%s", ack)
		c.expectClosed(t, waitMsg)
	})
}

// TestTopicNameRules: in strict mode a topic level outside [0-9A-Za-z_-]
// is refused (MQTT 5: PUBACK or DISCONNECT 0x90 Topic Name Invalid; 3.1.1:
// close); wildcards are never allowed in a topic name [MQTT-3.3.2-2];
// Names=mqtt accepts any UTF-8 topic. Nothing refused is delivered.
func TestTopicNameRules(t *testing.T) {
	t.Parallel()
	strict := start(t, anon())
	relaxed := start(t, broker.Config{AllowAnonymous: true, Names: broker.NamesMQTT})
	type tcase struct {
		topic   string
		relaxed bool
	}
	bad := []tcase{{"a b/c", false}, {"a.b/c", false}, {"x/ü", false}, {"a:b", false}, {"a/+/c", false}, {"a/#", false},
		{"a/+/c", true}, {"a/#", true}}
	for i, tc := range bad {
		for _, v := range []byte{v311, v5} {
			t.Run(fmt.Sprintf("refused_%d_%s", i, versionName(v)), func(t *testing.T) {
				s := strict
				if tc.relaxed {
					s = relaxed
				}
				watch, _ := connectRaw(t, s.TCP, connectOpts{Version: v5, ClientID: fmt.Sprintf("w%d%s", i, versionName(v)), Clean: true})
				require.Equal(t, []byte{0}, watch.subscribe(t, nil, sub{Filter: "#"})) // matches the marker "end" too

				c, _ := connectRaw(t, s.TCP, connectOpts{Version: v, ClientID: fmt.Sprintf("c%d%s", i, versionName(v)), Clean: true})
				c.write(t, pub{Topic: tc.topic, Payload: []byte("bad"), QoS: 1, PacketID: 1}.encode(v))
				if v == v5 {
					p := c.next(t, waitMsg)
					switch p.Type {
					case pPUBACK:
						assert.Equalf(t, byte(0x90), p.Reason, "topic %q: PUBACK 0x%02x, want 0x90", tc.topic, p.Reason)
					case pDISCONNECT:
						assert.Equalf(t, byte(0x90), p.Reason, "topic %q: DISCONNECT 0x%02x, want 0x90", tc.topic, p.Reason)
					default:
						require.Failf(t, "unexpected reply", "topic %q: %s", tc.topic, p)
					}
				} else {
					assert.Empty(t, c.expectClosed(t, waitMsg), "3.1.1 topic %q: want close, no PUBACK", tc.topic)
				}
				marker, _ := connectRaw(t, s.TCP, connectOpts{Version: v5, ClientID: fmt.Sprintf("m%d%s", i, versionName(v)), Clean: true})
				marker.publish(t, pub{Topic: "end", QoS: 1})
				got, _ := watch.recvUntil(t, "end")
				assert.Empty(t, got, "refused topic %q delivered", tc.topic)
			})
		}
	}

	for i, topic := range []string{"a b/c", "x/ü", "a.b:c/ä ö"} {
		t.Run(fmt.Sprintf("mqtt_names_%d", i), func(t *testing.T) {
			watch, _ := connectRaw(t, relaxed.TCP, connectOpts{Version: v5, ClientID: fmt.Sprintf("rw%d", i), Clean: true})
			require.Equal(t, []byte{1}, watch.subscribe(t, nil, sub{Filter: topic, QoS: 1}))
			for _, v := range []byte{v311, v5} {
				c, _ := connectRaw(t, relaxed.TCP, connectOpts{Version: v, ClientID: fmt.Sprintf("rc%d%s", i, versionName(v)), Clean: true})
				assert.Equal(t, byte(0), c.publish(t, pub{Topic: topic, Payload: []byte("ok"), QoS: 1}))
				m := watch.recv(t)
				assert.Equal(t, topic, m.Topic)
			}
		})
	}
}

// TestSysTopicPublishRefused: clients may not publish to $SYS/...; the
// message reaches nobody (MQTT 5: an error PUBACK or DISCONNECT; 3.1.1:
// the broker may close the connection).
func TestSysTopicPublishRefused(t *testing.T) {
	t.Parallel()
	s := start(t, anon())
	watch, _ := connectRaw(t, s.TCP, connectOpts{Version: v5, ClientID: "watch", Clean: true})
	require.Equal(t, []byte{1, 1}, watch.subscribe(t, nil, sub{Filter: "$SYS/#", QoS: 1}, sub{Filter: "end", QoS: 1}))
	for _, v := range []byte{v311, v5} {
		c, _ := connectRaw(t, s.TCP, connectOpts{Version: v, ClientID: "sys" + versionName(v), Clean: true})
		c.write(t, pub{Topic: "$SYS/x", Payload: []byte("forged"), QoS: 1, PacketID: 1}.encode(v))
		p, err := c.read(waitMsg)
		switch {
		case errors.Is(err, errClosed):
		case err != nil:
			require.NoError(t, err)
		case v == v5 && (p.Type == pPUBACK || p.Type == pDISCONNECT):
			assert.GreaterOrEqualf(t, p.Reason, byte(0x80), "$SYS publish acknowledged with success: %s", p)
		case v == v311 && p.Type == pPUBACK:
			// 3.1.1 has no error PUBACK; the broker acknowledged and
			// dropped it. The marker below shows whether it was delivered.
		default:
			require.Failf(t, "unexpected reply to a $SYS publish", "%s", p)
		}
	}
	m, _ := connectRaw(t, s.TCP, connectOpts{Version: v5, ClientID: "marker", Clean: true})
	m.publish(t, pub{Topic: "end", QoS: 1})
	got, _ := watch.recvUntil(t, "end")
	for _, p := range got {
		assert.NotEqual(t, "forged", string(p.Payload), "client publish to $SYS delivered: %s", p)
	}
}

// TestConnectTimeout: a connection that sends no complete CONNECT within
// ConnectTimeout is closed.
func TestConnectTimeout(t *testing.T) {
	t.Parallel()
	s := start(t, broker.Config{AllowAnonymous: true, ConnectTimeout: 500 * time.Millisecond})
	for _, tc := range []struct {
		name string
		send []byte
	}{
		{"silent", nil},
		{"partial_connect", connectOpts{Version: v5, ClientID: "slowloris", Clean: true}.encode()[:6]},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			c := dialRaw(t, s.TCP, v5)
			opened := time.Now()
			if tc.send != nil {
				c.write(t, tc.send)
			}
			got := c.expectClosed(t, 3*time.Second)
			elapsed := time.Since(opened)
			assert.Empty(t, got)
			assert.GreaterOrEqual(t, elapsed, 400*time.Millisecond, "closed after %v, before the timeout", elapsed)
			assert.Less(t, elapsed, 2*time.Second, "closed after %v", elapsed)
		})
	}
	t.Run("connected_client_stays", func(t *testing.T) {
		t.Parallel()
		c, _ := connectRaw(t, s.TCP, connectOpts{Version: v5, ClientID: "prompt", Clean: true, KeepAlive: 60})
		time.Sleep(time.Second) // past ConnectTimeout
		c.ping(t)
	})
}

// TestMalformedFirstPacket: a first packet that is not a valid CONNECT
// closes the connection [MQTT-3.1.0-1, MQTT-3.1.2-3, MQTT-2.2.2-2]
// (possibly after a failure CONNACK); clients already connected are
// unaffected.
func TestMalformedFirstPacket(t *testing.T) {
	t.Parallel()
	s := start(t, anon())
	bystander := newClient(t, s, v5, "bystander")
	require.Equal(t, byte(1), bystander.Sub(t, "ok/t", 1))
	bysPub := newClient(t, s, v311, "bystander-pub")

	good := connectOpts{Version: v311, ClientID: "m", Clean: true}
	withFlags := func(o connectOpts, xor byte) []byte { o.FlagsXOR = xor; return o.encode() }
	cases := []struct {
		name string
		data []byte
	}{
		{"publish_first", pub{Topic: "ok/t", Payload: []byte("sneaky")}.encode(v311)},
		{"subscribe_first", subscribePacket(v311, 1, nil, sub{Filter: "#"})},
		{"bad_remaining_length", []byte{0x10, 0xFF, 0xFF, 0xFF, 0xFF, 0x01}},
		{"connect_header_flags", append([]byte{0x11}, good.encode()[1:]...)},
		{"reserved_connect_flag", withFlags(good, 0x01)},
		{"will_qos_3", withFlags(connectOpts{Version: v311, ClientID: "m", Clean: true, Will: &will{Topic: "w"}}, 0x18)},
		{"will_flag_without_will", withFlags(good, 0x04)},
		{"password_without_username_v311", connectOpts{Version: v311, ClientID: "m", Clean: true, Password: strp("pw")}.encode()},
		{"client_id_length_past_end", frame(0x10, append(appendStr(nil, "MQTT"), 4, 2, 0, 30, 0, 200, 'a'))},
		{"type_zero", []byte{0x00, 0x00}},
		{"http_request", []byte("GET /mqtt HTTP/1.1\r\nHost: x\r\n\r\n")},
		{"v5_bad_property", frame(0x10, append(appendStr(nil, "MQTT"), 5, 2, 0, 30, 2, 0xFF, 0, 0, 1, 'm'))},
	}
	for i, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			c := dialRaw(t, s.TCP, v5)
			c.write(t, tc.data)
			for _, p := range c.expectClosed(t, waitMsg) {
				ok := (p.Type == pCONNACK && p.Reason != 0) || p.Type == pDISCONNECT
				assert.True(t, ok, "broker answered a malformed first packet with %s", p)
			}
			bysPub.Pub(t, "ok/t", numbered("still", i), 1, false)
			assert.Equal(t, string(numbered("still", i)), string(bystander.Recv(t).Payload), "bystanders affected")
		})
	}

	t.Run("second_connect", func(t *testing.T) {
		// [MQTT-3.1.0-2]: a second CONNECT is a protocol error.
		for _, v := range []byte{v311, v5} {
			c, _ := connectRaw(t, s.TCP, connectOpts{Version: v, ClientID: "twice" + versionName(v), Clean: true})
			c.write(t, connectOpts{Version: v, ClientID: "twice" + versionName(v), Clean: true}.encode())
			if v == v5 {
				c.expectDisconnect(t, 0x82, waitMsg)
			} else {
				assert.Empty(t, c.expectClosed(t, waitMsg))
			}
		}
	})
}

// TestUnsupportedProtocol: protocol level 6 gets CONNACK 0x01 (3.1.1
// form) or 0x84 (MQTT 5 form) and a close [MQTT-3.1.2-2]; a wrong protocol
// name is closed; MQTT 3.1 ("MQIsdp", level 3) is accepted.
func TestUnsupportedProtocol(t *testing.T) {
	t.Parallel()
	s := start(t, anon())

	t.Run("level_6", func(t *testing.T) {
		c := dialRaw(t, s.TCP, v5)
		ack := c.connect(t, connectOpts{Version: 6, ClientID: "future", Clean: true})
		assert.Contains(t, []byte{0x01, 0x84}, ack.Reason, "CONNACK %s", ack)
		c.expectClosed(t, waitMsg)
	})
	t.Run("bad_name", func(t *testing.T) {
		c := dialRaw(t, s.TCP, v5)
		c.write(t, connectOpts{Version: v311, ProtocolName: "MQTX", ClientID: "odd", Clean: true}.encode())
		for _, p := range c.expectClosed(t, waitMsg) {
			assert.True(t, p.Type == pCONNACK && p.Reason != 0, "reply to a bad protocol name: %s", p)
		}
	})
	t.Run("mqtt_3_1", func(t *testing.T) {
		c := dialRaw(t, s.TCP, v311)
		ack := c.connect(t, connectOpts{Version: 3, ClientID: "old", Clean: true})
		require.Equal(t, byte(0), ack.Reason, "%s", ack)
		require.Equal(t, []byte{1}, c.subscribe(t, nil, sub{Filter: "old/t", QoS: 1}))
		c.publish(t, pub{Topic: "old/t", Payload: []byte("3.1"), QoS: 1})
		assert.Equal(t, "3.1", string(c.recv(t).Payload))
	})
}
