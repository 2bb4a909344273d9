package transport

import (
	"crypto/x509"
	"net"
)

// Conn is one client connection, whatever carries it (TCP, TLS or
// WebSocket). The protocol layer (broker, gateways) sees only this.
type Conn interface {
	// AsyncWritev queues bufs to be written to the peer, in order, after
	// everything queued before. The transport owns bufs until done is
	// called; done(err) is called exactly once, from any goroutine (it may
	// be the connection's event loop), once the bytes have been written to
	// the socket or copied into the transport's own outbound buffer, or
	// when the write failed (err != nil). done may be nil. Safe to call
	// from any goroutine. Returns an error (and does not call done) when
	// the connection is already closed.
	AsyncWritev(bufs [][]byte, done func(err error)) error

	// Outbound reports how many bytes the transport holds that were
	// accepted by AsyncWritev but not yet written to the socket. It is an
	// estimate; safe from any goroutine.
	Outbound() int

	// Close closes the connection. Safe from any goroutine, idempotent.
	// Handler.OnClose is called once afterwards (not from inside Close).
	Close() error

	RemoteAddr() net.Addr
	LocalAddr() net.Addr

	// Transport names the listener kind: "tcp", "tls", "ws" or "wss".
	Transport() string

	// PeerCertificates returns the verified client certificate chain of a
	// TLS/WSS connection, or nil.
	PeerCertificates() []*x509.Certificate

	// Context and SetContext hold one value for the protocol layer (its
	// per-connection state). Set it in OnOpen; read it in OnData/OnClose.
	Context() any
	SetContext(v any)
}

// Handler is the protocol layer behind a listener. For one connection the
// calls are serialized: OnOpen, then OnData any number of times, then
// OnClose exactly once. Calls for different connections run concurrently.
// Handlers must not block: no disk or network I/O (hand that off).
type Handler interface {
	// OnOpen is called when a connection is accepted.
	OnOpen(c Conn)

	// OnData is called with all bytes received and not yet consumed. data
	// is valid only during the call. The handler returns how many bytes
	// it consumed (whole packets); the rest is offered again, with more
	// bytes appended, on the next call. A non-nil error closes the
	// connection (OnClose gets that error).
	OnData(c Conn, data []byte) (consumed int, err error)

	// OnClose is called once when the connection is closed, by either
	// side. err is nil for an orderly close by the peer or by Close.
	OnClose(c Conn, err error)
}
