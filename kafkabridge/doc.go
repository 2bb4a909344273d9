// Package kafkabridge connects the broker to Apache Kafka (DESIGN.md,
// "Kafka contract"):
//
//   - device messages whose parent topic (the first topic level) is
//     registered become records of the Kafka topic of that name, with a
//     JSON value and clientId/mqttTopic/qos headers; ordered parent topics
//     (orderMsg2mq-…) are keyed by client ID;
//   - every connect and disconnect becomes a presence record with a
//     per-client, ever-increasing seq;
//   - records of the command topic (mq2mqtt) are published into the
//     broker; undeliverable ones go to the dead-letter topic;
//   - the parent-topic registry (Register, Delete, List) lives in the
//     session store's KV under "pt/" and creates the Kafka topics.
//
// # Pipeline
//
//	event loop ──Accept/OnConnect/OnDisconnect──▶ intake queue (memory, QueueBytes)
//	    ──writer──▶ spool (disk, SpoolMaxBytes; fsync per batch in AckLocal)
//	    ──sender──▶ Kafka (idempotent producer, Config.Pipeline rounds in flight, snappy)
//
// The writer encodes a device message straight into its spool record,
// JSON value included, in buffers it reuses (value.go: byte for byte what
// encoding/json would write, without its reflection and allocations); the
// sender decodes a round of spool records and builds its sarama messages
// in a few slabs.
//
// The on-disk spool (package spool) is the bridge's write-ahead log: every
// record passes through it, so one ordered pipeline carries records in the
// order they were accepted, across Kafka outages, retries and restarts. A
// record leaves the spool only once Kafka acknowledged it. When Kafka
// fails part of a round, the producer is replaced and the failed records
// are sent again with every later record of the same key (an ordered
// topic's client, an event's client): a client's records may be
// duplicated after an outage, never reordered. Duplicates carry the same
// value, so consumers can drop them (device messages: clientId + ts;
// events: seq).
//
// # Acknowledgements (Config.Ack)
//
// AckLocal releases a QoS 1/2 publisher once its record is synced to the
// spool (one fsync per writer batch: group commit); AckKafka once Kafka
// acknowledged it. The event loop never waits: Accept only appends to the
// intake queue.
//
// # When Kafka is down, slow or the disk is full
//
// Records wait in the spool (alarm AlarmKafkaUnreachable) and drain in
// order when Kafka answers again. When the spool reaches SpoolMaxBytes
// (alarm AlarmSpoolFull, an Error log), the writer stops taking records:
// they wait in the intake queue and their QoS 1/2 acknowledgements are
// held, so publishers of bridged topics stall once their in-flight window
// is full — backpressure, not loss. When the intake queue also reaches
// QueueBytes, QoS 1/2 messages are refused (the publisher's connection is
// closed unacknowledged; it resends later) and QoS 0 messages and
// presence events are dropped and counted (Metrics.Dropped): QoS 0 is at
// most once by contract.
//
// # Commands
//
// A consumer group (Config.ConsumerGroup; a new group starts at the
// newest offset) reads Config.CommandTopic. Headers mqttTopic (required),
// qoslevel (0/1/2, default 0) and cleanSession (true: online subscribers
// only, the default; false: offline persistent sessions queue it too)
// become a broker.Publish. Records that cannot be delivered go to
// Config.DLQTopic with their key, value and headers plus an "error"
// header. A partition's offset is marked only when every command before it
// entered the broker (durable in every session it was queued to) or the
// dead-letter topic: at least once.
//
// # Concurrency
//
// Accept and the hooks run on event loops and take one short lock (the
// intake queue; presence counters are sharded). Goroutines, all owned by
// the Bridge and stopped by Close: the writer (intake → spool), the
// sender (spool → Kafka), the command consumer, the system-topic creator
// and a janitor. Locks (all leaves, none held across I/O or a callback):
// in (intake), waiters (AckKafka callbacks), st (status), topicsMu
// (serializes Register/Delete; held across the Kafka topic creation, which
// is not on an event loop), the spool's own lock.
package kafkabridge
