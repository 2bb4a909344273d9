package kafkabridge

import (
	"context"
	"errors"
	"time"

	"github.com/IBM/sarama"

	"github.com/mqttd/mqttd/kafkabridge/spool"
)

// producer sends rounds of records to Kafka.
type producer interface {
	// Send delivers recs, in order per partition, and returns one error
	// per record (nil: Kafka acknowledged it). When ctx ends first, the
	// unresolved records get ctx's error and the producer must be closed.
	Send(ctx context.Context, recs []*record) []error
	// Close releases the producer. It may wait for requests in flight.
	Close() error
}

// topicAdmin creates Kafka topics.
type topicAdmin interface {
	// CreateTopic creates the topic with the configured partitions,
	// replication and retention; an existing topic is not an error.
	CreateTopic(name string) error
	Close() error
}

// maxRoundBytes bounds the record bytes of one round.
const maxRoundBytes = 4 << 20

// sendLoop moves the spool to Kafka, one round at a time and in spool
// order. A round is removed from the spool only when Kafka acknowledged
// every record of it (or refused one for good). When Kafka fails part of
// a round, the producer is replaced and the failed records are sent
// again — together with any later record of the same key that had
// succeeded, so that a client's records never overtake each other (the
// resent copies may duplicate, never reorder). Normal-topic records that
// succeeded are not resent.
func (br *Bridge) sendLoop() {
	defer br.senderWG.Done()
	ctx := br.sendCtx
	var prod producer
	defer func() {
		if prod != nil {
			if err := prod.Close(); err != nil {
				br.log.Debug().Err(err).Msg("kafkabridge: closing the producer")
			}
		}
	}()
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
	for {
		ents, err := br.sp.Read(ctx.Done(), br.cfg.MaxBatch, maxRoundBytes)
		if err != nil {
			if !errors.Is(err, spool.ErrClosed) {
				br.log.Error().Err(err).Msg("kafkabridge: reading the spool")
			}
			return
		}
		pending := make([]*record, 0, len(ents))
		for _, e := range ents {
			r, err := decodeRecord(e.Data)
			if err != nil {
				br.m.failed.Add(1)
				br.log.Error().Err(err).Uint64("seq", e.Seq).Msg("kafkabridge: undecodable spool record skipped")
				br.release(e.Seq, nil)
				continue
			}
			r.seq = e.Seq
			pending = append(pending, r)
		}
		for len(pending) > 0 {
			if prod == nil {
				prod, err = br.newProducer()
				if err != nil {
					prod = nil
					br.setKafka(false, err)
					if !wait() {
						return
					}
					continue
				}
			}
			errs := prod.Send(ctx, pending)
			if ctx.Err() != nil {
				return // unacknowledged records stay in the spool
			}
			var firstErr error
			pending, firstErr = br.settle(pending, errs)
			if len(pending) == 0 {
				br.setKafka(true, nil)
				backoff = br.cfg.RetryBackoff
				break
			}
			br.setKafka(false, firstErr)
			// A fresh producer (a new idempotent producer ID) for the
			// resend: the old one may hold half-finished state.
			if err := prod.Close(); err != nil {
				br.log.Debug().Err(err).Msg("kafkabridge: closing the failed producer")
			}
			prod = nil
			br.m.resent.Add(uint64(len(pending)))
			if !wait() {
				return
			}
		}
		if err := br.sp.Ack(ents[len(ents)-1].Seq + 1); err != nil {
			br.log.Error().Err(err).Msg("kafkabridge: saving the spool cursor")
		}
	}
}

// settle finishes the records Kafka acknowledged or refused for good and
// returns those to send again, in order, with the first transient error.
func (br *Bridge) settle(recs []*record, errs []error) (resend []*record, first error) {
	var blocked map[string]bool // order keys behind a transient failure
	var missing map[string]bool // topics Kafka does not know
	for i, r := range recs {
		err := errs[i]
		k := r.orderKey()
		switch {
		case err == nil && (k == "" || !blocked[k]):
			br.m.produced.Add(1)
			br.release(r.seq, nil)
		case err == nil:
			// Acknowledged, but an earlier record of its key failed: send
			// it again after that one.
			resend = append(resend, r)
		case permanent(err):
			br.m.failed.Add(1)
			br.log.Error().Err(err).Str("topic", r.topic).Msg("kafkabridge: Kafka refused a record for good: dropped")
			br.release(r.seq, nil)
		default:
			if first == nil {
				first = err
			}
			resend = append(resend, r)
			if k != "" {
				if blocked == nil {
					blocked = make(map[string]bool)
				}
				blocked[k] = true
			}
			if errors.Is(err, sarama.ErrUnknownTopicOrPartition) {
				if missing == nil {
					missing = make(map[string]bool)
				}
				missing[r.topic] = true
			}
		}
	}
	for t := range missing {
		// Deleted behind our back (or never created while Kafka was
		// down): create it again so the spool does not stall on it.
		if err := br.admin.CreateTopic(t); err != nil {
			br.log.Warn().Err(err).Str("topic", t).Msg("kafkabridge: creating a missing topic")
		} else {
			br.log.Warn().Str("topic", t).Msg("kafkabridge: created a topic missing in Kafka")
		}
	}
	return resend, first
}

// permanent reports whether Kafka will refuse the record whatever
// happens: sending it again cannot succeed.
func permanent(err error) bool {
	var ke sarama.KError
	if errors.As(err, &ke) {
		switch ke {
		case sarama.ErrMessageSizeTooLarge, sarama.ErrInvalidMessage, sarama.ErrInvalidTopic,
			sarama.ErrInvalidRecord, sarama.ErrTopicAuthorizationFailed, sarama.ErrInvalidRequiredAcks:
			return true
		}
	}
	return false
}

// release calls and forgets the done callback waiting for a record
// (AckKafka mode; in AckLocal mode none is registered).
func (br *Bridge) release(seq uint64, err error) {
	br.waiters.Lock()
	done := br.waiters.m[seq]
	delete(br.waiters.m, seq)
	br.waiters.Unlock()
	if done != nil {
		done(err)
	}
}

// ensureSystemTopics creates the command, dead-letter and presence topics,
// retrying until Kafka answers or the bridge closes.
func (br *Bridge) ensureSystemTopics() {
	defer br.bgWG.Done()
	todo := []string{br.cfg.CommandTopic, br.cfg.DLQTopic, br.cfg.ConnectTopic, br.cfg.DisconnectTopic}
	backoff := br.cfg.RetryBackoff
	for {
		var left []string
		for _, t := range todo {
			if err := br.admin.CreateTopic(t); err != nil {
				br.log.Warn().Err(err).Str("topic", t).Msg("kafkabridge: creating a system topic (will retry)")
				left = append(left, t)
			}
		}
		if todo = left; len(todo) == 0 {
			br.log.Debug().Msg("kafkabridge: system topics present")
			return
		}
		select {
		case <-br.ctx.Done():
			return
		case <-time.After(backoff):
		}
		backoff = min(2*backoff, br.cfg.MaxRetryBackoff)
	}
}
