package kafka

import (
	"encoding/json"
	"fmt"
	"strconv"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/mqttd/mqttd/kafkabridge"
)

// TestKafkaOutage: Kafka is stopped while devices publish at QoS 1 and
// started again; publishers keep being acknowledged from the spool (the
// alarm is up meanwhile), and afterwards every acknowledged message is in
// Kafka, in per-client order (a resend after the outage may repeat
// records, never reorder or lose them).
func TestKafkaOutage(t *testing.T) {
	needKafka(t)
	if !kafkaEnv.started && kafkaEnv.runDir == "" {
		t.Log("MQTTD_KAFKA given without KAFKA_RUN_DIR: stopping it through the script's default run dir")
	}
	e := setup(t, func(c *kafkabridge.Config) {
		c.Ack = kafkabridge.AckLocal
		c.RetryBackoff = 100 * time.Millisecond
		c.MaxRetryBackoff = time.Second
		c.DisableCommands = true
	})
	name := kafkabridge.OrderedPrefix + "out" + uniq()
	e.registerTopic(t, name, "")

	const clients = 3
	var acked [clients]atomic.Int64
	total := func() int64 {
		var n int64
		for i := range acked {
			n += acked[i].Load()
		}
		return n
	}
	stop := make(chan struct{})
	var wg sync.WaitGroup
	ids := make([]string, clients)
	errs := make(chan error, clients)
	for c := range clients {
		ids[c] = fmt.Sprintf("out%d-%s", c, uniq())
		dev := connect(t, e.mqttURL, ids[c], true)
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := 0; ; i++ {
				select {
				case <-stop:
					return
				default:
				}
				tok := dev.Publish(name+"/seq", 1, false, []byte(strconv.Itoa(i)))
				if !tok.WaitTimeout(wait) || tok.Error() != nil {
					errs <- fmt.Errorf("%s: message %d not acknowledged: %v", dev.id, i, tok.Error())
					return
				}
				acked[c].Store(int64(i + 1))
				time.Sleep(2 * time.Millisecond) // a steady stream, not a flood
			}
		}()
	}
	waitAcked := func(n int64, what string) {
		t.Helper()
		require.Eventually(t, func() bool { return total() >= n }, 2*wait, 10*time.Millisecond, what)
	}

	waitAcked(300, "publishing before the outage")
	require.NoError(t, kafkaScript("stop"))
	t.Logf("kafka stopped after %d acknowledged messages", total())
	down := total()
	require.Eventually(t, func() bool { return !e.br.Status().KafkaUp }, 2*wait, 50*time.Millisecond, "the bridge notices")
	assert.Contains(t, e.br.Status().Alarms, kafkabridge.AlarmKafkaUnreachable)
	waitAcked(down+300, "publishers acknowledged from the spool while Kafka is down")
	assert.Greater(t, e.br.Status().Backlog, uint64(0), "records wait in the spool")

	require.NoError(t, kafkaScript("start"))
	up := total()
	t.Logf("kafka started again after %d acknowledged messages", up)
	waitAcked(up+300, "publishing after the outage")
	close(stop)
	wg.Wait()
	close(errs)
	for err := range errs {
		require.NoError(t, err)
	}
	require.Eventually(t, func() bool {
		s := e.br.Status()
		return s.KafkaUp && s.Backlog == 0
	}, 3*wait, 100*time.Millisecond, "the spool drains")

	want := int(total())
	recs := consume(t, name, want, 2*wait, nil)
	next := map[string]int{}
	dups := 0
	for _, r := range recs {
		var v deviceRecord
		require.NoError(t, json.Unmarshal(r.Value, &v))
		n, err := strconv.Atoi(v.Payload)
		require.NoError(t, err)
		switch {
		case n < next[v.ClientID]:
			dups++ // a repeat of an earlier record
		case n == next[v.ClientID]:
			next[v.ClientID] = n + 1
		default:
			t.Fatalf("client %s: record %d after %d: a gap or reordering", v.ClientID, n, next[v.ClientID]-1)
		}
	}
	for c, id := range ids {
		assert.GreaterOrEqual(t, next[id], int(acked[c].Load()), "every acknowledged message of %s is in Kafka", id)
	}
	m := e.br.Metrics()
	t.Logf("%d acknowledged, %d records read, %d repeats; resent %d, produced %d", want, len(recs), dups, m.Resent, m.Produced)
	assert.Empty(t, e.br.Status().Alarms)
}
