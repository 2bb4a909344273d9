package kafkabridge

import (
	"context"
	"errors"
	"strconv"
	"sync"
	"time"

	"github.com/IBM/sarama"
)

// kafka builds the sarama clients of a bridge and creates topics.
type kafka struct {
	cfg *Config
	mu  struct {
		sync.Mutex // guards ca
		ca         sarama.ClusterAdmin
	}
}

type consumerGroup = sarama.ConsumerGroup

func newKafka(cfg *Config) *kafka { return &kafka{cfg: cfg} }

func (k *kafka) base() *sarama.Config {
	c := sarama.NewConfig()
	c.ClientID = k.cfg.ClientID
	c.Version = k.cfg.Version
	c.Net.DialTimeout = k.cfg.DialTimeout
	c.Net.ReadTimeout = k.cfg.RequestTimeout
	c.Net.WriteTimeout = k.cfg.RequestTimeout
	c.Metadata.Retry.Max = 2
	c.Metadata.Retry.Backoff = 250 * time.Millisecond
	c.Metadata.AllowAutoTopicCreation = false
	c.Admin.Timeout = k.cfg.RequestTimeout
	c.Admin.Retry.Max = 2
	return c
}

// producer returns an idempotent producer: acks from all in-sync
// replicas, one request in flight per broker, sarama's own retries
// keeping sequence numbers (so Kafka drops the duplicates they cause).
func (k *kafka) producer() (producer, error) {
	c := k.base()
	c.Metadata.Full = false // only the topics it produces to
	c.Producer.Idempotent = true
	c.Producer.RequiredAcks = sarama.WaitForAll
	c.Net.MaxOpenRequests = 1
	c.Producer.Return.Successes = true
	c.Producer.Return.Errors = true
	c.Producer.Retry.Max = 5
	c.Producer.Retry.Backoff = 200 * time.Millisecond
	c.Producer.Timeout = k.cfg.RequestTimeout
	// Keyed records (ordered topics, events) by key hash; the others at
	// random over the partitions.
	c.Producer.Partitioner = sarama.NewHashPartitioner
	c.ChannelBufferSize = 1024
	ap, err := sarama.NewAsyncProducer(k.cfg.Brokers, c)
	if err != nil {
		return nil, err
	}
	return &saramaProducer{ap: ap}, nil
}

type saramaProducer struct {
	ap    sarama.AsyncProducer
	round uint64
}

type msgTag struct {
	round uint64
	idx   int
}

// Send implements producer.
func (p *saramaProducer) Send(ctx context.Context, recs []*record) []error {
	p.round++
	errs := make([]error, len(recs))
	resolved := make([]bool, len(recs))
	left := len(recs)
	next := 0
	var msg *sarama.ProducerMessage
	for left > 0 {
		var in chan<- *sarama.ProducerMessage
		if next < len(recs) {
			if msg == nil {
				msg = toMessage(recs[next], msgTag{p.round, next})
			}
			in = p.ap.Input()
		}
		select {
		case in <- msg:
			next++
			msg = nil
		case m := <-p.ap.Successes():
			if t, ok := m.Metadata.(msgTag); ok && t.round == p.round && !resolved[t.idx] {
				resolved[t.idx] = true
				left--
			}
		case pe := <-p.ap.Errors():
			if t, ok := pe.Msg.Metadata.(msgTag); ok && t.round == p.round && !resolved[t.idx] {
				resolved[t.idx] = true
				errs[t.idx] = pe.Err
				left--
			}
		case <-ctx.Done():
			for i := range errs {
				if !resolved[i] {
					errs[i] = ctx.Err()
				}
			}
			return errs
		}
	}
	return errs
}

func toMessage(r *record, tag msgTag) *sarama.ProducerMessage {
	m := &sarama.ProducerMessage{Topic: r.topic, Value: sarama.ByteEncoder(r.value), Metadata: tag}
	if r.key != nil {
		m.Key = sarama.ByteEncoder(r.key)
	}
	if len(r.headers) > 0 {
		m.Headers = make([]sarama.RecordHeader, len(r.headers))
		for i, h := range r.headers {
			m.Headers[i] = sarama.RecordHeader{Key: h.key, Value: h.value}
		}
	}
	return m
}

// Close implements producer.
func (p *saramaProducer) Close() error { return p.ap.Close() }

// consumerGroup returns the command consumer's group: new groups start at
// the newest offset, offsets are committed every second (only those the
// handler marked).
func (k *kafka) consumerGroup() (consumerGroup, error) {
	c := k.base()
	c.Consumer.Offsets.Initial = sarama.OffsetNewest
	c.Consumer.Offsets.AutoCommit.Enable = true
	c.Consumer.Offsets.AutoCommit.Interval = time.Second
	c.Consumer.Return.Errors = true
	return sarama.NewConsumerGroup(k.cfg.Brokers, k.cfg.ConsumerGroup, c)
}

// CreateTopic implements topicAdmin.
func (k *kafka) CreateTopic(name string) error {
	k.mu.Lock()
	ca := k.mu.ca
	k.mu.Unlock()
	if ca == nil {
		var err error
		if ca, err = sarama.NewClusterAdmin(k.cfg.Brokers, k.base()); err != nil {
			return err
		}
		k.mu.Lock()
		if k.mu.ca == nil {
			k.mu.ca = ca
		} else {
			ca.Close() // another caller connected first
			ca = k.mu.ca
		}
		k.mu.Unlock()
	}
	retention := strconv.FormatInt(k.cfg.Retention.Milliseconds(), 10)
	err := ca.CreateTopic(name, &sarama.TopicDetail{
		NumPartitions:     k.cfg.Partitions,
		ReplicationFactor: k.cfg.ReplicationFactor,
		ConfigEntries:     map[string]*string{"retention.ms": &retention},
	}, false)
	if errors.Is(err, sarama.ErrTopicAlreadyExists) {
		return nil
	}
	if err == nil {
		// Creation is asynchronous in Kafka: wait (briefly) until the
		// topic's partitions show in the metadata, so that producing to
		// it right away works.
		deadline := time.Now().Add(k.cfg.RequestTimeout)
		for {
			md, derr := ca.DescribeTopics([]string{name})
			if derr == nil && len(md) == 1 && errors.Is(md[0].Err, sarama.ErrNoError) && len(md[0].Partitions) > 0 {
				return nil
			}
			if time.Now().After(deadline) {
				return nil // created; metadata will follow
			}
			time.Sleep(50 * time.Millisecond)
		}
	}
	// Drop the connection: the next call reconnects (maybe elsewhere).
	k.mu.Lock()
	if k.mu.ca == ca {
		k.mu.ca = nil
	}
	k.mu.Unlock()
	ca.Close()
	return err
}

// Close implements topicAdmin.
func (k *kafka) Close() error {
	k.mu.Lock()
	ca := k.mu.ca
	k.mu.ca = nil
	k.mu.Unlock()
	if ca == nil {
		return nil
	}
	return ca.Close()
}
