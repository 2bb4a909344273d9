// Package transport accepts client connections and presents each one to the
// protocol layer as a Conn, whatever carries it: plain TCP on gnet event
// loops (ListenTCP), TLS (ListenTLS) or WebSocket / secure WebSocket
// (ListenWS). It knows nothing of MQTT: it moves bytes, queues writes and
// reports closes.
//
// # What it owns
//
// Sockets, read buffers, write queues and the goroutines and event loops
// that drive them. The protocol layer owns the per-connection state it
// stores with Conn.SetContext, and the framing: Handler.OnData is offered
// every received byte not yet consumed and says how many it consumed.
//
// # Handler contract
//
// For one connection the calls are serialized: OnOpen, OnData any number of
// times, OnClose exactly once (also when OnOpen panicked). A panic in any
// callback is recovered, logged with its stack at Error, and closes that
// connection only (OnClose gets an error wrapping ErrHandlerPanic). An
// OnData error, a consumed count outside [0, len(data)] (ErrConsumed), or
// more than MaxBuffered unconsumed bytes (ErrInboundOverflow) closes the
// connection with that error. OnClose's error is nil for an orderly end by
// the peer (TCP EOF, TLS close_notify, WebSocket close 1000/1001/1005 or a
// TCP end without a close frame) or by Conn.Close, ErrListenerClosed when
// Listener.Close closed it, and the failure otherwise.
//
// Closing is ordered after writing: Conn.Close and an OnData error first let
// the writes queued before them go out, so a handler may queue a final
// packet (CONNACK with a failure code, DISCONNECT) and then close. Once a
// close is requested, AsyncWritev returns ErrClosed and no more OnData calls
// are made.
//
// # TCP (gnet)
//
// gnet v2 runs one acceptor goroutine and Loops event-loop goroutines
// (default: one per CPU); each connection lives on one loop, which runs all
// its Handler callbacks, so those must never block. OnTraffic peeks all
// buffered inbound bytes, calls OnData, and discards what was consumed.
// AsyncWritev appends to the connection's own queue and, when that was idle,
// queues one flush task to the loop; the flush writes everything queued with
// one writev (what the socket refuses is copied into gnet's outbound
// buffer), then calls the dones on the loop. While the connection's own
// OnTraffic runs, no task is queued: OnTraffic writes the queue itself once
// the handler returns, so a reply (CONNACK, SUBACK, PUBACK) costs no eventfd
// wake-up and no extra loop turn. Conn.Close goes through the same queue,
// always as a task (gnet must not close a connection inside its OnTraffic),
// so it follows the writes accepted before it. TCP keep-alive is set once
// on the listening socket where Linux copies it to accepted sockets. Outbound is the
// bytes queued plus gnet's outbound buffer as last seen on the loop (after
// each flush, each read, and every TCPConfig.OutboundRefresh while it is
// non-empty).
//
// # TLS and WebSocket (goroutines)
//
// Each connection has a reader goroutine, which also runs all Handler
// callbacks, and a writer goroutine that owns socket writes. AsyncWritev
// appends to a mutex-guarded queue and wakes the writer; it never blocks.
// The writer takes the oldest queued writes, up to 64 KiB (at least one
// write), as one batch: for TLS it coalesces small buffers into records of
// up to 16 KiB, for WebSocket the batch is one binary message (framed by
// WSConfig.WriteBufferSize); then it calls each done. Outbound is the bytes
// queued or in the batch being written. A write blocked longer than
// WriteTimeout closes the connection.
//
// The WebSocket listener negotiates subprotocol "mqtt" (or "mqttv3.1", or
// none when the client offers none); inbound binary messages form one byte
// stream, so a packet may span messages and a message may hold several
// packets; a text message closes the connection (ErrNonBinary)
// [MQTT-6.0.0-1]. Paths other than WSConfig.Path get 404.
//
// # Buffer lifetimes
//
// The data given to OnData is valid only during the call: on TCP it aliases
// gnet's loop read buffer or inbound ring (discarded after the call), on
// TLS/WebSocket it aliases the connection's read buffer, which the next read
// compacts or regrows. Bytes that must outlive the call are copied. The
// bufs given to AsyncWritev belong to the transport until done is called;
// done(err) is called exactly once, from the loop or the writer (or the
// reader / OnClose path when the connection closes first), and must not
// block.
//
// # Locks
//
// Each connection has one mutex (its write queue and close state); each
// listener has one (its connection set, or for TCP the set of connections
// whose Outbound needs refreshing). The two are never held together. A gnet
// connection's mutex is held while queuing a task to its loop (a lock-free
// push and a non-blocking eventfd write): no task may be queued after the
// loop's OnClose, because gnet closes its pollers after the last one. No
// lock is held across a Handler callback or a done callback.
//
// # Shutdown
//
// Listener.Close stops accepting, closes every connection (queued writes are
// flushed for at most a short bound, then sockets close), waits until every
// Handler.OnClose has returned and every goroutine the listener started has
// exited. It must not be called from a Handler callback.
package transport
