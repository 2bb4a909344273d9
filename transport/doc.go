// Package transport accepts client connections and presents each one to the
// protocol layer as a Conn, whatever carries it: plain TCP on epoll event
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
// # TCP (epoll event loops, Linux)
//
// ListenTCP runs Loops event loops (default: one per CPU), each a
// goroutine in epoll_wait over its own connections, the listening socket
// and an eventfd. EPOLLEXCLUSIVE wakes one loop per incoming connection
// (mostly the same one), which deals what it accepts to the loops
// round-robin: its own share it opens at once, another loop's it hands
// over through that loop's list (a wake-up only if that loop sleeps). A connection lives on one loop, which
// runs all its Handler callbacks, so those must never block. Each
// readable event reads once into the loop's shared buffer and offers the
// bytes, after any the handler left unconsumed (kept per connection only
// while there are some), to OnData.
//
// AsyncWritev, from any goroutine, appends to the connection's queue and
// puts the connection on its loop's pending list. After each batch of
// events the loop writes every pending connection with one writev, so the
// messages routed to a subscriber within a batch leave in one system
// call. The eventfd is written only when the loop sleeps in epoll_wait: a
// reply, or a message to another connection on the same loop, costs no
// wake-up. When the socket refuses bytes the rest stays queued, the loop
// waits for EPOLLOUT, and the dones of those writes run once they are
// written: Outbound is exactly the bytes queued and not yet written.
// Conn.Close goes through the same list after the writes accepted before
// it; if the socket is full it does not wait for the peer. TCP_NODELAY and
// keep-alive are set once on the listening socket, which Linux copies to
// accepted sockets. Out of file descriptors, a loop stops polling the
// listener for 100 ms rather than spin on it.
//
// This replaced gnet (v2), which cost about 370 bytes per connection of its
// own plus a task, an eventfd write and a loop turn for every write from
// outside OnTraffic. On other systems ListenTCP serves plain TCP with the
// goroutine pair TLS uses.
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
// the loop's read buffer or the connection's leftover bytes, on
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
// goroutine-driven listener has one (its connection set), each TCP loop one
// (its pending list). A TCP connection's mutex is held while it is put on
// the pending list (and the eventfd written), so that nothing is put there
// after the connection closed and its loop may have exited; the pending
// list's lock is taken inside it, never the other way round. No lock is
// held across a Handler callback or a done callback.
//
// # Shutdown
//
// Listener.Close stops accepting, closes every connection (queued writes are
// flushed for at most a short bound, then sockets close), waits until every
// Handler.OnClose has returned and every goroutine the listener started has
// exited. It must not be called from a Handler callback.
package transport
