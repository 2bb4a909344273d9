package transport

import (
	"crypto/tls"
	"io"
	"net"
	"strings"
	"testing"
	"time"

	"github.com/gorilla/websocket"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	"go.uber.org/goleak"

	"github.com/mqttd/mqttd/internal/testcert"
)

// tls12 is a TLS configuration without certificates.
var tls12 = tls.Config{MinVersion: tls.VersionTLS12}

// TestTLSClientCertRequired: without a client certificate the handshake
// fails and the Handler never hears of the connection.
func TestTLSClientCertRequired(t *testing.T) {
	b := testcert.New(t, clientCN)
	h := newTestHandler()
	l := listenT(t)(ListenTLS(TLSConfig{Addr: "127.0.0.1:0", TLS: b.ServerTLS(tls.RequireAndVerifyClientCert)}, h))

	c, err := tls.Dial("tcp", l.Addr().String(), b.ClientTLS(false))
	if err == nil {
		// TLS 1.3: the client finishes first and learns of the refusal
		// on its first read.
		_ = c.SetReadDeadline(time.Now().Add(waitFor))
		_, err = c.Read(make([]byte, 1))
		_ = c.Close()
	}
	require.Error(t, err)

	// A client with a certificate still gets in.
	ok, err := tls.Dial("tcp", l.Addr().String(), b.ClientTLS(true))
	require.NoError(t, err)
	defer ok.Close()
	conn := h.waitOpen(t)
	assert.Equal(t, clientCN, conn.PeerCertificates()[0].Subject.CommonName)
	assert.Empty(t, h.opened, "the refused client never opened")
}

func TestWSSClientCertRequired(t *testing.T) {
	b := testcert.New(t, clientCN)
	h := newTestHandler()
	l := listenT(t)(ListenWS(WSConfig{Addr: "127.0.0.1:0", TLS: b.ServerTLS(tls.RequireAndVerifyClientCert)}, h))
	d := websocket.Dialer{TLSClientConfig: b.ClientTLS(false), HandshakeTimeout: waitFor}
	ws, _, err := d.Dial("wss://"+l.Addr().String()+"/mqtt", nil)
	if err == nil {
		_ = ws.Close()
	}
	require.Error(t, err)
	assert.Empty(t, h.opened)
}

// TestTLSHandshakeTimeout: a client that never starts the handshake is
// dropped after HandshakeTimeout.
func TestTLSHandshakeTimeout(t *testing.T) {
	b := testcert.New(t, clientCN)
	h := newTestHandler()
	l := listenT(t)(ListenTLS(TLSConfig{
		Addr: "127.0.0.1:0", TLS: b.ServerTLS(tls.NoClientCert), HandshakeTimeout: 100 * time.Millisecond,
	}, h))
	c, err := net.Dial("tcp", l.Addr().String())
	require.NoError(t, err)
	defer c.Close()
	start := time.Now()
	_ = c.SetReadDeadline(time.Now().Add(waitFor))
	_, err = io.ReadAll(c)
	require.NoError(t, err, "the server closed the connection")
	assert.Less(t, time.Since(start), 5*time.Second)
	assert.Empty(t, h.opened)
}

// TestListenerCloseDuringHandshake: Close does not wait for handshakes
// that would time out much later.
func TestListenerCloseDuringHandshake(t *testing.T) {
	for _, ws := range []bool{false, true} {
		name := "tls"
		if ws {
			name = "wss"
		}
		t.Run(name, func(t *testing.T) {
			defer goleak.VerifyNone(t, goleak.IgnoreCurrent())
			b := testcert.New(t, clientCN)
			h := newTestHandler()
			var l Listener
			var err error
			if ws {
				l, err = ListenWS(WSConfig{Addr: "127.0.0.1:0", TLS: b.ServerTLS(tls.NoClientCert)}, h)
			} else {
				l, err = ListenTLS(TLSConfig{Addr: "127.0.0.1:0", TLS: b.ServerTLS(tls.NoClientCert)}, h)
			}
			require.NoError(t, err)
			idle, err := net.Dial("tcp", l.Addr().String())
			require.NoError(t, err)
			defer idle.Close()
			// A complete client too, so Close has both kinds to handle.
			full := tlsOrWSSClient(t, ws, l.Addr(), b)
			defer full.Close()
			h.waitOpen(t)

			start := time.Now()
			require.NoError(t, l.Close())
			assert.Less(t, time.Since(start), 3*time.Second)
			assert.ErrorIs(t, h.waitClose(t).err, ErrListenerClosed)
			_ = idle.SetReadDeadline(time.Now().Add(waitFor))
			_, err = io.ReadAll(idle)
			assert.True(t, err == nil || isPeerGone(err), "idle client closed: %v", err)
		})
	}
}

func tlsOrWSSClient(t *testing.T, ws bool, addr net.Addr, b *testcert.Bundle) io.Closer {
	if ws {
		return dialWS(t, "wss://"+addr.String()+"/mqtt", b.ClientTLS(false), []string{"mqtt"})
	}
	c, err := tls.Dial("tcp", addr.String(), b.ClientTLS(false))
	require.NoError(t, err)
	return c
}

func TestTLSConfigValidate(t *testing.T) {
	b := testcert.New(t, clientCN)
	tests := []struct {
		name  string
		cfg   TLSConfig
		field string
	}{
		{"bad addr", TLSConfig{Addr: "127.0.0.1", TLS: b.ServerTLS(tls.NoClientCert)}, "Addr"},
		{"nil tls", TLSConfig{Addr: ":0"}, "TLS"},
		{"no certificate", TLSConfig{Addr: ":0", TLS: &tls12}, "TLS"},
		{"negative handshake", TLSConfig{Addr: ":0", TLS: b.ServerTLS(tls.NoClientCert), HandshakeTimeout: -1}, "HandshakeTimeout"},
		{"negative max buffered", TLSConfig{Addr: ":0", TLS: b.ServerTLS(tls.NoClientCert), MaxBuffered: -5}, "MaxBuffered"},
		{"negative close timeout", TLSConfig{Addr: ":0", TLS: b.ServerTLS(tls.NoClientCert), CloseTimeout: -1}, "CloseTimeout"},
		{"ok", TLSConfig{Addr: ":0", TLS: b.ServerTLS(tls.NoClientCert)}, ""},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			err := tt.cfg.Validate()
			if tt.field == "" {
				assert.NoError(t, err)
				return
			}
			var ce *ConfigError
			require.ErrorAs(t, err, &ce)
			assert.Equal(t, tt.field, ce.Field)
			assert.True(t, strings.Contains(err.Error(), tt.field))
		})
	}
}
