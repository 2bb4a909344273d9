package integration

import (
	"bytes"
	"crypto/tls"
	"errors"
	"io"
	"net"
	"sync"
	"testing"
	"time"

	"github.com/eclipse/paho.golang/paho"
	mqtt "github.com/eclipse/paho.mqtt.golang"
	"github.com/gorilla/websocket"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/mqttd/mqttd/broker"
	"github.com/mqttd/mqttd/internal/brokertest"
)

// wsConn presents a WebSocket as a net.Conn of MQTT bytes (binary
// messages), for paho.golang, which takes a net.Conn.
type wsConn struct {
	ws  *websocket.Conn
	rmu sync.Mutex
	r   io.Reader // the current message
	wmu sync.Mutex
}

func (c *wsConn) Read(b []byte) (int, error) {
	c.rmu.Lock()
	defer c.rmu.Unlock()
	for {
		if c.r == nil {
			typ, r, err := c.ws.NextReader()
			if err != nil {
				return 0, err
			}
			if typ != websocket.BinaryMessage {
				return 0, errors.New("broker sent a non-binary WebSocket message")
			}
			c.r = r
		}
		n, err := c.r.Read(b)
		if errors.Is(err, io.EOF) {
			c.r = nil
			if n > 0 {
				return n, nil
			}
			continue
		}
		return n, err
	}
}

func (c *wsConn) Write(b []byte) (int, error) {
	c.wmu.Lock()
	defer c.wmu.Unlock()
	if err := c.ws.WriteMessage(websocket.BinaryMessage, b); err != nil {
		return 0, err
	}
	return len(b), nil
}

func (c *wsConn) Close() error                       { return c.ws.Close() }
func (c *wsConn) LocalAddr() net.Addr                { return c.ws.LocalAddr() }
func (c *wsConn) RemoteAddr() net.Addr               { return c.ws.RemoteAddr() }
func (c *wsConn) SetReadDeadline(t time.Time) error  { return c.ws.SetReadDeadline(t) }
func (c *wsConn) SetWriteDeadline(t time.Time) error { return c.ws.SetWriteDeadline(t) }
func (c *wsConn) SetDeadline(t time.Time) error {
	return errors.Join(c.ws.SetReadDeadline(t), c.ws.SetWriteDeadline(t))
}

// wsDial opens an MQTT-over-WebSocket connection (subprotocol "mqtt").
func wsDial(t testing.TB, url string, cfg *tls.Config) (net.Conn, error) {
	t.Helper()
	d := websocket.Dialer{Subprotocols: []string{"mqtt"}, TLSClientConfig: cfg, HandshakeTimeout: waitMsg}
	ws, resp, err := d.Dial(url, nil)
	if resp != nil && resp.Body != nil {
		_ = resp.Body.Close()
	}
	if err != nil {
		return nil, err
	}
	t.Cleanup(func() { _ = ws.Close() })
	if ws.Subprotocol() != "mqtt" {
		return nil, errors.New("WebSocket subprotocol " + ws.Subprotocol() + ", want mqtt")
	}
	return &wsConn{ws: ws}, nil
}

// transportClient connects a client of version v over transport kind
// ("tls", "ws", "wss").
func transportClient(t *testing.T, s *brokertest.Server, kind string, v byte, id string) client {
	t.Helper()
	cfg := s.Cert.ClientTLS(false)
	if v == v5 {
		var conn net.Conn
		switch kind {
		case "tls":
			conn = tlsDial(t, s.TLS, cfg)
		case "ws":
			c, err := wsDial(t, "ws://"+s.WS+"/mqtt", nil)
			require.NoError(t, err)
			conn = c
		case "wss":
			c, err := wsDial(t, "wss://"+s.WSS+"/mqtt", cfg)
			require.NoError(t, err)
			conn = c
		}
		c, ack, err := dialV5(t, conn, &paho.Connect{ClientID: id, CleanStart: true, KeepAlive: 30})
		require.NoError(t, err, "MQTT 5 over %s: CONNACK %+v", kind, ack)
		return c
	}
	url := map[string]string{"tls": "ssl://" + s.TLS, "ws": "ws://" + s.WS + "/mqtt", "wss": "wss://" + s.WSS + "/mqtt"}[kind]
	return connectV3(t, url, id, true, func(o *mqtt.ClientOptions) { o.SetTLSConfig(cfg) })
}

// TestTransports runs publish/subscribe over TLS, WebSocket and secure
// WebSocket, in both directions against a TCP client, with both protocol
// versions, including a payload larger than one WebSocket frame buffer.
func TestTransports(t *testing.T) {
	t.Parallel()
	s := brokertest.Start(t, brokertest.Options{Config: anon(), TLS: true, WS: true, WSS: true})
	tcp := newClient(t, s, v5, "tcp")
	big := bytes.Repeat([]byte("0123456789"), 10<<10)
	for _, kind := range []string{"tls", "ws", "wss"} {
		for _, v := range []byte{v311, v5} {
			name := kind + "_" + versionName(v)
			t.Run(name, func(t *testing.T) {
				c := transportClient(t, s, kind, v, "c"+name)
				topic := "tr/" + name
				require.Equal(t, byte(1), c.Sub(t, topic+"/in", 1))
				require.Equal(t, byte(1), tcp.Sub(t, topic+"/out", 1))

				tcp.Pub(t, topic+"/in", []byte("to "+kind), 1, false)
				assert.Equal(t, "to "+kind, string(c.Recv(t).Payload))
				tcp.Pub(t, topic+"/in", big, 1, false)
				assert.True(t, bytes.Equal(big, c.Recv(t).Payload), "100 KB payload changed over %s", kind)

				c.Pub(t, topic+"/out", []byte("from "+kind), 2, false)
				m := tcp.Recv(t)
				assert.Equal(t, topic+"/out", m.Topic)
				assert.Equal(t, "from "+kind, string(m.Payload))
				c.Pub(t, topic+"/out", big, 1, false)
				assert.True(t, bytes.Equal(big, tcp.Recv(t).Payload), "100 KB payload from %s changed", kind)
				c.Close()
			})
		}
	}

	t.Run("ws_wrong_path", func(t *testing.T) {
		_, err := wsDial(t, "ws://"+s.WS+"/nope", nil)
		assert.Error(t, err, "WebSocket upgrade on a path other than /mqtt")
	})
	t.Run("tls_untrusted_client", func(t *testing.T) {
		// A client that does not trust the broker's CA fails the handshake.
		_, err := tls.Dial("tcp", s.TLS, &tls.Config{ServerName: "localhost", MinVersion: tls.VersionTLS12})
		assert.Error(t, err)
	})
}

// TestTLSClientCertificates: with client certificates required, a client
// without one cannot connect; one with a certificate can, and an
// Authenticator may accept the certificate's CN in place of a username.
func TestTLSClientCertificates(t *testing.T) {
	t.Parallel()
	auth := &testAuth{certCN: brokertest.ClientCN, grants: map[string][]grant{
		brokertest.ClientCN: {{"dev/#", broker.AccessPublish | broker.AccessSubscribe}},
	}}
	s := brokertest.Start(t, brokertest.Options{Config: broker.Config{Users: auth}, TLS: true, WSS: true,
		ClientAuth: tls.RequireAndVerifyClientCert})

	t.Run("without_cert", func(t *testing.T) {
		conn, err := tls.Dial("tcp", s.TLS, s.Cert.ClientTLS(false))
		if err == nil {
			// TLS 1.3 reports the missing certificate on the first read.
			defer conn.Close()
			_, err = conn.Write(connectOpts{Version: v5, ClientID: "nocert", Clean: true}.encode())
			if err == nil {
				_ = conn.SetReadDeadline(time.Now().Add(waitMsg))
				_, err = conn.Read(make([]byte, 16))
			}
		}
		assert.Error(t, err, "a client without a certificate got through")
	})

	t.Run("cert_as_identity", func(t *testing.T) {
		conn := tlsDial(t, s.TLS, s.Cert.ClientTLS(true))
		c, ack, err := dialV5(t, conn, &paho.Connect{ClientID: "certified", CleanStart: true, KeepAlive: 30})
		require.NoError(t, err, "client certificate CN %q not accepted as identity: CONNACK %+v, Authenticate calls %v",
			brokertest.ClientCN, ack, auth.Calls())
		require.Equal(t, byte(1), c.Sub(t, "dev/t", 1))
		c.Pub(t, "dev/t", []byte("signed"), 1, false)
		assert.Equal(t, "signed", string(c.Recv(t).Payload))
	})

	t.Run("wss_with_cert", func(t *testing.T) {
		conn, err := wsDial(t, "wss://"+s.WSS+"/mqtt", s.Cert.ClientTLS(true))
		require.NoError(t, err)
		_, ack, err := dialV5(t, conn, &paho.Connect{ClientID: "wsscert", CleanStart: true, KeepAlive: 30})
		require.NoError(t, err, "CONNACK %+v", ack)
	})

	t.Run("tcp_anonymous_refused", func(t *testing.T) {
		c := dialRaw(t, s.TCP, v5)
		assert.Equal(t, byte(0x87), c.connect(t, connectOpts{Version: v5, ClientID: "plain", Clean: true}).Reason)
	})
}
