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
// replicas, one request in flight per broker (what sarama's idempotent
// producer allows; the bridge keeps several rounds queued behind it, so
// the next request is ready when the last one returns), sarama's own
// retries keeping sequence numbers (so Kafka drops the duplicates they
// cause), and batches compressed as Config.Compression says.
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
	c.Producer.Compression = k.cfg.compression()
	// Keyed records (ordered topics, events) by key hash; the others at
	// random over the partitions.
	c.Producer.Partitioner = sarama.NewHashPartitioner
	// Room for the rounds in flight, so that queueing one rarely waits.
	c.ChannelBufferSize = 8192
	ap, err := sarama.NewAsyncProducer(k.cfg.Brokers, c)
	if err != nil {
		return nil, err
	}
	p := &saramaProducer{ap: ap, routed: make(chan struct{})}
	p.mu.rounds = make(map[uint64]*pendingRound)
	go p.route()
	return p, nil
}

// saramaProducer runs rounds on a sarama AsyncProducer: Send feeds a
// round's messages in order, and the route goroutine (started with it,
// ended by Close once sarama closed its channels) hands each success or
// error to its round.
type saramaProducer struct {
	ap     sarama.AsyncProducer
	round  uint64 // Send's goroutine only
	routed chan struct{}
	mu     struct {
		sync.Mutex // guards rounds
		rounds     map[uint64]*pendingRound
	}
}

// pendingRound is a round whose records are not all resolved.
type pendingRound struct {
	res      *sendResult
	resolved []bool
	left     int
}

type msgTag struct {
	round uint64
	idx   int
}

// Send implements producer.
func (p *saramaProducer) Send(ctx context.Context, recs []*record) *sendResult {
	p.round++
	pr := &pendingRound{res: newSendResult(len(recs)), resolved: make([]bool, len(recs)), left: len(recs)}
	if len(recs) == 0 {
		close(pr.res.done)
		return pr.res
	}
	p.mu.Lock()
	p.mu.rounds[p.round] = pr
	p.mu.Unlock()
	msgs := newMessages(recs, p.round)
	for i := range msgs {
		select {
		case p.ap.Input() <- &msgs[i]:
		case <-ctx.Done():
			// The rest never reaches Kafka.
			p.mu.Lock()
			for j := i; j < len(recs); j++ {
				p.resolve(p.round, pr, j, ctx.Err())
			}
			p.mu.Unlock()
			return pr.res
		}
	}
	return pr.res
}

// resolve records the outcome of record idx of a round, completing the
// round with its last record. p.mu is held.
func (p *saramaProducer) resolve(round uint64, pr *pendingRound, idx int, err error) {
	if pr.resolved[idx] {
		return
	}
	pr.resolved[idx] = true
	pr.res.errs[idx] = err
	if pr.left--; pr.left == 0 {
		delete(p.mu.rounds, round)
		close(pr.res.done)
	}
}

// route hands sarama's results to their rounds until both channels close.
func (p *saramaProducer) route() {
	defer close(p.routed)
	succ, errs := p.ap.Successes(), p.ap.Errors()
	for succ != nil || errs != nil {
		var m *sarama.ProducerMessage
		var err error
		select {
		case sm, ok := <-succ:
			if !ok {
				succ = nil
				continue
			}
			m = sm
		case pe, ok := <-errs:
			if !ok {
				errs = nil
				continue
			}
			m, err = pe.Msg, pe.Err
			if err == nil {
				err = errors.New("kafkabridge: produce failed without an error")
			}
		}
		t, ok := m.Metadata.(*msgTag)
		if !ok {
			continue
		}
		p.mu.Lock()
		if pr := p.mu.rounds[t.round]; pr != nil && t.idx < len(pr.resolved) {
			p.resolve(t.round, pr, t.idx, err)
		}
		p.mu.Unlock()
	}
}

// newMessages builds the sarama messages of a round in a few slabs, not
// five allocations per record: sarama keeps pointers to the messages
// (and to their key, value and tag) until it returns them, so the slabs
// live as long as the round does.
func newMessages(recs []*record, round uint64) []sarama.ProducerMessage {
	nh := 0
	for _, r := range recs {
		nh += len(r.headers)
	}
	msgs := make([]sarama.ProducerMessage, len(recs))
	tags := make([]msgTag, len(recs))
	enc := make([]sarama.ByteEncoder, 2*len(recs)) // value, key
	hdrs := make([]sarama.RecordHeader, nh)
	for i, r := range recs {
		m := &msgs[i]
		tags[i] = msgTag{round, i}
		m.Topic, m.Metadata = r.topic, &tags[i]
		enc[2*i] = r.value
		m.Value = &enc[2*i]
		if r.key != nil {
			enc[2*i+1] = r.key
			m.Key = &enc[2*i+1]
		}
		if len(r.headers) > 0 {
			m.Headers, hdrs = hdrs[:len(r.headers):len(r.headers)], hdrs[len(r.headers):]
			for j, h := range r.headers {
				m.Headers[j] = sarama.RecordHeader{Key: h.key, Value: h.value}
			}
		}
	}
	return msgs
}

// Close implements producer: sarama flushes what it holds and closes its
// channels; rounds still unresolved then (none, unless sarama lost a
// message) fail with ErrClosed.
func (p *saramaProducer) Close() error {
	p.ap.AsyncClose()
	<-p.routed
	p.mu.Lock()
	for round, pr := range p.mu.rounds {
		for i := range pr.resolved {
			p.resolve(round, pr, i, ErrClosed)
		}
	}
	p.mu.Unlock()
	return nil
}

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
