// Package brokertest starts an in-process mqttd broker for tests: a
// broker.Broker behind real listeners (TCP, and on request TLS, WebSocket
// and secure WebSocket) bound to ephemeral loopback ports.
//
// Start owns everything it creates and tears it down through t.Cleanup:
// listeners first (no new connections), then the broker (which disconnects
// every client). Broker logs go to the test's log (shown on failure or with
// -v) unless the caller supplies a logger of its own.
//
// Only tests import this package; it is not for production use.
//
// Concurrency: Start and the returned Server's fields are meant for the
// test goroutine; the Broker itself is safe for concurrent use. The test
// log writer may be called from any goroutine and stops writing once the
// test's cleanup has run, so a late log line from a broker goroutine never
// reaches a finished test.
package brokertest
