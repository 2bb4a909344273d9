package main

import (
	"bytes"
	"io"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/rs/zerolog"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

func writeFile(t *testing.T, body string) string {
	t.Helper()
	p := filepath.Join(t.TempDir(), "mqttd.yaml")
	require.NoError(t, os.WriteFile(p, []byte(body), 0o600))
	return p
}

func TestConfigFileAndFlags(t *testing.T) {
	cfg := writeFile(t, `
allow-anonymous: true
max-packet: 64KiB
max-keepalive: 60
deny-subscribe: ["test/nosubscribe", "secret/#"]
names: mqtt
mqtt.addr: 127.0.0.1:1999
`)
	o, err := parseOptions([]string{"-config", cfg, "-max-keepalive", "30"})
	require.NoError(t, err)
	assert.True(t, o.allowAnonymous)
	assert.Equal(t, byteSize(64<<10), o.maxPacket)
	assert.EqualValues(t, 30, o.maxKeepAlive, "the command line wins over the file")
	assert.Equal(t, listFlag{"test/nosubscribe", "secret/#"}, o.denySubscribe)
	assert.Equal(t, "mqtt", o.names)
	assert.Equal(t, "127.0.0.1:1999", o.mqttAddr)
	require.NoError(t, o.validate())
}

func TestConfigErrors(t *testing.T) {
	cases := map[string]string{
		"unknown key": "no-such-setting: 1\n",
		"bad size":    "max-packet: lots\n",
		"not yaml":    "max-packet: [\n",
		"empty value": "names:\n",
		"bad bool":    "allow-anonymous: maybe\n",
	}
	for name, body := range cases {
		t.Run(name, func(t *testing.T) {
			_, err := parseOptions([]string{"-config", writeFile(t, body)})
			assert.Error(t, err)
		})
	}
	_, err := parseOptions([]string{"-config", filepath.Join(t.TempDir(), "missing.yaml")})
	assert.Error(t, err)
	_, err = parseOptions([]string{"stray"})
	assert.Error(t, err)

	for _, args := range [][]string{
		{"-names", "loose"},
		{"-receive-maximum", "0"},
		{"-tls.cert", "x.pem"},
		{"-tls.client-auth", "sometimes"},
		{"-max-connections", "-1"},
	} {
		o, err := parseOptions(args)
		require.NoError(t, err, args)
		assert.Error(t, o.validate(), args)
	}
}

func TestByteSize(t *testing.T) {
	for in, want := range map[string]int{"131072": 131072, "128KiB": 128 << 10, "1MiB": 1 << 20, "2 KB": 2000, "10B": 10} {
		var b byteSize
		require.NoError(t, b.Set(in), in)
		assert.Equal(t, want, int(b), in)
	}
	var b byteSize
	assert.Error(t, b.Set("-1"))
	assert.Error(t, b.Set("12XB"))
}

// TestStartAndStop runs the wiring: a broker with the store in a temp dir
// accepts an MQTT connection, and stop closes everything.
func TestStartAndStop(t *testing.T) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	require.NoError(t, err)
	addr := ln.Addr().String()
	require.NoError(t, ln.Close())
	o, err := parseOptions([]string{"-allow-anonymous", "-mqtt.addr", addr, "-ws.addr", "off", "-admin.addr", "127.0.0.1:0",
		"-data-dir", t.TempDir(), "-log.level", "warn"})
	require.NoError(t, err)
	srv, err := start(o, zerolog.Nop())
	require.NoError(t, err)
	c, err := net.DialTimeout("tcp", addr, 2*time.Second)
	require.NoError(t, err)
	// CONNECT, 3.1.1, clean session, client id "t".
	_, err = c.Write([]byte{0x10, 13, 0, 4, 'M', 'Q', 'T', 'T', 4, 2, 0, 30, 0, 1, 't'})
	require.NoError(t, err)
	ack := make([]byte, 4)
	_ = c.SetReadDeadline(time.Now().Add(2 * time.Second))
	_, err = c.Read(ack)
	require.NoError(t, err)
	assert.Equal(t, []byte{0x20, 2, 0, 0}, ack)
	_ = c.Close()
	srv.stop()
}

func TestStartRefusesAllListenersOff(t *testing.T) {
	o, err := parseOptions([]string{"-mqtt.addr", "off", "-ws.addr", "off", "-persistence=false"})
	require.NoError(t, err)
	_, err = start(o, zerolog.Nop())
	assert.ErrorContains(t, err, "every listener is off")
}

func TestStartRefusesForeignDataDir(t *testing.T) {
	dir := t.TempDir()
	require.NoError(t, os.WriteFile(filepath.Join(dir, "notes.txt"), []byte("mine"), 0o600))
	o, err := parseOptions([]string{"-mqtt.addr", "127.0.0.1:0", "-ws.addr", "off", "-data-dir", dir})
	require.NoError(t, err)
	_, err = start(o, zerolog.Nop())
	assert.ErrorContains(t, err, "holds no mqttd store")
}

func TestHelpExitsZero(t *testing.T) {
	var out bytes.Buffer
	assert.Equal(t, 0, run([]string{"-h"}, &out))
	assert.Equal(t, 2, run([]string{"-names", "x"}, &out))
}

// connect311 sends a 3.1.1 CONNECT with a username and password and
// returns the CONNACK return code.
func connect311(t *testing.T, addr, id, user, pass string) byte {
	t.Helper()
	c, err := net.DialTimeout("tcp", addr, 2*time.Second)
	require.NoError(t, err)
	defer c.Close()
	str := func(b []byte, s string) []byte { return append(append(b, byte(len(s)>>8), byte(len(s))), s...) }
	body := str(nil, "MQTT")
	body = append(body, 4, 0xC2, 0, 30) // level 4; username, password, clean session; keepalive 30
	body = str(body, id)
	body = str(body, user)
	body = str(body, pass)
	_, err = c.Write(append([]byte{0x10, byte(len(body))}, body...))
	require.NoError(t, err)
	ack := make([]byte, 4)
	_ = c.SetReadDeadline(time.Now().Add(3 * time.Second))
	_, err = io.ReadFull(c, ack)
	require.NoError(t, err)
	return ack[3]
}

// TestUsersFile: -users loads accounts into the store; passwords are
// checked, and the accounts survive a restart without the file.
func TestUsersFile(t *testing.T) {
	users := writeFile(t, `
users:
  - name: alice
    password: alice-secret
    grants: [{filter: "meter/#", access: pubsub}]
`)
	dataDir := t.TempDir()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	require.NoError(t, err)
	addr := ln.Addr().String()
	require.NoError(t, ln.Close())
	run := func(extra ...string) *server {
		o, err := parseOptions(append([]string{"-mqtt.addr", addr, "-ws.addr", "off", "-admin.addr", "127.0.0.1:0", "-data-dir", dataDir,
			"-auth.bcrypt-cost", "4"}, extra...))
		require.NoError(t, err)
		require.NoError(t, o.validate())
		srv, err := start(o, zerolog.Nop())
		require.NoError(t, err)
		return srv
	}
	srv := run("-users", users)
	assert.Equal(t, byte(0), connect311(t, addr, "a1", "alice", "alice-secret"))
	assert.Equal(t, byte(4), connect311(t, addr, "a2", "alice", "wrong-password"))
	assert.Equal(t, byte(4), connect311(t, addr, "a3", "mallory", "alice-secret"))
	srv.stop()

	srv = run() // no -users: the account is in the store
	defer srv.stop()
	assert.Equal(t, byte(0), connect311(t, addr, "a4", "alice", "alice-secret"))
}

// TestAdminWithoutKafka: the admin listener runs without the bridge; its
// token is checked, and the parent-topic routes say the bridge is off.
func TestAdminWithoutKafka(t *testing.T) {
	o, err := parseOptions([]string{"-mqtt.addr", "127.0.0.1:0", "-ws.addr", "off", "-persistence=false",
		"-admin.addr", "127.0.0.1:0", "-admin.token", "tok"})
	require.NoError(t, err)
	srv, err := start(o, zerolog.Nop())
	require.NoError(t, err)
	defer srv.stop()
	base := "http://" + srv.admin.Addr()
	get := func(path, token string) int {
		req, _ := http.NewRequest(http.MethodGet, base+path, nil)
		if token != "" {
			req.Header.Set("Authorization", "Bearer "+token)
		}
		resp, err := http.DefaultClient.Do(req)
		require.NoError(t, err)
		resp.Body.Close()
		return resp.StatusCode
	}
	assert.Equal(t, http.StatusOK, get("/healthz", ""))
	assert.Equal(t, http.StatusUnauthorized, get("/api/v1/parent-topics", ""))
	assert.Equal(t, http.StatusUnauthorized, get("/api/v1/parent-topics", "wrong"))
	assert.Equal(t, http.StatusServiceUnavailable, get("/api/v1/parent-topics", "tok"))

	resp, err := http.Get(base + "/metrics")
	require.NoError(t, err)
	body, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	assert.Contains(t, string(body), "# TYPE mqttd_connections gauge")
	assert.Contains(t, string(body), "mqttd_messages_in_total 0")
}

func TestKafkaNeedsPersistence(t *testing.T) {
	o, err := parseOptions([]string{"-mqtt.addr", "127.0.0.1:0", "-ws.addr", "off", "-admin.addr", "off",
		"-persistence=false", "-kafka.brokers", "127.0.0.1:1"})
	require.NoError(t, err)
	_, err = start(o, zerolog.Nop())
	assert.ErrorContains(t, err, "needs -persistence")
}

// publishQoS1 connects anonymously (3.1.1), publishes QoS 1 to topic and
// reports whether a PUBACK came back.
func publishQoS1(t *testing.T, addr, topic string) bool {
	t.Helper()
	c, err := net.DialTimeout("tcp", addr, 2*time.Second)
	require.NoError(t, err)
	defer c.Close()
	_, err = c.Write([]byte{0x10, 13, 0, 4, 'M', 'Q', 'T', 'T', 4, 2, 0, 30, 0, 1, 'p'})
	require.NoError(t, err)
	ack := make([]byte, 4)
	_ = c.SetReadDeadline(time.Now().Add(3 * time.Second))
	_, err = io.ReadFull(c, ack)
	require.NoError(t, err)
	require.Equal(t, []byte{0x20, 2, 0, 0}, ack)
	body := append([]byte{0, byte(len(topic))}, topic...)
	body = append(body, 0, 7, 'x')
	_, err = c.Write(append([]byte{0x32, byte(len(body))}, body...))
	require.NoError(t, err)
	_, err = io.ReadFull(c, ack)
	return err == nil && ack[0] == 0x40 && ack[3] == 7
}

// TestAnonymousAccess: with -allow-anonymous, anonymous clients may use
// $-topics too (not $SYS); -anonymous.access narrows what they may do.
func TestAnonymousAccess(t *testing.T) {
	for _, tc := range []struct {
		access string
		topic  string
		ok     bool
	}{
		{"pubsub", "a/b", true},
		{"pubsub", "$TopicA/B", true},
		{"pubsub", "$SYS/x", false},
		{"sub", "a/b", false},
	} {
		t.Run(tc.access+" "+tc.topic, func(t *testing.T) {
			o, err := parseOptions([]string{"-mqtt.addr", "127.0.0.1:0", "-ws.addr", "off", "-admin.addr", "off",
				"-persistence=false", "-names", "mqtt", "-allow-anonymous", "-anonymous.access", tc.access})
			require.NoError(t, err)
			srv, err := start(o, zerolog.Nop())
			require.NoError(t, err)
			defer srv.stop()
			assert.Equal(t, tc.ok, publishQoS1(t, srv.listeners[0].Addr().String(), tc.topic))
		})
	}
}
