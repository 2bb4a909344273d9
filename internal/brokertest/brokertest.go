package brokertest

import (
	"crypto/tls"
	"net"
	"reflect"
	"strings"
	"sync"
	"testing"

	"github.com/rs/zerolog"

	"github.com/mqttd/mqttd/broker"
	"github.com/mqttd/mqttd/internal/testcert"
	"github.com/mqttd/mqttd/transport"
)

// ClientCN is the common name of the client certificate in Server.Cert.
const ClientCN = "brokertest-client"

// Options selects the broker configuration and the listeners to start.
// A TCP listener is always started.
type Options struct {
	// Config is passed to broker.New as is: AllowAnonymous in particular is
	// not forced on, so a test that wants anonymous clients sets it. A zero
	// Config.Log is replaced by a logger writing to the test's log at
	// debug level.
	Config broker.Config

	// TLS starts an MQTT-over-TLS listener presenting Cert's server
	// certificate.
	TLS bool
	// ClientAuth is the TLS and WSS listeners' client certificate policy
	// (verified against Cert's CA). Default tls.NoClientCert.
	ClientAuth tls.ClientAuthType
	// WS starts a plain WebSocket listener on path /mqtt.
	WS bool
	// WSS starts a WebSocket-over-TLS listener on path /mqtt.
	WSS bool
}

// Server is a running broker and the addresses of its listeners.
type Server struct {
	Broker *broker.Broker

	// Listener addresses as "127.0.0.1:port"; "" when not started.
	TCP, TLS, WS, WSS string

	// Cert is the certificate bundle of the TLS and WSS listeners (CA,
	// server and client certificates, also as PEM files); nil when neither
	// was requested.
	Cert *testcert.Bundle
}

// Start creates a broker from opts.Config and starts the requested
// listeners on 127.0.0.1:0. It fails the test at once when anything does
// not start. t.Cleanup closes the listeners, then the broker.
func Start(t testing.TB, opts Options) *Server {
	t.Helper()

	cfg := opts.Config
	if reflect.ValueOf(cfg.Log).IsZero() {
		// Registered first so it runs last: the log keeps working while
		// the listeners and the broker shut down.
		cfg.Log = newTestLogger(t)
	}
	b, err := broker.New(cfg)
	if err != nil {
		t.Fatalf("brokertest: broker.New: %v", err)
	}
	s := &Server{Broker: b}

	var listeners []transport.Listener
	t.Cleanup(func() {
		for i := len(listeners) - 1; i >= 0; i-- {
			if err := listeners[i].Close(); err != nil {
				t.Logf("brokertest: closing listener %s: %v", listeners[i].Addr(), err)
			}
		}
		if err := b.Close(); err != nil {
			t.Logf("brokertest: closing broker: %v", err)
		}
	})
	add := func(kind string, l transport.Listener, err error) string {
		t.Helper()
		if err != nil {
			t.Fatalf("brokertest: starting %s listener: %v", kind, err)
		}
		listeners = append(listeners, l)
		return loopbackAddr(t, l.Addr())
	}

	const anyPort = "127.0.0.1:0"
	l, err := transport.ListenTCP(transport.TCPConfig{Addr: anyPort, Log: cfg.Log}, b)
	s.TCP = add("tcp", l, err)

	if opts.TLS || opts.WSS {
		s.Cert = testcert.New(t, ClientCN)
	}
	if opts.TLS {
		l, err := transport.ListenTLS(transport.TLSConfig{Addr: anyPort, TLS: s.Cert.ServerTLS(opts.ClientAuth), Log: cfg.Log}, b)
		s.TLS = add("tls", l, err)
	}
	if opts.WS {
		l, err := transport.ListenWS(transport.WSConfig{Addr: anyPort, Log: cfg.Log}, b)
		s.WS = add("ws", l, err)
	}
	if opts.WSS {
		l, err := transport.ListenWS(transport.WSConfig{Addr: anyPort, TLS: s.Cert.ServerTLS(opts.ClientAuth), Log: cfg.Log}, b)
		s.WSS = add("wss", l, err)
	}
	return s
}

// loopbackAddr renders a listener address as host:port with an explicit
// 127.0.0.1 host, whatever form the listener reports (":port", "[::]:port").
func loopbackAddr(t testing.TB, a net.Addr) string {
	t.Helper()
	_, port, err := net.SplitHostPort(a.String())
	if err != nil || port == "" || port == "0" {
		t.Fatalf("brokertest: listener address %q has no port", a)
	}
	return net.JoinHostPort("127.0.0.1", port)
}

// testWriter forwards log lines to t.Log until the test's cleanup stops it.
type testWriter struct {
	mu struct {
		sync.Mutex
		t testing.TB // nil once the test is over
	}
}

func newTestLogger(t testing.TB) zerolog.Logger {
	w := &testWriter{}
	w.mu.t = t
	t.Cleanup(func() {
		w.mu.Lock()
		w.mu.t = nil
		w.mu.Unlock()
	})
	out := zerolog.ConsoleWriter{Out: w, NoColor: true, TimeFormat: "15:04:05.000"}
	return zerolog.New(out).Level(zerolog.DebugLevel).With().Timestamp().Logger()
}

func (w *testWriter) Write(p []byte) (int, error) {
	w.mu.Lock()
	defer w.mu.Unlock()
	if w.mu.t != nil {
		w.mu.t.Log(strings.TrimRight(string(p), "\n"))
	}
	return len(p), nil
}
