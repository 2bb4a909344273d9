package kafkabridge

import (
	"context"
	"encoding/json"
	"sync"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/mqttd/mqttd/codec"
)

// asyncKafka hands out producers whose rounds stay unresolved until the
// test resolves them, like a Kafka that answers late.
type asyncKafka struct {
	*fakeKafka
	mu    sync.Mutex // guards prods
	prods []*asyncProducer
}

type asyncProducer struct {
	mu     sync.Mutex // guards rounds
	rounds []*asyncRound
}

type asyncRound struct {
	recs []*record
	res  *sendResult
}

func (k *asyncKafka) producer() (producer, error) {
	k.mu.Lock()
	defer k.mu.Unlock()
	p := &asyncProducer{}
	k.prods = append(k.prods, p)
	return p, nil
}

func (k *asyncKafka) prod(i int) *asyncProducer {
	k.mu.Lock()
	defer k.mu.Unlock()
	if i >= len(k.prods) {
		return nil
	}
	return k.prods[i]
}

func (p *asyncProducer) Send(_ context.Context, recs []*record) *sendResult {
	p.mu.Lock()
	defer p.mu.Unlock()
	r := &asyncRound{recs: recs, res: newSendResult(len(recs))}
	p.rounds = append(p.rounds, r)
	return r.res
}

func (p *asyncProducer) Close() error { return nil }

// snapshot returns the rounds sent so far.
func (p *asyncProducer) snapshot() []*asyncRound {
	if p == nil {
		return nil
	}
	p.mu.Lock()
	defer p.mu.Unlock()
	return append([]*asyncRound(nil), p.rounds...)
}

// resolve completes a round: errOf gives each record's outcome.
func (r *asyncRound) resolve(errOf func(i int) error) {
	for i := range r.res.errs {
		r.res.errs[i] = errOf(i)
	}
	close(r.res.done)
}

func ok(int) error { return nil }

func payloadOf(t *testing.T, r *record) string {
	t.Helper()
	var v deviceValue
	require.NoError(t, json.Unmarshal(r.value, &v))
	return v.Payload
}

func newAsyncBridge(t *testing.T, mod func(*Config)) (*Bridge, *asyncKafka) {
	t.Helper()
	k := &asyncKafka{fakeKafka: newFakeKafka()}
	br := newTestBridge(t, k.fakeKafka, nil, t.TempDir(), mod)
	br.newProducer = k.producer
	require.NoError(t, br.Start(context.Background()))
	return br, k
}

// The sender queues further rounds while Kafka has not answered the
// first; the spool moves on only as rounds are settled.
func TestPipelineKeepsRoundsInFlight(t *testing.T) {
	br, k := newAsyncBridge(t, func(c *Config) { c.Ack = AckKafka; c.MaxBatch = 10; c.Pipeline = 64 })
	register(t, br, "meter")
	const n = 30
	dones := make([]*doneRec, n)
	for i := range dones {
		dones[i] = newDone()
		require.True(t, br.Accept(msg("c", "meter/x", codec.QoS1, numbered(i)), dones[i].fn()))
	}
	// 30 records in rounds of at most 10: all of them in flight at once
	// takes several unresolved rounds (the writer may commit them in
	// smaller batches, hence the deep pipeline).
	require.Eventually(t, func() bool {
		sent := 0
		for _, r := range k.prod(0).snapshot() {
			sent += len(r.recs)
		}
		return sent == n
	}, 5*time.Second, time.Millisecond)
	rounds := k.prod(0).snapshot()
	require.GreaterOrEqual(t, len(rounds), 3)
	require.LessOrEqual(t, len(rounds), 64, "at most Pipeline rounds in flight")
	for _, d := range dones {
		assert.True(t, d.pending(), "nothing acknowledged before Kafka answered")
	}
	assert.Equal(t, uint64(n), br.Metrics().Backlog)

	// Kafka answers the last round first: nothing is settled before the
	// first round is.
	rounds[len(rounds)-1].resolve(ok)
	time.Sleep(20 * time.Millisecond)
	assert.True(t, dones[n-1].pending(), "a later round waits for the earlier ones")
	for _, r := range rounds[:len(rounds)-1] {
		r.resolve(ok)
	}
	want := 0
	for _, r := range rounds {
		for _, rec := range r.recs {
			assert.Equal(t, numbered(want), payloadOf(t, rec), "rounds carry the spool in order")
			want++
		}
	}
	for _, d := range dones {
		require.NoError(t, d.wait(t))
	}
	require.Eventually(t, func() bool { return br.Metrics().Backlog == 0 }, 5*time.Second, time.Millisecond)
	assert.Equal(t, uint64(n), br.Metrics().Produced)
}

// A transient failure in the first round of several in flight: the
// records of its key that a later round got into Kafka are sent again
// after it, on a fresh producer, so the client's order holds.
func TestPipelineFailureKeepsKeyOrder(t *testing.T) {
	br, k := newAsyncBridge(t, func(c *Config) { c.Ack = AckKafka; c.MaxBatch = 5; c.Pipeline = 64 })
	register(t, br, "orderMsg2mq-meter")
	const n = 20
	dones := make([]*doneRec, n)
	for i := range dones {
		dones[i] = newDone()
		require.True(t, br.Accept(msg("c", "orderMsg2mq-meter/x", codec.QoS1, numbered(i)), dones[i].fn()))
	}
	require.Eventually(t, func() bool {
		sent := 0
		for _, r := range k.prod(0).snapshot() {
			sent += len(r.recs)
		}
		return sent == n
	}, 5*time.Second, time.Millisecond)
	rounds := k.prod(0).snapshot()
	require.Greater(t, len(rounds), 1)
	first := payloadOf(t, rounds[0].recs[0])
	require.Equal(t, numbered(0), first)
	fail := len(rounds[0].recs) - 1 // the last record of the first round fails

	for _, r := range rounds[1:] {
		r.resolve(ok) // later rounds succeed first
	}
	rounds[0].resolve(func(i int) error {
		if i == fail {
			return transient("")
		}
		return nil
	})
	for _, d := range dones[:fail] {
		require.NoError(t, d.wait(t))
	}

	// The resend: the failed record and every later record of the
	// client, in order.
	require.Eventually(t, func() bool { return len(k.prod(1).snapshot()) == 1 }, 5*time.Second, time.Millisecond)
	resend := k.prod(1).snapshot()[0]
	require.Len(t, resend.recs, n-fail)
	for i, r := range resend.recs {
		assert.Equal(t, numbered(i+fail), payloadOf(t, r))
	}
	for _, d := range dones[fail:] {
		assert.True(t, d.pending(), "not acknowledged before the resend went through")
	}
	resend.resolve(ok)
	for _, d := range dones[fail:] { // the others were waited for above
		require.NoError(t, d.wait(t))
	}
	require.Eventually(t, func() bool { return br.Metrics().Backlog == 0 }, 5*time.Second, time.Millisecond)
	assert.Equal(t, uint64(n-fail), br.Metrics().Resent)
	assert.True(t, br.Status().KafkaUp)
}

func TestConfigPipelineAndCompression(t *testing.T) {
	base := Config{Brokers: []string{"127.0.0.1:9092"}, SpoolDir: t.TempDir()}
	for _, tc := range []struct {
		name    string
		mod     func(*Config)
		wantErr string
	}{
		{"defaults", func(*Config) {}, ""},
		{"lz4", func(c *Config) { c.Compression = "lz4" }, ""},
		{"none", func(c *Config) { c.Compression = "none" }, ""},
		{"bad compression", func(c *Config) { c.Compression = "brotli" }, "compression"},
		{"pipeline 1", func(c *Config) { c.Pipeline = 1 }, ""},
		{"pipeline too deep", func(c *Config) { c.Pipeline = 65 }, "pipeline"},
		{"negative pipeline", func(c *Config) { c.Pipeline = -1 }, "pipeline"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			c := base
			tc.mod(&c)
			err := c.Validate()
			if tc.wantErr == "" {
				require.NoError(t, err)
				return
			}
			require.Error(t, err)
			assert.Contains(t, err.Error(), tc.wantErr)
		})
	}
}
