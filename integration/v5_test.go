package integration

import (
	"fmt"
	"regexp"
	"sort"
	"testing"
	"time"

	"github.com/eclipse/paho.golang/paho"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/mqttd/mqttd/broker"
)

// TestTopicAliasInbound covers topic aliases a client sends: a mapping is
// set by a PUBLISH with topic and alias and used by one with an empty topic
// [MQTT-3.3.2-12]; it can be remapped; an alias of 0 or above the broker's
// Topic Alias Maximum is DISCONNECT 0x94 [MQTT-3.3.2-8, MQTT-3.3.2-9]; an
// empty topic without a known alias is a protocol error.
func TestTopicAliasInbound(t *testing.T) {
	t.Parallel()
	s := start(t, broker.Config{AllowAnonymous: true, TopicAliasMaximum: 5})

	t.Run("set_use_remap", func(t *testing.T) {
		sub := newClient(t, s, v5, "sub")
		require.Equal(t, byte(1), sub.Sub(t, "ta/#", 1))
		c, ack := connectRaw(t, s.TCP, connectOpts{Version: v5, ClientID: "aliaser", Clean: true})
		p, ok := ack.Props.get(propTopicAliasMaximum)
		require.True(t, ok, "CONNACK lacks Topic Alias Maximum (%s)", ack)
		assert.Equal(t, uint32(5), p.Int)

		steps := []struct{ topic, payload, want string }{
			{"ta/a", "1", "ta/a"},
			{"", "2", "ta/a"},
			{"ta/b", "3", "ta/b"}, // remap alias 1
			{"", "4", "ta/b"},
		}
		for _, st := range steps {
			assert.Equal(t, byte(0), c.publish(t, pub{Topic: st.topic, Payload: []byte(st.payload), QoS: 1,
				Props: props{}.u16(propTopicAlias, 1)}))
		}
		for _, st := range steps {
			m := sub.Recv(t)
			assert.Equal(t, st.want, m.Topic, "payload %s", st.payload)
			assert.Equal(t, st.payload, string(m.Payload))
		}
	})

	errs := []struct {
		name   string
		p      pub
		reason []byte // acceptable DISCONNECT reasons
	}{
		{"above_maximum", pub{Topic: "ta/x", QoS: 1, Props: props{}.u16(propTopicAlias, 6)}, []byte{0x94}},
		{"zero", pub{Topic: "ta/x", QoS: 1, Props: props{}.u16(propTopicAlias, 0)}, []byte{0x94}},
		// Spec: an alias the client never mapped is a Protocol Error; some
		// servers report it as Topic Alias Invalid, which is also accepted.
		{"unmapped", pub{Topic: "", QoS: 1, Props: props{}.u16(propTopicAlias, 2)}, []byte{0x82, 0x94}},
		{"empty_topic_no_alias", pub{Topic: "", QoS: 1}, []byte{0x82}},
	}
	for _, tc := range errs {
		t.Run(tc.name, func(t *testing.T) {
			c, _ := connectRaw(t, s.TCP, connectOpts{Version: v5, ClientID: "bad" + tc.name[:4], Clean: true})
			tc.p.PacketID = 1
			c.write(t, tc.p.encode(v5))
			got := c.expectClosed(t, waitMsg)
			require.NotEmpty(t, got, "closed without DISCONNECT")
			last := got[len(got)-1]
			require.Equal(t, pDISCONNECT, last.Type, "%s", last)
			assert.Contains(t, tc.reason, last.Reason, "DISCONNECT reason 0x%02x, want one of %x", last.Reason, tc.reason)
		})
	}

	t.Run("disabled", func(t *testing.T) {
		s := start(t, broker.Config{AllowAnonymous: true, DisableTopicAlias: true})
		c, ack := connectRaw(t, s.TCP, connectOpts{Version: v5, ClientID: "off", Clean: true})
		if p, ok := ack.Props.get(propTopicAliasMaximum); ok {
			assert.Equal(t, uint32(0), p.Int, "Topic Alias Maximum with aliases disabled")
		}
		c.write(t, pub{Topic: "ta/x", QoS: 1, PacketID: 1, Props: props{}.u16(propTopicAlias, 1)}.encode(v5))
		c.expectDisconnect(t, 0x94, waitMsg)
	})
}

// TestTopicAliasOutbound: a client that sets Topic Alias Maximum may get
// aliases from the broker (never above its maximum [MQTT-3.3.2-10]); a
// repeated topic arrives as an empty topic plus alias and resolves to the
// right topic. A client that sets none never gets an alias [MQTT-3.3.2-11].
func TestTopicAliasOutbound(t *testing.T) {
	t.Parallel()
	s := start(t, anon())
	pub := newClient(t, s, v5, "pub")
	sent := []string{"to/a", "to/a", "to/a", "to/b", "to/b", "to/c", "to/c", "to/a", "to/d", "to/a"}

	aliased, _ := connectRaw(t, s.TCP, connectOpts{Version: v5, ClientID: "aliased", Clean: true,
		Props: props{}.u16(propTopicAliasMaximum, 2)})
	require.Equal(t, []byte{1}, aliased.subscribe(t, nil, sub{Filter: "to/#", QoS: 1}))
	plain, _ := connectRaw(t, s.TCP, connectOpts{Version: v5, ClientID: "plain", Clean: true})
	require.Equal(t, []byte{1}, plain.subscribe(t, nil, sub{Filter: "to/#", QoS: 1}))
	app := connectV5(t, s.TCP, &paho.Connect{ClientID: "app", CleanStart: true, KeepAlive: 30,
		Properties: &paho.ConnectProperties{TopicAliasMaximum: u16p(10)}})
	require.Equal(t, byte(1), app.Sub(t, "to/#", 1))

	for i, tp := range sent {
		pub.Pub(t, tp, numbered("a", i), 1, false)
	}

	t.Run("raw_max_2", func(t *testing.T) {
		aliases := map[uint32]string{}
		emptyTopics := 0
		for i, want := range sent {
			p := aliased.recv(t)
			topic := p.Topic
			if a, ok := p.Props.get(propTopicAlias); ok {
				require.True(t, a.Int >= 1 && a.Int <= 2, "alias %d outside 1..2 (%s)", a.Int, p)
				if p.Topic != "" {
					aliases[a.Int] = p.Topic
				} else {
					emptyTopics++
					topic, ok = aliases[a.Int]
					require.True(t, ok, "empty topic with alias %d never mapped (%s)", a.Int, p)
				}
			}
			require.Equal(t, want, topic, "message %d (%s)", i, p)
			require.Equal(t, string(numbered("a", i)), string(p.Payload))
			if i == 1 {
				assert.Empty(t, p.Topic, "second message on to/a should use the alias alone (%s)", p)
			}
		}
		assert.Positive(t, emptyTopics, "the broker never used an alias")
	})

	t.Run("raw_no_alias", func(t *testing.T) {
		for i, want := range sent {
			p := plain.recv(t)
			assert.False(t, p.Props.has(propTopicAlias), "alias sent to a client without Topic Alias Maximum (%s)", p)
			assert.Equal(t, want, p.Topic, "message %d", i)
		}
	})

	t.Run("paho_max_10", func(t *testing.T) {
		for i, want := range sent {
			m := app.Recv(t)
			assert.Equal(t, want, m.Topic, "message %d resolved to the wrong topic", i)
		}
		empty := 0
		for _, m := range app.RawPubs() {
			if m.Topic == "" {
				empty++
			}
		}
		assert.Positive(t, empty, "no PUBLISH used an alias alone")
	})

	t.Run("disabled", func(t *testing.T) {
		s := start(t, broker.Config{AllowAnonymous: true, DisableTopicAlias: true})
		c, _ := connectRaw(t, s.TCP, connectOpts{Version: v5, ClientID: "c", Clean: true,
			Props: props{}.u16(propTopicAliasMaximum, 10)})
		require.Equal(t, []byte{0}, c.subscribe(t, nil, sub{Filter: "to/#"}))
		p := newClient(t, s, v5, "p")
		for i := 0; i < 3; i++ {
			p.Pub(t, "to/x", []byte("x"), 0, false)
			m := c.recv(t)
			assert.Equal(t, "to/x", m.Topic)
			assert.False(t, m.Props.has(propTopicAlias), "alias sent although aliases are disabled")
		}
	})
}

// TestMessageExpiry: a queued message whose Message Expiry Interval passes
// before delivery is dropped (and counted); one still alive is delivered
// with the interval reduced by the time it waited [MQTT-3.3.2-5,
// MQTT-3.3.2-6]; a live delivery carries the interval too.
func TestMessageExpiry(t *testing.T) {
	t.Parallel()
	s := start(t, anon())
	pub := newClient(t, s, v5, "pub").(*v5Client)
	c, _ := persistent(t, s, v5, "me", 3600)
	require.Equal(t, byte(1), c.Sub(t, "me/t", 1))
	c.Close()
	offline(t, s, 1)

	before := n64(s.Broker.Stats().DroppedExpired)
	send := func(payload string, expiry *uint32) {
		pub.PubProps(t, &paho.Publish{Topic: "me/t", Payload: []byte(payload), QoS: 1,
			Properties: &paho.PublishProperties{MessageExpiry: expiry}})
	}
	send("short", u32p(1))
	send("long", u32p(60))
	send("forever", nil)
	time.Sleep(2 * time.Second) // "short" expires while queued

	c, present := persistent(t, s, v5, "me", 3600)
	require.True(t, present)
	m := c.Recv(t)
	require.Equal(t, "long", string(m.Payload), "expired message delivered or order broken")
	require.NotNil(t, m.Props.MessageExpiry, "Message Expiry Interval missing on delivery")
	assert.LessOrEqual(t, *m.Props.MessageExpiry, uint32(58), "expiry not reduced by the ~2 s the message waited")
	assert.Positive(t, *m.Props.MessageExpiry)
	m = c.Recv(t)
	assert.Equal(t, "forever", string(m.Payload))
	assert.Nil(t, m.Props.MessageExpiry, "expiry added to a message that had none")
	require.Eventually(t, func() bool { return n64(s.Broker.Stats().DroppedExpired)-before == 1 },
		waitMsg, poll, "Stats().DroppedExpired rose by %d, want 1", n64(s.Broker.Stats().DroppedExpired)-before)

	send("live", u32p(60))
	m = c.Recv(t)
	assert.Equal(t, "live", string(m.Payload))
	require.NotNil(t, m.Props.MessageExpiry)
	assert.InDelta(t, 60, *m.Props.MessageExpiry, 1)
}

// TestSubscriptionIdentifiers: a delivered message carries the identifiers
// of every subscription it matched [MQTT-3.3.4-3]; overlapping
// subscriptions of one client yield one copy at the highest granted QoS
// with all their identifiers; a subscription without one adds none; a
// re-subscription replaces the identifier.
func TestSubscriptionIdentifiers(t *testing.T) {
	t.Parallel()
	s := start(t, anon())
	p := newClient(t, s, v5, "pub")
	c, _ := connectRaw(t, s.TCP, connectOpts{Version: v5, ClientID: "ids", Clean: true})
	require.Equal(t, []byte{0}, c.subscribe(t, props{}.vbi(propSubscriptionID, 7), sub{Filter: "si/+", QoS: 0}))
	require.Equal(t, []byte{1}, c.subscribe(t, props{}.vbi(propSubscriptionID, 300), sub{Filter: "si/a", QoS: 1}))
	require.Equal(t, []byte{1}, c.subscribe(t, nil, sub{Filter: "nosi/x", QoS: 1}))

	ids := func(pk packet) []uint32 {
		v := pk.Props.ints(propSubscriptionID)
		sort.Slice(v, func(i, j int) bool { return v[i] < v[j] })
		return v
	}

	p.Pub(t, "si/a", []byte("both"), 1, false)
	p.Pub(t, "si/end", nil, 1, false)
	got, marker := c.recvUntil(t, "si/end")
	require.Len(t, got, 1, "overlapping subscriptions must deliver one copy: %v", got)
	assert.Equal(t, byte(1), got[0].QoS, "copy not at the highest granted QoS")
	assert.Equal(t, []uint32{7, 300}, ids(got[0]), "%s", got[0])
	assert.Equal(t, []uint32{7}, ids(marker), "%s", marker)

	p.Pub(t, "nosi/x", []byte("none"), 1, false)
	m := c.recv(t)
	assert.False(t, m.Props.has(propSubscriptionID), "identifier on a subscription without one: %s", m)

	require.Equal(t, []byte{0}, c.subscribe(t, props{}.vbi(propSubscriptionID, 8), sub{Filter: "si/+", QoS: 0}))
	p.Pub(t, "si/b", []byte("replaced"), 0, false)
	m = c.recv(t)
	assert.Equal(t, []uint32{8}, ids(m), "re-subscription did not replace the identifier: %s", m)

	t.Run("paho", func(t *testing.T) {
		app := newClient(t, s, v5, "app").(*v5Client)
		id := 42
		require.Equal(t, []byte{1}, app.SubOpts(t, &paho.SubscribeProperties{SubscriptionIdentifier: &id},
			paho.SubscribeOptions{Topic: "si/paho", QoS: 1}))
		p.Pub(t, "si/paho", []byte("x"), 1, false)
		m := app.Recv(t)
		require.NotNil(t, m.Props.SubscriptionIdentifier)
		assert.Equal(t, 42, *m.Props.SubscriptionIdentifier)
	})
}

// TestNoLocal: with No Local a client does not receive its own publications
// [MQTT-3.8.3-3]; others' publications still arrive, and clients without
// the option receive their own.
func TestNoLocal(t *testing.T) {
	t.Parallel()
	s := start(t, anon())
	a := newClient(t, s, v5, "a").(*v5Client)
	b := newClient(t, s, v5, "b").(*v5Client)
	require.Equal(t, []byte{1, 1}, a.SubOpts(t, nil,
		paho.SubscribeOptions{Topic: "nl/t", QoS: 1, NoLocal: true},
		paho.SubscribeOptions{Topic: "nl/end", QoS: 1}))
	require.Equal(t, byte(1), b.Sub(t, "nl/t", 1))

	a.Pub(t, "nl/t", []byte("from a"), 1, false)
	b.Pub(t, "nl/t", []byte("from b"), 1, false)
	a.Pub(t, "nl/end", nil, 1, false)

	got := recvUntil(t, a, "nl/end")
	require.Len(t, got, 1, "no-local subscriber got %v", got)
	assert.Equal(t, "from b", string(got[0].Payload))
	assert.Equal(t, "from a", string(b.Recv(t).Payload))
	assert.Equal(t, "from b", string(b.Recv(t).Payload), "subscriber without no-local missed its own message")
}

// TestRequestResponse: Response Topic, Correlation Data, Content Type,
// Payload Format Indicator and User Properties (order and duplicates kept)
// reach the subscriber unchanged [MQTT-3.3.2-15, MQTT-3.3.2-18]; the
// responder can answer on the response topic.
func TestRequestResponse(t *testing.T) {
	t.Parallel()
	s := start(t, anon())
	requester := newClient(t, s, v5, "requester").(*v5Client)
	responder := newClient(t, s, v5, "responder").(*v5Client)
	require.Equal(t, byte(1), requester.Sub(t, "rr/reply/requester", 1))
	require.Equal(t, byte(1), responder.Sub(t, "rr/req", 1))

	corr := []byte{0, 1, 2, 0xFE, 0xFF}
	user := paho.UserProperties{{Key: "a", Value: "1"}, {Key: "b", Value: "2"}, {Key: "a", Value: "3"}, {Key: "ünï", Value: "çødé"}}
	requester.PubProps(t, &paho.Publish{Topic: "rr/req", Payload: []byte(`{"q":1}`), QoS: 1, Properties: &paho.PublishProperties{
		ResponseTopic:   "rr/reply/requester",
		CorrelationData: corr,
		ContentType:     "application/json",
		PayloadFormat:   bytep(1),
		User:            user,
	}})
	req := responder.Recv(t)
	require.NotNil(t, req.Props)
	assert.Equal(t, "rr/reply/requester", req.Props.ResponseTopic)
	assert.Equal(t, corr, req.Props.CorrelationData)
	assert.Equal(t, "application/json", req.Props.ContentType)
	require.NotNil(t, req.Props.PayloadFormat)
	assert.Equal(t, byte(1), *req.Props.PayloadFormat)
	assert.Equal(t, user, req.Props.User, "user properties changed, reordered or deduplicated")

	responder.PubProps(t, &paho.Publish{Topic: req.Props.ResponseTopic, Payload: []byte(`{"a":2}`), QoS: 1,
		Properties: &paho.PublishProperties{CorrelationData: req.Props.CorrelationData}})
	resp := requester.Recv(t)
	assert.Equal(t, `{"a":2}`, string(resp.Payload))
	assert.Equal(t, corr, resp.Props.CorrelationData)
}

var strictID = regexp.MustCompile(`^[0-9A-Za-z_-]{1,128}$`)

// TestAssignedClientID: an MQTT 5 client with an empty client ID and clean
// start gets an Assigned Client Identifier in CONNACK [MQTT-3.2.2-16],
// unique and valid under the strict naming rules, and can use the session;
// a 3.1.1 client with an empty ID and clean session is accepted
// [MQTT-3.1.3-6].
func TestAssignedClientID(t *testing.T) {
	t.Parallel()
	s := start(t, anon())
	seen := map[string]bool{}
	for i := 0; i < 3; i++ {
		c := connectV5(t, s.TCP, &paho.Connect{ClientID: "", CleanStart: true, KeepAlive: 30})
		require.NotNil(t, c.Ack.Properties)
		id := c.Ack.Properties.AssignedClientID
		require.NotEmpty(t, id, "no Assigned Client Identifier")
		assert.Regexp(t, strictID, id)
		assert.False(t, seen[id], "assigned ID %q given twice", id)
		seen[id] = true
		topic := fmt.Sprintf("ac/%d", i)
		require.Equal(t, byte(1), c.Sub(t, topic, 1))
		c.Pub(t, topic, []byte("mine"), 1, false)
		assert.Equal(t, "mine", string(c.Recv(t).Payload))
	}

	c := dialRaw(t, s.TCP, v311)
	ack := c.connect(t, connectOpts{Version: v311, ClientID: "", Clean: true})
	assert.Equal(t, byte(0), ack.Reason, "3.1.1 empty client ID with clean session refused: %s", ack)
	c.ping(t)
}
