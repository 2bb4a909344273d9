package kafkabridge

import (
	"errors"
	"fmt"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/IBM/sarama"

	"github.com/mqttd/mqttd/broker"
	"github.com/mqttd/mqttd/codec"
)

// Command record headers (DESIGN.md, Kafka contract).
const (
	HeaderCommandTopic = "mqttTopic"    // required: the MQTT topic to publish to
	HeaderCommandQoS   = "qoslevel"     // 0, 1 or 2; default 0
	HeaderCommandClean = "cleanSession" // true: online subscribers only (default); false: offline persistent sessions too
	HeaderError        = "error"        // added to dead letters: why the command was not delivered
)

// maxOutstanding bounds the commands of one partition handed to the
// broker and not yet durable there.
const maxOutstanding = 1024

// command is a parsed command record.
type command struct {
	topic        string
	qos          codec.QoS
	cleanSession bool
}

// CommandError says why a command record cannot be delivered; Header
// names the offending header.
type CommandError struct {
	Header string
	Msg    string
}

func (e *CommandError) Error() string { return e.Header + ": " + e.Msg }

// parseCommand reads a command's headers. Header names match case-
// insensitively; the first of repeated headers counts.
func parseCommand(headers []*sarama.RecordHeader) (command, error) {
	c := command{cleanSession: true}
	var topic, qos, clean []byte
	var haveTopic, haveQoS, haveClean bool
	for _, h := range headers {
		if h == nil {
			continue
		}
		k := string(h.Key)
		switch {
		case strings.EqualFold(k, HeaderCommandTopic) && !haveTopic:
			topic, haveTopic = h.Value, true
		case strings.EqualFold(k, HeaderCommandQoS) && !haveQoS:
			qos, haveQoS = h.Value, true
		case strings.EqualFold(k, HeaderCommandClean) && !haveClean:
			clean, haveClean = h.Value, true
		}
	}
	if !haveTopic || len(topic) == 0 {
		return c, &CommandError{HeaderCommandTopic, "header missing or empty"}
	}
	c.topic = string(topic)
	if haveQoS {
		switch s := strings.TrimSpace(string(qos)); s {
		case "0", "1", "2":
			c.qos = codec.QoS(s[0] - '0')
		default:
			return c, &CommandError{HeaderCommandQoS, fmt.Sprintf("%q: want 0, 1 or 2", qos)}
		}
	}
	if haveClean {
		b, err := strconv.ParseBool(strings.TrimSpace(string(clean)))
		if err != nil {
			return c, &CommandError{HeaderCommandClean, fmt.Sprintf("%q: want true or false", clean)}
		}
		c.cleanSession = b
	}
	return c, nil
}

// consumeLoop runs the command consumer group until the bridge closes,
// reconnecting with backoff while Kafka is unreachable.
func (br *Bridge) consumeLoop() {
	defer br.cmdWG.Done()
	ctx := br.cmdCtx
	backoff := br.cfg.RetryBackoff
	wait := func() bool {
		select {
		case <-ctx.Done():
			return false
		case <-time.After(backoff):
		}
		backoff = min(2*backoff, br.cfg.MaxRetryBackoff)
		return true
	}
	for ctx.Err() == nil {
		cg, err := br.newConsumer()
		if err != nil {
			br.log.Debug().Err(err).Msg("kafkabridge: command consumer cannot reach Kafka (will retry)")
			if !wait() {
				return
			}
			continue
		}
		errsDone := make(chan struct{})
		go func() {
			defer close(errsDone)
			for err := range cg.Errors() {
				br.log.Warn().Err(err).Msg("kafkabridge: command consumer")
			}
		}()
		h := &cmdHandler{br: br}
		for ctx.Err() == nil {
			err := cg.Consume(ctx, []string{br.cfg.CommandTopic}, h)
			if ctx.Err() != nil {
				break
			}
			if errors.Is(err, sarama.ErrClosedConsumerGroup) {
				break
			}
			if err != nil {
				br.log.Warn().Err(err).Msg("kafkabridge: command consumer session ended (will retry)")
				if !wait() {
					break
				}
				continue
			}
			backoff = br.cfg.RetryBackoff
		}
		if err := cg.Close(); err != nil {
			br.log.Debug().Err(err).Msg("kafkabridge: closing the command consumer")
		}
		<-errsDone
	}
}

// cmdHandler implements sarama.ConsumerGroupHandler.
type cmdHandler struct{ br *Bridge }

func (h *cmdHandler) Setup(sarama.ConsumerGroupSession) error   { return nil }
func (h *cmdHandler) Cleanup(sarama.ConsumerGroupSession) error { return nil }

// ConsumeClaim hands one partition's commands to the broker in order,
// at most maxOutstanding at a time, and marks an offset only once every
// command up to it entered the broker (or the dead-letter topic).
func (h *cmdHandler) ConsumeClaim(sess sarama.ConsumerGroupSession, claim sarama.ConsumerGroupClaim) error {
	br := h.br
	tr := newOffsets(sess, claim.Topic(), claim.Partition())
	br.st.Lock()
	br.st.claims++
	br.st.Unlock()
	defer func() {
		br.st.Lock()
		br.st.claims--
		delete(br.st.lag, claim.Partition())
		br.st.Unlock()
		// Give the commands in flight a moment to be marked; the rest are
		// consumed again by whoever gets the partition (at least once).
		tr.close(2 * time.Second)
	}()
	for {
		msgs := claim.Messages()
		if tr.outstanding() >= maxOutstanding {
			msgs = nil // wait for the broker to catch up
		}
		select {
		case msg, ok := <-msgs:
			if !ok {
				return nil
			}
			br.m.cmdConsumed.Add(1)
			if hw := claim.HighWaterMarkOffset(); hw > 0 {
				br.st.Lock()
				br.st.lag[claim.Partition()] = max(0, hw-msg.Offset-1)
				br.st.Unlock()
			}
			tr.add(msg.Offset)
			br.handleCommand(msg, func() { tr.done(msg.Offset) })
		case <-tr.wake:
		case <-sess.Context().Done():
			return nil
		}
	}
}

// handleCommand delivers one command record; ack is called once it is in
// the broker or the dead-letter topic.
func (br *Bridge) handleCommand(msg *sarama.ConsumerMessage, ack func()) {
	c, err := parseCommand(msg.Headers)
	if err != nil {
		br.deadLetter(msg, err, ack)
		return
	}
	m := &broker.Message{
		Topic:   c.topic,
		Payload: msg.Value,
		QoS:     c.qos,
		Created: time.Now(),
	}
	err = br.b.Publish(m, broker.PublishOptions{OnlineOnly: c.cleanSession}, func(err error) {
		if err != nil {
			br.deadLetter(msg, fmt.Errorf("not stored by the broker: %w", err), ack)
			return
		}
		br.m.cmdDelivered.Add(1)
		ack()
	})
	switch {
	case err == nil:
	case errors.Is(err, broker.ErrBadTopic):
		br.deadLetter(msg, &CommandError{HeaderCommandTopic, fmt.Sprintf("%q is not a valid topic name", c.topic)}, ack)
	default:
		// The broker is closing: leave the offset unmarked; the command
		// is consumed again after the restart.
		br.log.Debug().Err(err).Msg("kafkabridge: command not delivered: broker closed")
	}
}

// deadLetter sends a command to the dead-letter topic with its headers,
// key and value, plus an error header, through the spool; ack is called
// once the dead letter is durable (Config.Ack).
func (br *Bridge) deadLetter(msg *sarama.ConsumerMessage, why error, ack func()) {
	r := &record{topic: br.cfg.DLQTopic, key: msg.Key, value: msg.Value}
	for _, h := range msg.Headers {
		if h != nil && !strings.EqualFold(string(h.Key), HeaderError) {
			r.headers = append(r.headers, header{h.Key, h.Value})
		}
	}
	r.headers = append(r.headers, header{[]byte(HeaderError), []byte(why.Error())})
	br.log.Warn().Str("topic", msg.Topic).Int32("partition", msg.Partition).Int64("offset", msg.Offset).
		Str("reason", why.Error()).Msg("kafkabridge: command sent to the dead-letter topic")
	var send func()
	send = func() {
		br.enqueue(item{rec: r, size: int64(len(r.value)+len(r.key)) + 256, done: func(err error) {
			switch {
			case err == nil:
				br.m.cmdDLQ.Add(1)
				ack()
			case errors.Is(err, ErrOverloaded):
				time.AfterFunc(time.Second, send) // the spool is full: try again
			default:
				// Closing: left unmarked, consumed again after the restart.
			}
		}})
	}
	send()
}

// offsets tracks the commands of one partition in flight and marks the
// highest offset below which all are done.
type offsets struct {
	sess      sarama.ConsumerGroupSession
	topic     string
	partition int32
	wake      chan struct{} // cap 1: a command finished

	mu struct {
		sync.Mutex
		pending []int64        // offsets in consumption order
		done    map[int64]bool // finished, not yet marked
		closed  bool
	}
}

func newOffsets(sess sarama.ConsumerGroupSession, topic string, partition int32) *offsets {
	o := &offsets{sess: sess, topic: topic, partition: partition, wake: make(chan struct{}, 1)}
	o.mu.done = make(map[int64]bool)
	return o
}

func (o *offsets) add(off int64) {
	o.mu.Lock()
	o.mu.pending = append(o.mu.pending, off)
	o.mu.Unlock()
}

func (o *offsets) outstanding() int {
	o.mu.Lock()
	defer o.mu.Unlock()
	return len(o.mu.pending)
}

// done records a finished command and marks the contiguous prefix. Safe
// from any goroutine.
func (o *offsets) done(off int64) {
	o.mu.Lock()
	if o.mu.closed {
		o.mu.Unlock()
		return
	}
	o.mu.done[off] = true
	mark := int64(-1)
	n := 0
	for n < len(o.mu.pending) && o.mu.done[o.mu.pending[n]] {
		mark = o.mu.pending[n]
		delete(o.mu.done, mark)
		n++
	}
	o.mu.pending = o.mu.pending[n:]
	o.mu.Unlock()
	if mark >= 0 {
		o.sess.MarkOffset(o.topic, o.partition, mark+1, "")
	}
	signal(o.wake)
}

// close waits up to d for the commands in flight, then ignores the rest.
func (o *offsets) close(d time.Duration) {
	deadline := time.Now().Add(d)
	for o.outstanding() > 0 && time.Now().Before(deadline) {
		select {
		case <-o.wake:
		case <-time.After(10 * time.Millisecond):
		}
	}
	o.mu.Lock()
	o.mu.closed = true
	o.mu.Unlock()
}
