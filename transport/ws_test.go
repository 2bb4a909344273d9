package transport

import (
	"io"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/gorilla/websocket"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

func TestWSSubprotocols(t *testing.T) {
	h := newTestHandler()
	l := listenT(t)(ListenWS(WSConfig{Addr: "127.0.0.1:0"}, h))
	url := "ws://" + l.Addr().String() + "/mqtt"

	tests := []struct {
		name    string
		offered []string
		want    string
	}{
		{"mqtt", []string{"mqtt"}, "mqtt"},
		{"mqtt 3.1", []string{"mqttv3.1"}, "mqttv3.1"},
		{"both, mqtt preferred", []string{"mqttv3.1", "mqtt"}, "mqtt"},
		{"none offered", nil, ""},
		{"unknown only", []string{"chat"}, ""},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			cl := dialWS(t, url, nil, tt.offered)
			defer cl.Close()
			assert.Equal(t, tt.want, cl.ws.Subprotocol())
			h.waitOpen(t)

			_, err := cl.Write([]byte("ping\n"))
			require.NoError(t, err)
			assert.Equal(t, "ping\n", string(readN(t, cl, 5)))
			require.NoError(t, cl.Close())
			assert.NoError(t, h.waitClose(t).err)
		})
	}
}

// TestWSTextMessage: a text frame closes the connection [MQTT-6.0.0-1].
func TestWSTextMessage(t *testing.T) {
	h := newTestHandler()
	l := listenT(t)(ListenWS(WSConfig{Addr: "127.0.0.1:0"}, h))
	cl := dialWS(t, "ws://"+l.Addr().String()+"/mqtt", nil, []string{"mqtt"})
	defer cl.Close()
	h.waitOpen(t)

	require.NoError(t, cl.ws.WriteMessage(websocket.TextMessage, []byte("hello\n")))
	assert.ErrorIs(t, h.waitClose(t).err, ErrNonBinary)
	readEOF(t, cl)
	h.checkOnce(t)
}

// TestWSCloseFrame: a close sent by the server carries a code saying why.
func TestWSCloseFrame(t *testing.T) {
	tests := []struct {
		name string
		act  func(c Conn) // on the server side, once open
		data string       // or a line the client sends
		code int
	}{
		{"Close", func(c Conn) { _ = c.Close() }, "", websocket.CloseNormalClosure},
		{"handler error", nil, "bye\n", websocket.CloseProtocolError},
		{"panic", nil, "panic\n", websocket.CloseInternalServerErr},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			h := newTestHandler()
			h.data = func(c Conn, b []byte) (int, error) {
				if string(b) == "bye\n" {
					return len(b), errBye
				}
				return echoLines(c, b)
			}
			l := listenT(t)(ListenWS(WSConfig{Addr: "127.0.0.1:0"}, h))
			cl := dialWS(t, "ws://"+l.Addr().String()+"/mqtt", nil, []string{"mqtt"})
			defer cl.Close()
			c := h.waitOpen(t)
			if tt.act != nil {
				tt.act(c)
			} else {
				_, err := cl.Write([]byte(tt.data))
				require.NoError(t, err)
			}
			_ = cl.ws.SetReadDeadline(time.Now().Add(waitFor))
			_, _, err := cl.ws.NextReader()
			assert.True(t, websocket.IsCloseError(err, tt.code), "got %v, want close code %d", err, tt.code)
			h.waitClose(t)
		})
	}
}

func TestWSPathAndOrigin(t *testing.T) {
	h := newTestHandler()
	l := listenT(t)(ListenWS(WSConfig{
		Addr: "127.0.0.1:0",
		Path: "/custom",
		CheckOrigin: func(r *http.Request) bool {
			o := r.Header.Get("Origin")
			return o == "" || o == "https://allowed.example"
		},
	}, h))
	base := "ws://" + l.Addr().String()

	// Another path is not found.
	_, resp, err := websocket.DefaultDialer.Dial(base+"/mqtt", nil)
	require.Error(t, err)
	require.NotNil(t, resp)
	assert.Equal(t, http.StatusNotFound, resp.StatusCode)
	_ = resp.Body.Close()

	// A plain GET on the path is refused by the upgrader.
	r, err := http.Get("http://" + l.Addr().String() + "/custom")
	require.NoError(t, err)
	body, _ := io.ReadAll(r.Body)
	_ = r.Body.Close()
	assert.Equal(t, http.StatusBadRequest, r.StatusCode, string(body))

	// CheckOrigin decides.
	hdr := http.Header{"Origin": []string{"https://evil.example"}}
	_, resp, err = websocket.DefaultDialer.Dial(base+"/custom", hdr)
	require.Error(t, err)
	require.NotNil(t, resp)
	assert.Equal(t, http.StatusForbidden, resp.StatusCode)
	_ = resp.Body.Close()

	hdr.Set("Origin", "https://allowed.example")
	ws, resp, err := websocket.DefaultDialer.Dial(base+"/custom", hdr)
	require.NoError(t, err)
	_ = resp.Body.Close()
	_ = ws.Close()
	h.waitOpen(t)
	assert.Empty(t, h.opened, "only the allowed origin got through")
}

func TestWSDefaultOriginAcceptsAny(t *testing.T) {
	h := newTestHandler()
	l := listenT(t)(ListenWS(WSConfig{Addr: "127.0.0.1:0"}, h))
	hdr := http.Header{"Origin": []string{"https://some-dashboard.example"}}
	ws, resp, err := websocket.DefaultDialer.Dial("ws://"+l.Addr().String()+"/mqtt", hdr)
	require.NoError(t, err)
	_ = resp.Body.Close()
	defer ws.Close()
	c := h.waitOpen(t)
	assert.Equal(t, "ws", c.Transport())
}

func TestWSConfigValidate(t *testing.T) {
	tests := []struct {
		name  string
		cfg   WSConfig
		field string
	}{
		{"bad addr", WSConfig{Addr: "nope"}, "Addr"},
		{"relative path", WSConfig{Addr: ":0", Path: "mqtt"}, "Path"},
		{"tls without cert", WSConfig{Addr: ":0", TLS: &tls12}, "TLS"},
		{"negative handshake", WSConfig{Addr: ":0", HandshakeTimeout: -1}, "HandshakeTimeout"},
		{"negative max buffered", WSConfig{Addr: ":0", MaxBuffered: -1}, "MaxBuffered"},
		{"negative read buffer", WSConfig{Addr: ":0", ReadBufferSize: -1}, "ReadBufferSize"},
		{"negative write buffer", WSConfig{Addr: ":0", WriteBufferSize: -1}, "WriteBufferSize"},
		{"negative close timeout", WSConfig{Addr: ":0", CloseTimeout: -1}, "CloseTimeout"},
		{"ok", WSConfig{Addr: ":0"}, ""},
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
			assert.True(t, strings.HasPrefix(err.Error(), "transport: "))
		})
	}
	_, err := ListenWS(WSConfig{Addr: "127.0.0.1:0"}, nil)
	var ce *ConfigError
	require.ErrorAs(t, err, &ce)
	assert.Equal(t, "Handler", ce.Field)
}
