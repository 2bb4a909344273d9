package bench

import (
	"context"
	"encoding/base64"
	"encoding/json"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

// kafkaRecord is one record fed to kafkaReceiver.onRecord.
type kafkaRecord struct {
	part    int
	value   []byte
	ts, now int64 // Kafka timestamp (0: none) and read time, Unix ns
}

// benchValue is the bridge's JSON value of publisher pub's message seq,
// sent at sent, as client id on topic.
func benchValue(t *testing.T, id, topic string, pub uint32, seq uint64, sent int64) []byte {
	t.Helper()
	payload := AppendPayload(nil, Header{Pub: pub, Seq: seq, Sent: sent}, 64)
	b, err := json.Marshal(kafkaValue{ClientID: id, Topic: topic,
		Payload: base64.StdEncoding.EncodeToString(payload), PayloadEncoding: "base64", TS: sent / 1e6})
	require.NoError(t, err)
	return b
}

// TestKafkaReceiverAccounting feeds the same records to a live and an
// after receiver: the checks agree, and what arrived in the window, the
// records in Kafka by its end and the latencies follow the read time
// (live) or the Kafka timestamp (after).
func TestKafkaReceiverAccounting(t *testing.T) {
	const ms = int64(time.Millisecond)
	tStart, tEnd := 10_000*ms, 20_000*ms
	ids := []string{"p0", "p1"}
	pubs := []string{"bench/r/0", "bench/r/1"}
	rec := func(part int, pub uint32, seq uint64, sent, ts, now int64) kafkaRecord {
		return kafkaRecord{part, benchValue(t, ids[pub], pubs[pub], pub, seq, sent), ts, now}
	}
	records := []kafkaRecord{
		rec(0, 0, 0, tStart-10*ms, tStart-5*ms, tStart-4*ms),   // warm-up message
		rec(0, 0, 1, tStart+1*ms, tStart+3*ms, tStart+4*ms),    // in Kafka in the window, read then
		rec(0, 0, 2, tEnd-2*ms, tEnd+5*ms, tEnd+6*ms),          // reached Kafka after the window
		rec(1, 0, 2, tEnd-2*ms, tEnd+5*ms, tEnd+7*ms),          // its duplicate, in the other partition
		rec(0, 0, 4, tStart+50*ms, tStart+51*ms, tEnd+1000*ms), // in Kafka in the window, read late
		rec(0, 0, 3, tStart+40*ms, tStart+52*ms, tEnd+1000*ms), // after seq 4 in the same partition
		rec(1, 1, 0, tStart+1*ms, tStart+2*ms, tStart+3*ms),
		rec(1, 1, 2, tStart+3*ms, 0, tStart+4*ms), // no timestamp; seq 1 never comes
		{0, []byte("not json"), tStart + 10*ms, tStart + 11*ms},
		{1, benchValue(t, "intruder", pubs[0], 0, 5, tStart+5*ms), tStart + 12*ms, tStart + 13*ms},
	}
	for _, tc := range []struct {
		mode                         string
		delivered, latencies, maxLat int64
	}{
		// live: arrived when read; the late reads are outside the window
		{KafkaVerifyLive, 5, 6, tEnd + 1000*ms - (tStart + 40*ms)},
		// after: arrived at the Kafka timestamp; no latency without one
		{KafkaVerifyAfter, 6, 5, 12 * ms},
	} {
		t.Run(tc.mode, func(t *testing.T) {
			cfg := Config{Scenario: "kafka", Size: 64, KafkaVerify: tc.mode}
			kr := &kafkaReceiver{}
			kr.init(context.Background(), &cfg, "bench", pubs, ids, []int32{0, 1})
			ps := &pubsubRun{runner: &runner{cfg: cfg, clk: newClock()}, tStart: tStart, tEnd: tEnd,
				pubs: []*publisher{{first: 1, last: 4, hasWin: true}, {first: 0, last: 2, hasWin: true}}}
			kr.ps = ps
			for _, r := range records {
				kr.onRecord(r.part, r.value, r.ts, r.now)
			}
			var res Result
			var hist Histogram
			kr.collect(ps, &res, &hist)
			errs := strings.Join(ps.errs.all(), "\n")

			assert.Equal(t, tc.mode, res.KafkaVerify)
			assert.EqualValues(t, 6, res.Received, "p0 1-4 and p1 0, 2")
			assert.EqualValues(t, 1, res.Lost, "p1 1")
			assert.EqualValues(t, 1, res.Duplicated)
			assert.EqualValues(t, 1, res.Reordered)
			assert.EqualValues(t, 1, res.Malformed)
			assert.EqualValues(t, 1, res.Unexpected)
			assert.EqualValues(t, tc.delivered, res.Delivered)
			assert.EqualValues(t, 4, res.KafkaInWindow, "p0 1, 3, 4 and p1 0")
			assert.EqualValues(t, tc.latencies, hist.Count())
			assert.Equal(t, time.Duration(tc.maxLat), hist.Max())
			assert.Contains(t, errs, "kafka record: record value")
			if tc.mode == KafkaVerifyAfter {
				assert.Contains(t, errs, "1 records without a timestamp")
			} else {
				assert.NotContains(t, errs, "timestamp", "live mode does not need them")
			}
		})
	}
}

func TestKafkaVerifyConfig(t *testing.T) {
	base := Config{Scenario: "kafka", KafkaBrokers: "127.0.0.1:9092"}
	c := base
	require.NoError(t, c.Validate())
	assert.Equal(t, KafkaVerifyLive, c.KafkaVerify, "default")

	c = base
	c.KafkaVerify = KafkaVerifyAfter
	require.NoError(t, c.Validate())

	for name, c := range map[string]Config{
		"unknown mode":         {KafkaVerify: "later"},
		"after with a window":  {KafkaVerify: KafkaVerifyAfter, QoS0Window: 100},
		"after, QoS 0 windows": {KafkaVerify: KafkaVerifyAfter, QoS0Window: 1},
	} {
		c.Scenario, c.KafkaBrokers = base.Scenario, base.KafkaBrokers
		err := c.Validate()
		require.ErrorIs(t, err, ErrConfig, name)
		assert.Contains(t, err.Error(), "kafka-verify:", name)
	}
	c = base
	c.KafkaVerify, c.QoS, c.QoS0Window = KafkaVerifyAfter, 1, 100
	assert.NoError(t, c.Validate(), "the QoS 0 window does not apply at QoS 1")
}

func TestKafkaSummary(t *testing.T) {
	var b strings.Builder
	r := Result{Scenario: "kafka", Version: "3.1.1", QoS: 1, Size: 64, Publishers: 8, Inflight: 64,
		KafkaTopic: "bench", KafkaPartitions: 3, KafkaVerify: KafkaVerifyAfter, Sent: 100, Expected: 100,
		Received: 100, KafkaInWindow: 90}
	require.NoError(t, r.WriteSummary(&b))
	assert.Contains(t, b.String(), "by window end    90 of the 100 received were in Kafka")
	assert.Contains(t, b.String(), "10 came later")
	assert.Contains(t, b.String(), "checked after the window")
	got, err := ParseLine(r.Line())
	require.NoError(t, err)
	assert.Equal(t, &r, got)
}
