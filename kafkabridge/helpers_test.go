package kafkabridge

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"testing"
	"time"

	"github.com/IBM/sarama"
	"github.com/stretchr/testify/require"

	"github.com/mqttd/mqttd/broker"
	"github.com/mqttd/mqttd/codec"
	"github.com/mqttd/mqttd/session"
)

// fakeKafka stands in for a Kafka cluster: it keeps what producers sent
// and can fail or hold sends.
type fakeKafka struct {
	mu struct {
		sync.Mutex
		log      []*record
		topics   map[string]bool
		fail     func(r *record) error // per record; nil: accept all
		down     error                 // producers cannot be created
		sends    int
		producer int
	}
	hold chan struct{} // while non-nil and open, Send blocks
}

func newFakeKafka() *fakeKafka {
	k := &fakeKafka{}
	k.mu.topics = make(map[string]bool)
	return k
}

func (k *fakeKafka) setFail(f func(r *record) error) {
	k.mu.Lock()
	k.mu.fail = f
	k.mu.Unlock()
}

func (k *fakeKafka) setDown(err error) {
	k.mu.Lock()
	k.mu.down = err
	k.mu.Unlock()
}

func (k *fakeKafka) records() []*record {
	k.mu.Lock()
	defer k.mu.Unlock()
	return append([]*record(nil), k.mu.log...)
}

func (k *fakeKafka) recordsOf(topic string) []*record {
	var out []*record
	for _, r := range k.records() {
		if r.topic == topic {
			out = append(out, r)
		}
	}
	return out
}

func (k *fakeKafka) producer() (producer, error) {
	k.mu.Lock()
	defer k.mu.Unlock()
	if k.mu.down != nil {
		return nil, k.mu.down
	}
	k.mu.producer++
	return &fakeProducer{k: k}, nil
}

func (k *fakeKafka) consumer() (consumerGroup, error) {
	return nil, errors.New("fake kafka: no consumer groups")
}

func (k *fakeKafka) CreateTopic(name string) error {
	k.mu.Lock()
	defer k.mu.Unlock()
	if k.mu.down != nil {
		return k.mu.down
	}
	k.mu.topics[name] = true
	return nil
}

func (k *fakeKafka) hasTopic(name string) bool {
	k.mu.Lock()
	defer k.mu.Unlock()
	return k.mu.topics[name]
}

func (k *fakeKafka) Close() error { return nil }

// fakeProducer models an idempotent producer: once a record of a key
// (a partition) failed, the later records of that key fail too (Kafka
// refuses the sequence gap), unless the failed one was in fact written
// (lost acknowledgement: errWrittenButLost).
type fakeProducer struct {
	k      *fakeKafka
	broken map[string]bool
}

// errWrittenButLost, returned by a fail function, stores the record but
// reports a failure, as when Kafka's acknowledgement is lost.
var errWrittenButLost = errors.New("fake kafka: written, acknowledgement lost")

func (p *fakeProducer) Send(ctx context.Context, recs []*record) *sendResult {
	res := newSendResult(len(recs))
	res.errs = p.send(ctx, recs)
	close(res.done)
	return res
}

func (p *fakeProducer) send(ctx context.Context, recs []*record) []error {
	if h := p.k.hold; h != nil {
		select {
		case <-h:
		case <-ctx.Done():
			errs := make([]error, len(recs))
			for i := range errs {
				errs[i] = ctx.Err()
			}
			return errs
		}
	}
	p.k.mu.Lock()
	defer p.k.mu.Unlock()
	p.k.mu.sends++
	errs := make([]error, len(recs))
	for i, r := range recs {
		k := r.orderKey()
		if k != "" && p.broken[k] {
			errs[i] = sarama.ErrOutOfOrderSequenceNumber
			continue
		}
		if f := p.k.mu.fail; f != nil {
			if errs[i] = f(r); errs[i] != nil && !errors.Is(errs[i], errWrittenButLost) {
				if k != "" {
					if p.broken == nil {
						p.broken = make(map[string]bool)
					}
					p.broken[k] = true
				}
				continue
			}
		}
		c := *r
		c.value = append([]byte(nil), r.value...)
		c.key = append([]byte(nil), r.key...)
		if r.key == nil {
			c.key = nil
		}
		p.k.mu.log = append(p.k.mu.log, &c)
	}
	return errs
}

func (p *fakeProducer) Close() error { return nil }

// testBridge starts a bridge on a fake Kafka; commands are off.
func testBridge(t *testing.T, k *fakeKafka, kv session.KV, mod func(*Config)) *Bridge {
	t.Helper()
	br := newTestBridge(t, k, kv, t.TempDir(), mod)
	require.NoError(t, br.Start(context.Background()))
	return br
}

func newTestBridge(t *testing.T, k *fakeKafka, kv session.KV, dir string, mod func(*Config)) *Bridge {
	t.Helper()
	if kv == nil {
		kv = session.NewMemKV()
	}
	cfg := Config{
		Brokers:         []string{"127.0.0.1:1"},
		SpoolDir:        dir,
		DisableCommands: true,
		RetryBackoff:    5 * time.Millisecond,
		MaxRetryBackoff: 20 * time.Millisecond,
		CloseTimeout:    time.Second,
	}
	if mod != nil {
		mod(&cfg)
	}
	require.NoError(t, cfg.Validate())
	cfg.setDefaults()
	br, err := newBridge(cfg, nil, kv)
	require.NoError(t, err)
	br.admin = k
	br.newProducer = k.producer
	br.newConsumer = k.consumer
	t.Cleanup(func() { br.Close() })
	return br
}

func msg(client, topic string, qos codec.QoS, payload string) *broker.Message {
	return &broker.Message{Topic: topic, Payload: []byte(payload), QoS: qos, ClientID: client, Created: time.UnixMilli(1732550400000)}
}

// doneRec records the result of an Acker done callback.
type doneRec struct {
	ch chan error
}

func newDone() *doneRec { return &doneRec{ch: make(chan error, 1)} }

func (d *doneRec) fn() func(error) {
	var once sync.Once
	return func(err error) {
		called := false
		once.Do(func() { called = true; d.ch <- err })
		if !called {
			panic("done called twice")
		}
	}
}

func (d *doneRec) wait(t *testing.T) error {
	t.Helper()
	select {
	case err := <-d.ch:
		return err
	case <-time.After(5 * time.Second):
		t.Fatal("done was not called")
		return nil
	}
}

func (d *doneRec) pending() bool { return len(d.ch) == 0 }

func headerOf(r *record, key string) (string, bool) {
	for _, h := range r.headers {
		if string(h.key) == key {
			return string(h.value), true
		}
	}
	return "", false
}

func transient(string) error { return sarama.ErrNotEnoughReplicas }

func numbered(i int) string { return fmt.Sprintf("%06d", i) }
