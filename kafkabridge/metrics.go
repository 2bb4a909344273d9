package kafkabridge

import (
	"sync/atomic"
	"time"
)

// counters are the bridge's monotonic counters.
type counters struct {
	accepted, presence, spooled, produced, failed, dropped, refused, resent atomic.Uint64
	cmdConsumed, cmdDelivered, cmdDLQ                                       atomic.Uint64
}

// Metrics is a snapshot of the bridge's counters and gauges. Counters
// only grow from New on.
type Metrics struct {
	// Accepted: device messages taken for Kafka (registered parent topics).
	Accepted uint64
	// Presence: connect and disconnect events recorded.
	Presence uint64
	// Spooled: records written to the on-disk spool. Every record passes
	// through the spool (it is the bridge's write-ahead log), so this is
	// the records that entered the pipeline.
	Spooled uint64
	// Produced: records Kafka acknowledged.
	Produced uint64
	// Failed: records lost for good: Kafka refused them as invalid (too
	// large, bad topic), they were too large for the spool, or a corrupt
	// spool frame held them.
	Failed uint64
	// Dropped: QoS 0 messages and events not stored because the bridge
	// was overloaded (spool and memory queue full) or closed.
	Dropped uint64
	// Refused: QoS 1/2 messages refused for the same reasons; their
	// publishers were disconnected unacknowledged and resend them.
	Refused uint64
	// Resent: records sent again after Kafka failed part of a round (the
	// copies Kafka may already have had are duplicates; order per client
	// is kept).
	Resent uint64

	// Backlog: records in the spool that Kafka has not acknowledged yet.
	Backlog uint64
	// SpoolBytes: the spool's size on disk, in bytes (SpoolMaxBytes bounds it).
	SpoolBytes int64
	// QueueBytes: bytes waiting in memory to enter the spool.
	QueueBytes int64

	// CommandsConsumed: records read from the command topic.
	CommandsConsumed uint64
	// CommandsDelivered: commands that entered the broker.
	CommandsDelivered uint64
	// CommandsDLQ: commands sent to the dead-letter topic.
	CommandsDLQ uint64
	// ConsumerLag: records in the command topic not yet consumed, summed
	// over the partitions this node consumes.
	ConsumerLag int64
}

// Metrics returns a snapshot of the counters. Safe for concurrent use.
func (br *Bridge) Metrics() Metrics {
	sp := br.sp.Stats()
	br.in.Lock()
	qb := br.in.bytes
	br.in.Unlock()
	br.st.Lock()
	var lag int64
	for _, l := range br.st.lag {
		lag += l
	}
	br.st.Unlock()
	return Metrics{
		Accepted:          br.m.accepted.Load(),
		Presence:          br.m.presence.Load(),
		Spooled:           br.m.spooled.Load(),
		Produced:          br.m.produced.Load(),
		Failed:            br.m.failed.Load() + sp.Corrupt,
		Dropped:           br.m.dropped.Load(),
		Refused:           br.m.refused.Load(),
		Resent:            br.m.resent.Load(),
		Backlog:           sp.Backlog,
		SpoolBytes:        sp.Bytes,
		QueueBytes:        qb,
		CommandsConsumed:  br.m.cmdConsumed.Load(),
		CommandsDelivered: br.m.cmdDelivered.Load(),
		CommandsDLQ:       br.m.cmdDLQ.Load(),
		ConsumerLag:       lag,
	}
}

// Alarm names in Status.Alarms.
const (
	// AlarmKafkaUnreachable: the producer cannot reach Kafka; records
	// wait in the spool.
	AlarmKafkaUnreachable = "kafka_unreachable"
	// AlarmSpoolFull: the spool reached SpoolMaxBytes; publishers of
	// bridged topics are held (their QoS 1/2 acknowledgements wait).
	AlarmSpoolFull = "kafka_spool_full"
)

// Status is the bridge's health.
type Status struct {
	KafkaUp        bool
	KafkaError     string    // the last error, while Kafka is unreachable
	KafkaDownSince time.Time // zero while up
	SpoolFull      bool
	SpoolFullSince time.Time // zero while not full
	Backlog        uint64    // records waiting for Kafka
	SpoolBytes     int64
	SpoolMaxBytes  int64
	// CommandPartitions is how many command-topic partitions this node
	// consumes (0 until the consumer group has assigned them).
	CommandPartitions int
	// Alarms lists the active alarms (AlarmKafkaUnreachable,
	// AlarmSpoolFull); empty when healthy.
	Alarms []string
}

// Status returns the bridge's health. Safe for concurrent use.
func (br *Bridge) Status() Status {
	sp := br.sp.Stats()
	br.st.Lock()
	s := Status{
		KafkaUp:           br.st.kafkaUp,
		KafkaError:        br.st.kafkaErr,
		KafkaDownSince:    br.st.kafkaDownSince,
		SpoolFull:         br.st.spoolFull,
		SpoolFullSince:    br.st.spoolFullSince,
		CommandPartitions: br.st.claims,
	}
	br.st.Unlock()
	s.Backlog, s.SpoolBytes, s.SpoolMaxBytes = sp.Backlog, sp.Bytes, br.cfg.SpoolMaxBytes
	if !s.KafkaUp {
		s.Alarms = append(s.Alarms, AlarmKafkaUnreachable)
	}
	if s.SpoolFull {
		s.Alarms = append(s.Alarms, AlarmSpoolFull)
	}
	return s
}

func (br *Bridge) kafkaUp() bool {
	br.st.Lock()
	defer br.st.Unlock()
	return br.st.kafkaUp
}

// setKafka records the producer's view of Kafka and logs transitions.
func (br *Bridge) setKafka(up bool, err error) {
	br.st.Lock()
	was := br.st.kafkaUp
	br.st.kafkaUp = up
	if up {
		br.st.kafkaErr, br.st.kafkaDownSince = "", time.Time{}
	} else {
		br.st.kafkaErr = err.Error()
		if was {
			br.st.kafkaDownSince = time.Now()
		}
	}
	br.st.Unlock()
	switch {
	case was && !up:
		br.log.Error().Err(err).Str("alarm", AlarmKafkaUnreachable).
			Msg("kafkabridge: Kafka unreachable: records wait in the on-disk spool")
	case !was && up:
		br.log.Warn().Uint64("backlog", br.sp.Stats().Backlog).
			Msg("kafkabridge: Kafka reachable again: draining the spool in order")
	}
}

func (br *Bridge) setSpoolFull(full bool) {
	br.st.Lock()
	was := br.st.spoolFull
	br.st.spoolFull = full
	if full && !was {
		br.st.spoolFullSince = time.Now()
	}
	if !full {
		br.st.spoolFullSince = time.Time{}
	}
	br.st.Unlock()
	switch {
	case full && !was:
		br.fullLog.Error().Int64("spool_max_bytes", br.cfg.SpoolMaxBytes).Str("alarm", AlarmSpoolFull).
			Msg("kafkabridge: spool full: acknowledgements to publishers of bridged topics are held (backpressure) until Kafka drains it")
	case !full && was:
		br.log.Warn().Msg("kafkabridge: spool has room again")
	}
}
