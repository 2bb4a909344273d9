// Package broker is the core of mqttd: the MQTT 3.1.1/5 protocol state
// machine on top of codec, the topic trie and routing, retained messages,
// wills, keepalive, session takeover, QoS 1/2 flows, limits and auth hooks.
// A *Broker is a transport.Handler: every transport listener feeds it
// connections, and gateways reach it through the exported API.
//
// # A PUBLISH, end to end
//
// The transport calls OnData on the connection's event loop with all
// buffered bytes; the broker frames whole packets (codec.ParseHeader) and
// decodes each one in place. An accepted PUBLISH is copied once into an
// immutable session.Message, retained if asked, and routed: the trie
// returns the matching subscriptions, overlapping ones of one client are
// merged into one delivery, shared groups pick one member. Each delivery
// goes to its session: online, encoded into that connection's outbound
// buffer (or queued behind its in-flight window); offline, into its
// bounded queue. Then the publisher gets its PUBACK/PUBREC.
//
// # Concurrency
//
//   - Each connection's protocol state is owned by its transport callbacks
//     (serialized per connection) under conn.inMu, which is uncontended
//     except when an auth worker completes a CONNECT whose password it
//     checked off the loop.
//   - session.Session.Mu guards a session: its subscriptions, queue,
//     in-flight window, and which connection has it (Owner). Deliveries
//     from any event loop take it briefly.
//   - conn.outMu guards a connection's outbound buffer. A flush swaps the
//     buffer out and hands it to the transport (one write in flight per
//     connection); everything appended meanwhile goes out with the next
//     write, so busy connections batch many packets per syscall.
//   - The trie has one RWMutex (match takes the read lock); the retained
//     store another. Neither is held while a session lock is taken.
//   - idMu stripes serialize CONNECT/disconnect per client ID, so takeover
//     and session end never race.
//
// Lock order: conn.inMu → (store Atomic, a read lock) → idMu stripe →
// session.Mu → conn.outMu → conn.relMu. The trie and retained locks are
// leaves. No broker lock is held across a transport call or a hook; with a
// durable store, the store's Atomic read lock is held while one PUBLISH is
// routed, which includes non-blocking AsyncWritev calls (the committer
// only waits for it to take the next batch).
//
// # Bounds
//
// Outbound bytes per connection (OutboundLimit: QoS 0 past it is dropped
// and counted, QoS 1/2 wait in the session), the in-flight window
// (min(client Receive Maximum, MaxInflight)), the online pending queue
// (MaxPending: past it the publishers' acknowledgements are held, so they
// slow down instead of the broker dropping what it acknowledged; the
// publishers' own un-acknowledged publishes are bounded by ReceiveMaximum)
// and the offline queue (SessionMaxQueued, dropping its oldest message and
// counting it).
//
// # Memory per connection
//
// Idle connections are most of a broker's memory, so a connection keeps
// inline only what every connection uses, in 208 bytes (TestConnSize):
// flags are bits of one atomic word, the client ID and group are the
// session's, and the rarely used state (bytes held behind a deferred
// CONNECT, enhanced authentication, acknowledgements waiting for a commit,
// the exit reason and close deadline, topic-alias maps, the per-IP
// address, released publishers) lives in a connCold allocated on first
// use; ClientInfo is built when a hook asks; the connection registry is a
// slice per shard. A connection that wrote nothing for a sweep period
// (idleBuffersEvery) lets its write buffers go. The session keeps its
// queue, QoS 2 ids, held publishers and delayed will apart in the same way
// (session.Session is 112 bytes), and a trie leaf keeps a lone subscriber
// inline (32 bytes). An idle subscribed connection thus costs the conn,
// its session, its subscription (in the session and the trie), and the
// client ID and filter strings. The hot paths allocate the message (one
// copy, two objects) and, for QoS 1/2, its in-flight record; a held
// acknowledgement is one object; BenchmarkFanout and BenchmarkQoS1 count
// them.
//
// # Housekeeping
//
// One goroutine sweeps four times a second (tickEvery). Each tick it
// checks the watch list: connections awaiting their CONNECT, closing,
// congested, or with a keepalive of at most fastKeepAlive; they enter it
// through Broker.watch (a flag keeps each listed once) and leave it when
// none of that holds any more. Each tick also visits one of sweepParts
// parts of the connection registry, so every connection is checked once
// a second for its keepalive (so a keepalive over fastKeepAlive is
// enforced up to 1.25 s after 1.5 x keepalive, where a watched one is
// within 0.5 s) and, every other round, for idle write buffers. Twice a second it checks the sessions
// without a connection (Broker.offline) for due wills, expiry and
// expired queued messages; online sessions are not visited.
// BenchmarkSweep: a connection costs about 20 ns of sweep a second where
// the full sweep every tick cost 80-170 ns, and an online session nothing
// where it cost about 40 ns. A timer wheel keyed by each connection's
// deadline would cut the visits to one per keepalive period, but it would
// hold closed connections until their slot came up.
package broker
