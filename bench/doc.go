// Package bench is the load generator behind cmd/mqttbench: it drives an
// MQTT broker over loopback TCP with a fixed scenario, checks every message
// it gets back, and reports throughput, latency, losses and the broker's
// memory per connection.
//
// # Scenarios
//
//   - fanin: P publishers, each on its own topic, one subscriber on a
//     single-level wildcard that matches them all.
//   - fanout: one publisher, S subscribers on its topic; throughput is
//     deliveries per second summed over the subscribers.
//   - pairs: N publishers, each with a subscriber of its own topic.
//   - conns: C idle connections, each subscribed to a topic of its own; it
//     measures the connect+subscribe rate, from the first connect to the
//     last SUBACK, with the tool's and the broker's CPU over that time (a
//     warning says when the kernel dropped connection attempts at a full
//     accept queue), and reads the broker's resident memory (VmRSS in
//     /proc/PID/status) before and after, for the bytes per connection. It
//     then publishes one message to every connection's topic and reads it
//     back, so a broker that silently lost subscriptions is caught.
//   - kafka: P publishers on topics under a parent topic the tool
//     registers through the broker's admin API (the bridge creates the
//     Kafka topic); no MQTT subscriber, but a Kafka consumer (kafka.go)
//     reading every partition from the offsets at the start, checking each
//     record's payload like a delivery. Order is checked per client within
//     a partition (normal topics spread a client over partitions), and per
//     client overall on ordered (orderMsg2mq-) topics. The publishers' ack
//     rate is reported beside the records/s in Kafka. With -kafka-verify
//     after the consumer reads nothing until the window closes (so it
//     takes no CPU from the publishers), then checks the same records;
//     kafka_in_window counts the window's records whose Kafka timestamp
//     falls inside the window, which shows whether the rate was sustained
//     or absorbed by the bridge's spool.
//
// The scenario table (scenarios in run.go) is the only list to extend.
//
// # What every message carries
//
// The payload starts with 16 bytes (payload.go): the publisher index and the
// sequence number packed in 8 bytes, then the send time in Unix nanoseconds
// read from a monotonic base, then padding to the configured size. A
// subscriber checks each delivery against the stream of its publisher
// (Stream in seq.go): lost, duplicated and out-of-order counts, and records
// the latency in a log-linear Histogram (hist.go). A run has a warm-up, a
// measurement window and a drain: only messages sent inside the window
// count, and the drain waits for late deliveries before anything is
// declared lost.
//
// # Flow control
//
// QoS 1/2 publishers keep at most Inflight unacknowledged messages. QoS 0
// has no acknowledgement, so an unbounded publisher only measures how much
// the socket buffers in front of the broker hold: the backlog shows up as
// seconds of latency and, after the drain, as losses the broker never
// read. QoS0Window is the remedy: each publisher stays at most that many
// messages ahead of the slowest of its subscribers, whose progress (the
// highest sequence number seen) it reads from atomics they update after
// every read. A broker that drops messages does not stall the window, since
// progress skips holes; a window in which no subscriber moves for a second
// is written off (counted in Result.WindowStalls). Without it a blocked publisher is cut a second after the window and
// only the messages its writes carried whole are counted as sent.
//
// # Concurrency model
//
// The client is a minimal MQTT 3.1.1/5 implementation on top of codec
// (client.go), with plain net.Conn sockets:
//
//   - pub/sub scenarios run one reader goroutine per connection and one
//     writer goroutine per publisher. The reader owns its subscriber state
//     (streams, histogram, counters) without locks; totals are read once
//     its goroutine has returned. Live counters for the progress line are
//     atomics. Both goroutines of a publisher write to the socket, each with
//     whole packets in a single Write call, which net.Conn serialises.
//   - conns opens its connections on an epoll engine (connengine.go): one
//     goroutine, non-blocking sockets created (and bound to their -spread
//     source address) before the clock starts, at most ConnInflight
//     handshakes in flight, a small state machine and a deadline per
//     handshake. By default CONNECT and SUBSCRIBE go out in one write as
//     soon as TCP is up, before the CONNACK, as MQTT allows; the handshake
//     is over when CONNACK and SUBACK are both in, and a refusal in either
//     fails it. -pipeline=false waits for the CONNACK before sending the
//     SUBSCRIBE. Both brokers of a comparison see the same client. A
//     subscribed socket is then handed to the net package (a net.Conn made
//     from it once the connect phase is timed) for the idle phase's pinger
//     and the verify phase, which a pool of Workers goroutines reads with
//     deadlines; no goroutine stays on an idle connection, so 19,000 of them
//     cost the tool a socket each and nothing more. What the tool still
//     spends per connection is nearly all kernel work: over loopback the
//     whole TCP handshake, the broker's half included, runs inside the
//     client's connect, and delivery to the broker's socket inside its
//     write.
//
// Every goroutine is owned by the run that started it, which cancels and
// waits for it before returning. There are no mutexes held across I/O.
package bench
