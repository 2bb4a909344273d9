package kafkabridge

import (
	"context"
	"errors"
	"time"

	"github.com/IBM/sarama"

	"github.com/mqttd/mqttd/kafkabridge/spool"
)

// producer sends rounds of records to Kafka, several rounds at a time.
type producer interface {
	// Send queues recs behind the records of every earlier Send (in order
	// per partition) and returns the round's result, complete once Kafka
	// resolved every record of it. It may block while the producer's
	// buffers are full, until ctx ends. When ctx ends first, the
	// unresolved records get ctx's error and the producer must be closed.
	// One goroutine calls Send.
	Send(ctx context.Context, recs []*record) *sendResult
	// Close releases the producer. It may wait for requests in flight.
	Close() error
}

// sendResult is the outcome of one round: once done is closed, errs holds
// one error per record (nil: Kafka acknowledged it).
type sendResult struct {
	done chan struct{}
	errs []error
}

func newSendResult(n int) *sendResult {
	return &sendResult{done: make(chan struct{}), errs: make([]error, n)}
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

// flight is a round handed to the producer and not yet settled.
type flight struct {
	recs []*record
	next uint64 // spool cursor once the round is settled: its last seq + 1
	res  *sendResult
}

// sendLoop moves the spool to Kafka in spool order, keeping up to
// Config.Pipeline rounds in flight on one producer: a round is read and
// queued while earlier ones wait for Kafka, so the producer never idles
// between rounds. Rounds are settled in order; the spool cursor moves past
// a round only when Kafka acknowledged every record of it and of the
// rounds before (or refused one for good).
//
// When Kafka fails part of a round, every round in flight is awaited and
// settled together, as one: the failed records are sent again on a fresh
// producer — together with any later record of the same key that had
// succeeded, in this or a later round, so that a client's records never
// overtake each other (the resent copies may duplicate, never reorder).
// Normal-topic records that succeeded are not resent. Pipelining resumes
// once the resend went through.
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
	var queue []*flight
	for {
		// Fill the pipeline with what the spool holds now.
		for len(queue) < br.cfg.Pipeline {
			ents, err := br.sp.Poll(br.cfg.MaxBatch, maxRoundBytes)
			if err != nil {
				if !errors.Is(err, spool.ErrClosed) {
					br.log.Error().Err(err).Msg("kafkabridge: reading the spool")
				}
				return
			}
			if len(ents) == 0 {
				break
			}
			f := &flight{recs: br.decodeEntries(ents), next: ents[len(ents)-1].Seq + 1}
			switch {
			case len(f.recs) == 0:
				f.res = newSendResult(0)
				close(f.res.done)
			case prod == nil:
				if prod, err = br.newProducer(); err != nil {
					// Settled below as a failed round: the resend loop
					// retries with a backoff.
					prod = nil
					f.res = newSendResult(len(f.recs))
					for i := range f.res.errs {
						f.res.errs[i] = err
					}
					close(f.res.done)
					break
				}
				fallthrough
			default:
				f.res = prod.Send(ctx, f.recs)
			}
			queue = append(queue, f)
			if prod == nil {
				break // the producer could not be created: settle first
			}
		}
		if ctx.Err() != nil {
			return // unacknowledged records stay in the spool
		}
		if len(queue) == 0 {
			select {
			case <-br.sp.Ready():
			case <-ctx.Done():
				return
			}
			continue
		}
		var more <-chan struct{} // room for another round: wake on new records too
		if len(queue) < br.cfg.Pipeline && prod != nil {
			more = br.sp.Ready()
		}
		head := queue[0]
		select {
		case <-head.res.done:
		case <-more:
			continue
		case <-ctx.Done():
			return
		}
		if !hasTransient(head.res.errs) {
			br.settle(head.recs, head.res.errs) // nothing to resend without a transient error
			br.setKafka(true, nil)
			backoff = br.cfg.RetryBackoff
			br.ackSpool(head.next)
			queue[0] = nil
			queue = queue[1:]
			continue
		}
		// A failure: settle every round in flight as one, then resend.
		var recs []*record
		var errs []error
		for _, f := range queue {
			select {
			case <-f.res.done:
			case <-ctx.Done():
				return
			}
			recs = append(recs, f.recs...)
			errs = append(errs, f.res.errs...)
		}
		next := queue[len(queue)-1].next
		clear(queue)
		queue = queue[:0]
		pending, firstErr := br.settle(recs, errs)
		for len(pending) > 0 {
			br.setKafka(false, firstErr)
			// A fresh producer (a new idempotent producer ID) for the
			// resend: the old one may hold half-finished state.
			if prod != nil {
				if err := prod.Close(); err != nil {
					br.log.Debug().Err(err).Msg("kafkabridge: closing the failed producer")
				}
				prod = nil
			}
			br.m.resent.Add(uint64(len(pending)))
			if !wait() {
				return
			}
			var err error
			if prod, err = br.newProducer(); err != nil {
				prod, firstErr = nil, err
				continue
			}
			res := prod.Send(ctx, pending)
			select {
			case <-res.done:
			case <-ctx.Done():
				return
			}
			pending, firstErr = br.settle(pending, res.errs)
		}
		br.setKafka(true, nil)
		backoff = br.cfg.RetryBackoff
		br.ackSpool(next)
	}
}

// decodeEntries decodes spool entries into records; an undecodable one is
// counted, logged and released.
func (br *Bridge) decodeEntries(ents []spool.Entry) []*record {
	recs := make([]*record, 0, len(ents))
	slab := make([]record, len(ents)) // one allocation for the round's records
	var rd recordDecoder
	rd.reserve(len(ents))
	for i, e := range ents {
		r := &slab[i]
		if err := rd.decode(r, e.Data); err != nil {
			br.m.failed.Add(1)
			br.log.Error().Err(err).Uint64("seq", e.Seq).Msg("kafkabridge: undecodable spool record skipped")
			br.release(e.Seq, nil)
			continue
		}
		r.seq = e.Seq
		recs = append(recs, r)
	}
	return recs
}

// ackSpool moves the spool cursor to next.
func (br *Bridge) ackSpool(next uint64) {
	if err := br.sp.Ack(next); err != nil {
		br.log.Error().Err(err).Msg("kafkabridge: saving the spool cursor")
	}
}

// hasTransient reports whether a record failed for a reason that sending
// it again may cure.
func hasTransient(errs []error) bool {
	for _, err := range errs {
		if err != nil && !permanent(err) {
			return true
		}
	}
	return false
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
