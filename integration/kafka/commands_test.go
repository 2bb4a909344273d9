package kafka

import (
	"testing"
	"time"

	"github.com/IBM/sarama"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/mqttd/mqttd/kafkabridge"
)

// TestKafkaCommands: records produced to mq2mqtt reach an online
// subscriber at the QoS of their qoslevel header; with cleanSession=false
// also a persistent session that was offline, once it reconnects; bad
// records land in mq2mqtt-dlq with an error header; the consumer group's
// offsets are committed.
func TestKafkaCommands(t *testing.T) {
	e := setup(t, nil)
	require.Eventually(t, func() bool { return e.br.Status().CommandPartitions == 3 }, wait, 50*time.Millisecond,
		"the command consumer holds the three partitions")

	cl, err := sarama.NewClient([]string{kafkaEnv.addr}, saramaConfig())
	require.NoError(t, err)
	defer cl.Close()
	// The end of each partition before this test's commands: a partition
	// that gets none has nothing for this new group to commit.
	var before [3]int64
	for p := range before {
		before[p], err = cl.GetOffset(kafkabridge.DefaultCommandTopic, int32(p), sarama.OffsetNewest)
		require.NoError(t, err)
	}

	base := "cmd" + uniq()
	online := connect(t, e.mqttURL, "online-"+uniq(), true)
	online.sub(t, base+"/#", 2)
	persistID := "persist-" + uniq()
	persist := connect(t, e.mqttURL, persistID, false)
	persist.sub(t, base+"/#", 2)
	persist.Disconnect(100)
	require.Eventually(t, func() bool { return !persist.IsConnectionOpen() }, wait, 10*time.Millisecond)

	produce(t, kafkabridge.DefaultCommandTopic, []byte("online-only"),
		"mqttTopic", base+"/dev/1", "qoslevel", "1", "cleanSession", "true")
	m := online.recv(t)
	assert.Equal(t, base+"/dev/1", m.Topic())
	assert.Equal(t, "online-only", string(m.Payload()))
	assert.Equal(t, byte(1), m.Qos(), "qoslevel 1")

	produce(t, kafkabridge.DefaultCommandTopic, []byte("for-everyone"),
		"mqttTopic", base+"/dev/2", "qoslevel", "2", "cleanSession", "false")
	m = online.recv(t)
	assert.Equal(t, "for-everyone", string(m.Payload()))
	assert.Equal(t, byte(2), m.Qos(), "qoslevel 2")

	produce(t, kafkabridge.DefaultCommandTopic, []byte("defaults"), "mqttTopic", base+"/dev/3")
	m = online.recv(t)
	assert.Equal(t, "defaults", string(m.Payload()))
	assert.Equal(t, byte(0), m.Qos(), "no qoslevel: QoS 0")

	persist = connect(t, e.mqttURL, persistID, false)
	m = persist.recv(t)
	assert.Equal(t, "for-everyone", string(m.Payload()), "queued for the offline persistent session")
	assert.Equal(t, byte(2), m.Qos())
	select {
	case m := <-persist.msgs:
		t.Fatalf("persistent session got %q: cleanSession=true commands are for online sessions only", m.Payload())
	case <-time.After(300 * time.Millisecond):
	}

	marker := uniq()
	produce(t, kafkabridge.DefaultCommandTopic, []byte("bad-1"), "test", marker, "qoslevel", "1")
	produce(t, kafkabridge.DefaultCommandTopic, []byte("bad-2"), "test", marker, "mqttTopic", base+"/x", "qoslevel", "7")
	produce(t, kafkabridge.DefaultCommandTopic, []byte("bad-3"), "test", marker, "mqttTopic", base+"/+/x")
	produce(t, kafkabridge.DefaultCommandTopic, []byte("bad-4"), "test", marker, "mqttTopic", base+"/x", "cleanSession", "maybe")
	dlq := consume(t, kafkabridge.DefaultDLQTopic, 4, wait, func(m *sarama.ConsumerMessage) bool {
		v, _ := header(m, "test")
		return v == marker
	})
	require.Len(t, dlq, 4)
	wantErr := map[string]string{"bad-1": "mqttTopic", "bad-2": "qoslevel", "bad-3": "mqttTopic", "bad-4": "cleanSession"}
	for _, r := range dlq {
		errText, ok := header(r, "error")
		require.True(t, ok, "%s has an error header", r.Value)
		assert.Contains(t, errText, wantErr[string(r.Value)], "error of %s", r.Value)
		if string(r.Value) == "bad-2" {
			q, _ := header(r, "qoslevel")
			assert.Equal(t, "7", q, "original headers kept")
		}
	}
	select {
	case m := <-online.msgs:
		t.Fatalf("a bad command was delivered: %q", m.Payload())
	default:
	}

	// Offsets are committed once the commands are in: the group's
	// committed offsets reach the end of every partition.
	ca, err := sarama.NewClusterAdmin([]string{kafkaEnv.addr}, saramaConfig())
	require.NoError(t, err)
	defer ca.Close()
	require.Eventually(t, func() bool {
		offs, err := ca.ListConsumerGroupOffsets(e.groupName(), map[string][]int32{kafkabridge.DefaultCommandTopic: {0, 1, 2}})
		if err != nil {
			return false
		}
		for p := int32(0); p < 3; p++ {
			hw, err := cl.GetOffset(kafkabridge.DefaultCommandTopic, p, sarama.OffsetNewest)
			if err != nil {
				return false
			}
			if hw == before[p] {
				continue
			}
			b := offs.GetBlock(kafkabridge.DefaultCommandTopic, p)
			if b == nil || b.Offset != hw {
				return false
			}
		}
		return true
	}, wait, 100*time.Millisecond, "committed offsets reach the end of the command topic")
	mt := e.br.Metrics()
	assert.Equal(t, uint64(7), mt.CommandsConsumed)
	assert.Equal(t, uint64(3), mt.CommandsDelivered)
	assert.Equal(t, uint64(4), mt.CommandsDLQ)
	assert.Equal(t, int64(0), mt.ConsumerLag)
}
