package kafkabridge

import (
	"encoding/json"
	"errors"
	"fmt"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/mqttd/mqttd/broker"
	"github.com/mqttd/mqttd/codec"
	"github.com/mqttd/mqttd/session"
)

func register(t *testing.T, br *Bridge, name string) {
	t.Helper()
	_, err := br.Register(name, "")
	require.NoError(t, err)
}

func TestAcceptOnlyRegistered(t *testing.T) {
	k := newFakeKafka()
	br := testBridge(t, k, nil, nil)
	register(t, br, "meter")

	d := newDone()
	assert.False(t, br.Accept(msg("c", "other/x", codec.QoS1, "p"), d.fn()), "unregistered parent topic")
	assert.False(t, br.Accept(msg("c", "meterx/y", codec.QoS1, "p"), d.fn()), "parent topic is the whole first level")
	assert.True(t, d.pending(), "done not called for messages not taken")

	assert.True(t, br.Accept(msg("c", "meter", codec.QoS1, "p1"), d.fn()), "the parent topic alone")
	require.NoError(t, d.wait(t))
	d = newDone()
	assert.True(t, br.Accept(msg("c", "meter/a/b", codec.QoS0, "p2"), d.fn()))
	require.NoError(t, d.wait(t), "QoS 0: done at once")

	require.Eventually(t, func() bool { return len(k.recordsOf("meter")) == 2 }, 5*time.Second, 5*time.Millisecond)
	recs := k.recordsOf("meter")
	assert.Nil(t, recs[0].key, "normal topics are not keyed")
	var v deviceValue
	require.NoError(t, json.Unmarshal(recs[1].value, &v))
	assert.Equal(t, "meter/a/b", v.Topic)
	assert.Equal(t, "p2", v.Payload)
	m := br.Metrics()
	assert.Equal(t, uint64(2), m.Accepted)
	assert.Equal(t, uint64(2), m.Produced)
	assert.Equal(t, uint64(0), m.Backlog)
}

func TestAckModes(t *testing.T) {
	t.Run("local: acknowledged once spooled, before Kafka", func(t *testing.T) {
		k := newFakeKafka()
		k.hold = make(chan struct{})
		br := testBridge(t, k, nil, func(c *Config) { c.Ack = AckLocal })
		register(t, br, "meter")
		d := newDone()
		require.True(t, br.Accept(msg("c", "meter/x", codec.QoS1, "p"), d.fn()))
		require.NoError(t, d.wait(t))
		assert.Empty(t, k.records(), "Kafka has not acknowledged anything yet")
		close(k.hold)
		require.Eventually(t, func() bool { return len(k.records()) == 1 }, 5*time.Second, 5*time.Millisecond)
	})
	t.Run("kafka: acknowledged only after Kafka", func(t *testing.T) {
		k := newFakeKafka()
		k.hold = make(chan struct{})
		br := testBridge(t, k, nil, func(c *Config) { c.Ack = AckKafka })
		register(t, br, "meter")
		d := newDone()
		require.True(t, br.Accept(msg("c", "meter/x", codec.QoS2, "p"), d.fn()))
		require.Eventually(t, func() bool { return br.Metrics().Spooled == 1 }, 5*time.Second, 5*time.Millisecond)
		time.Sleep(50 * time.Millisecond)
		assert.True(t, d.pending(), "held while Kafka has not acknowledged")
		close(k.hold)
		require.NoError(t, d.wait(t))
		assert.Len(t, k.records(), 1)
	})
}

// TestOrderAcrossFailures: Kafka fails records now and then (transient
// errors, whole rounds and single records); every client's records of an
// ordered topic still reach Kafka complete and, dropping repeats, in order.
func TestOrderAcrossFailures(t *testing.T) {
	k := newFakeKafka()
	br := testBridge(t, k, nil, func(c *Config) { c.Ack = AckKafka; c.MaxBatch = 7 })
	register(t, br, "orderMsg2mq-meter")

	var calls atomic.Int64
	k.setFail(func(r *record) error {
		n := calls.Add(1)
		switch {
		case n%13 == 0: // a single record fails
			return transient("")
		case n%17 == 0: // written, but the acknowledgement is lost
			return errWrittenButLost
		case n%50 < 5: // a whole stretch fails
			return transient("")
		}
		return nil
	})
	const clients, per = 3, 200
	dones := make([]*doneRec, 0, clients*per)
	for i := range per {
		for c := range clients {
			d := newDone()
			dones = append(dones, d)
			require.True(t, br.Accept(msg(fmt.Sprintf("c%d", c), "orderMsg2mq-meter/x", codec.QoS1, numbered(i)), d.fn()))
		}
	}
	for _, d := range dones {
		require.NoError(t, d.wait(t))
	}
	seen := map[string]int{}
	for _, r := range k.recordsOf("orderMsg2mq-meter") {
		var v deviceValue
		require.NoError(t, json.Unmarshal(r.value, &v))
		assert.Equal(t, v.ClientID, string(r.key), "keyed by client")
		var n int
		_, err := fmt.Sscanf(v.Payload, "%d", &n)
		require.NoError(t, err)
		last, ok := seen[v.ClientID]
		switch {
		case !ok:
			require.Equal(t, 0, n, "client %s starts at 0", v.ClientID)
		case n <= last: // a repeat from a resend
		default:
			require.Equal(t, last+1, n, "client %s: no gap, no reordering", v.ClientID)
		}
		if !ok || n > last {
			seen[v.ClientID] = n
		}
	}
	for c := range clients {
		assert.Equal(t, per-1, seen[fmt.Sprintf("c%d", c)], "client c%d complete", c)
	}
	assert.Greater(t, br.Metrics().Resent, uint64(0), "the failures were exercised")
}

func TestKafkaDownThenUp(t *testing.T) {
	k := newFakeKafka()
	k.setDown(errors.New("connection refused"))
	br := newTestBridge(t, k, nil, t.TempDir(), nil)
	k.mu.topics["meter"] = true
	br.setTopic("meter", &ParentTopic{Name: "meter", Type: Normal})
	require.NoError(t, br.Start(t.Context()))

	for i := range 20 {
		d := newDone()
		require.True(t, br.Accept(msg("c", "meter/x", codec.QoS1, numbered(i)), d.fn()))
		require.NoError(t, d.wait(t), "AckLocal: acknowledged from the spool while Kafka is down")
	}
	require.Eventually(t, func() bool { return !br.Status().KafkaUp }, 5*time.Second, 5*time.Millisecond)
	st := br.Status()
	assert.Contains(t, st.Alarms, AlarmKafkaUnreachable)
	assert.Equal(t, uint64(20), st.Backlog)
	assert.Contains(t, st.KafkaError, "connection refused")

	k.setDown(nil)
	require.Eventually(t, func() bool { return len(k.records()) == 20 }, 5*time.Second, 5*time.Millisecond)
	require.Eventually(t, func() bool { return br.Status().KafkaUp }, 5*time.Second, 5*time.Millisecond)
	for i, r := range k.records() {
		var v deviceValue
		require.NoError(t, json.Unmarshal(r.value, &v))
		assert.Equal(t, numbered(i), v.Payload, "spool drained in order")
	}
	assert.Empty(t, br.Status().Alarms)
	assert.Equal(t, uint64(0), br.Status().Backlog)
}

func TestSpoolFullBackpressure(t *testing.T) {
	k := newFakeKafka()
	k.setDown(errors.New("down"))
	br := newTestBridge(t, k, nil, t.TempDir(), func(c *Config) {
		c.SpoolMaxBytes = 4096
		c.SpoolSegmentBytes = 1024
	})
	br.setTopic("meter", &ParentTopic{Name: "meter", Type: Normal})
	require.NoError(t, br.Start(t.Context()))

	payload := strings.Repeat("a", 200)
	var held []*doneRec
	for i := 0; ; i++ {
		require.Less(t, i, 100, "the spool never filled")
		d := newDone()
		require.True(t, br.Accept(msg("c", "meter/x", codec.QoS1, payload), d.fn()))
		select {
		case err := <-d.ch:
			require.NoError(t, err)
			continue
		case <-time.After(200 * time.Millisecond):
		}
		held = append(held, d)
		break
	}
	require.Eventually(t, func() bool { return br.Status().SpoolFull }, 5*time.Second, 5*time.Millisecond)
	assert.Contains(t, br.Status().Alarms, AlarmSpoolFull)
	// More publishes wait too: nothing is lost, nothing acknowledged.
	for range 3 {
		d := newDone()
		require.True(t, br.Accept(msg("c", "meter/x", codec.QoS1, payload), d.fn()))
		held = append(held, d)
	}
	time.Sleep(50 * time.Millisecond)
	for _, d := range held {
		assert.True(t, d.pending(), "acknowledgement held while the spool is full")
	}
	assert.LessOrEqual(t, br.Status().SpoolBytes, int64(4096))

	k.setDown(nil)
	for _, d := range held {
		require.NoError(t, d.wait(t))
	}
	require.Eventually(t, func() bool { return !br.Status().SpoolFull && br.Status().Backlog == 0 }, 5*time.Second, 5*time.Millisecond)
	assert.Equal(t, br.Metrics().Accepted, uint64(len(k.records())), "every message reached Kafka")
}

func TestQueueOverflowRefuses(t *testing.T) {
	k := newFakeKafka()
	br := newTestBridge(t, k, nil, t.TempDir(), func(c *Config) { c.QueueBytes = 1200 })
	br.setTopic("meter", &ParentTopic{Name: "meter", Type: Normal})
	// Not started: nothing drains the queue.
	payload := string(make([]byte, 400))
	ok1, ok2, over := newDone(), newDone(), newDone()
	require.True(t, br.Accept(msg("c", "meter/x", codec.QoS1, payload), ok1.fn()))
	require.True(t, br.Accept(msg("c", "meter/x", codec.QoS1, payload), ok2.fn()))
	require.True(t, br.Accept(msg("c", "meter/x", codec.QoS1, payload), over.fn()))
	assert.ErrorIs(t, over.wait(t), ErrOverloaded, "QoS 1 past the queue bound: publisher disconnected")
	q0 := newDone()
	require.True(t, br.Accept(msg("c", "meter/x", codec.QoS0, payload), q0.fn()))
	require.NoError(t, q0.wait(t))
	m := br.Metrics()
	assert.Equal(t, uint64(1), m.Refused)
	assert.Equal(t, uint64(1), m.Dropped, "QoS 0 dropped and counted")
	assert.True(t, ok1.pending())

	require.NoError(t, br.Close())
	assert.ErrorIs(t, ok1.wait(t), ErrClosed, "closing without Start refuses what waited")
	assert.ErrorIs(t, ok2.wait(t), ErrClosed)
	d := newDone()
	require.True(t, br.Accept(msg("c", "meter/x", codec.QoS1, "late"), d.fn()))
	assert.ErrorIs(t, d.wait(t), ErrClosed, "after Close")
}

func TestSpoolSurvivesRestart(t *testing.T) {
	dir := t.TempDir()
	kv := session.NewMemKV()
	k := newFakeKafka()
	k.setDown(errors.New("down"))
	br := newTestBridge(t, k, kv, dir, func(c *Config) { c.CloseTimeout = 10 * time.Millisecond })
	k.mu.topics["meter"] = true
	br.setTopic("meter", &ParentTopic{Name: "meter", Type: Normal})
	require.NoError(t, br.Start(t.Context()))
	for i := range 10 {
		d := newDone()
		require.True(t, br.Accept(msg("c", "meter/x", codec.QoS1, numbered(i)), d.fn()))
		require.NoError(t, d.wait(t))
	}
	require.NoError(t, br.Close())
	assert.Empty(t, k.records())

	k.setDown(nil)
	br2 := newTestBridge(t, k, kv, dir, nil)
	assert.Equal(t, uint64(10), br2.Status().Backlog, "the spool came back")
	require.NoError(t, br2.Start(t.Context()))
	require.Eventually(t, func() bool { return len(k.records()) == 10 }, 5*time.Second, 5*time.Millisecond)
	for i, r := range k.records() {
		var v deviceValue
		require.NoError(t, json.Unmarshal(r.value, &v))
		assert.Equal(t, numbered(i), v.Payload)
	}
}

func TestPresenceEvents(t *testing.T) {
	kv := session.NewMemKV()
	k := newFakeKafka()
	br := testBridge(t, k, kv, nil)
	info := broker.ClientInfo{ClientID: "dev", IP: "127.0.0.1", Protocol: "mqtt", Version: codec.V311}
	br.OnConnect(info)
	br.OnDisconnect(info, "connection closed")
	br.OnConnect(info)
	br.OnDisconnect(info, "takeover")
	require.Eventually(t, func() bool { return len(k.records()) == 4 }, 5*time.Second, 5*time.Millisecond)
	var last uint64
	for i, r := range k.records() {
		want := DefaultConnectTopic
		if i%2 == 1 {
			want = DefaultDisconnectTopic
		}
		assert.Equal(t, want, r.topic)
		assert.Equal(t, "dev", string(r.key))
		var v presenceValue
		require.NoError(t, json.Unmarshal(r.value, &v))
		assert.Greater(t, v.Seq, last, "seq increases")
		last = v.Seq
	}
	require.NoError(t, br.Close())

	// After a restart the seq goes on growing.
	br2 := testBridge(t, k, kv, nil)
	br2.OnConnect(info)
	require.Eventually(t, func() bool { return len(k.records()) == 5 }, 5*time.Second, 5*time.Millisecond)
	var v presenceValue
	require.NoError(t, json.Unmarshal(k.records()[4].value, &v))
	assert.Greater(t, v.Seq, last, "seq after a restart")
}

func TestSeqsPruneKeepsGrowing(t *testing.T) {
	s, err := newSeqs(session.NewMemKV())
	require.NoError(t, err)
	now := time.Now()
	var last uint64
	for range 5 {
		last = s.next("a", true, now)
		last = s.next("a", false, now)
	}
	s.next("online", true, now)
	assert.Equal(t, 1, s.prune(now.Add(time.Second)), "only the offline client is forgotten")
	got := s.next("a", true, now)
	assert.Greater(t, got, last, "a forgotten client starts above its old seq")
	assert.Greater(t, s.next("new", true, now), last, "so does any new client")
}

func TestSystemTopicsCreated(t *testing.T) {
	k := newFakeKafka()
	testBridge(t, k, nil, nil)
	for _, topic := range []string{DefaultCommandTopic, DefaultDLQTopic, DefaultConnectTopic, DefaultDisconnectTopic} {
		require.Eventually(t, func() bool { return k.hasTopic(topic) }, 5*time.Second, 5*time.Millisecond, topic)
	}
}

func TestPermanentFailureDropped(t *testing.T) {
	k := newFakeKafka()
	br := testBridge(t, k, nil, func(c *Config) { c.Ack = AckKafka })
	register(t, br, "meter")
	k.setFail(func(r *record) error {
		if v, _ := headerOf(r, HeaderMQTTTopic); v == "meter/bad" {
			return errTooLargeForKafka
		}
		return nil
	})
	bad, good := newDone(), newDone()
	require.True(t, br.Accept(msg("c", "meter/bad", codec.QoS1, "x"), bad.fn()))
	require.True(t, br.Accept(msg("c", "meter/good", codec.QoS1, "y"), good.fn()))
	require.NoError(t, bad.wait(t), "released: resending could never succeed")
	require.NoError(t, good.wait(t))
	assert.Len(t, k.records(), 1)
	assert.Equal(t, uint64(1), br.Metrics().Failed)
}

func TestConfigValidate(t *testing.T) {
	ok := Config{Brokers: []string{"127.0.0.1:9092"}, SpoolDir: "x"}
	require.NoError(t, ok.Validate())
	tests := []struct {
		name string
		mod  func(*Config)
	}{
		{"no brokers", func(c *Config) { c.Brokers = nil }},
		{"broker without port", func(c *Config) { c.Brokers = []string{"kafka"} }},
		{"bad ack", func(c *Config) { c.Ack = "both" }},
		{"no spool dir", func(c *Config) { c.SpoolDir = "" }},
		{"segment over half the spool", func(c *Config) { c.SpoolMaxBytes = 1 << 20; c.SpoolSegmentBytes = 1 << 20 }},
		{"zero partitions", func(c *Config) { c.Partitions = -1 }},
		{"replication -2", func(c *Config) { c.ReplicationFactor = -2 }},
		{"bad command topic", func(c *Config) { c.CommandTopic = "a/b" }},
		{"negative queue", func(c *Config) { c.QueueBytes = -1 }},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			c := ok
			tt.mod(&c)
			assert.Error(t, c.Validate())
		})
	}
}
