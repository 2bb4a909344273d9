package transport

import (
	"errors"
	"fmt"
)

// Sentinel errors. Handler.OnClose and AsyncWritev's done callback receive
// them (possibly wrapped); test with errors.Is.
var (
	// ErrClosed: the connection is closed (or closing), so a write was
	// refused or abandoned.
	ErrClosed = errors.New("transport: connection closed")

	// ErrListenerClosed: the connection was closed because its listener was
	// closed.
	ErrListenerClosed = errors.New("transport: listener closed")

	// ErrHandlerPanic: a Handler callback panicked; the panic value and
	// the callback name follow in the wrapping error's text.
	ErrHandlerPanic = errors.New("transport: handler panicked")

	// ErrInboundOverflow: the handler left more unconsumed inbound bytes
	// buffered than the listener's MaxBuffered allows.
	ErrInboundOverflow = errors.New("transport: unconsumed inbound bytes exceed MaxBuffered")

	// ErrConsumed: Handler.OnData returned a consumed count outside
	// [0, len(data)].
	ErrConsumed = errors.New("transport: handler consumed count out of range")

	// ErrNonBinary: a WebSocket peer sent a text message; MQTT over
	// WebSocket carries binary frames only [MQTT-6.0.0-1].
	ErrNonBinary = errors.New("transport: non-binary WebSocket message")
)

// ConfigError reports an invalid listener configuration field.
type ConfigError struct {
	Field  string // the Config field, e.g. "TLS"
	Reason string // what is wrong with it
}

func (e *ConfigError) Error() string {
	return fmt.Sprintf("transport: invalid config field %s: %s", e.Field, e.Reason)
}
