package integration

import (
	"bufio"
	"crypto/tls"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/mqttd/mqttd/auth"
	"github.com/mqttd/mqttd/broker"
	"github.com/mqttd/mqttd/internal/brokertest"
	"github.com/mqttd/mqttd/session"
)

// newAuthDB is the real user database (bcrypt at the cheapest cost) with
// the users of authConfig.
func newAuthDB(t testing.TB, cfg auth.Config) *auth.DB {
	t.Helper()
	cfg.Cost = 4
	db, err := auth.New(session.NewMemKV(), cfg)
	require.NoError(t, err)
	require.NoError(t, db.AddUser("alice", "alice-secret", []auth.Grant{
		{Filter: "alice/#", Access: auth.AccessPubSub}, {Filter: "news/#", Access: auth.AccessSub}}))
	require.NoError(t, db.AddUser("root", "root-secret", []auth.Grant{{Filter: "#", Access: auth.AccessPubSub}}))
	return db
}

// authConfigs runs the authentication and authorization tests against
// the in-test Authenticator and against package auth.
func authConfigs(t testing.TB) map[string]broker.Config {
	return map[string]broker.Config{
		"fake":   authConfig(),
		"authdb": {Users: newAuthDB(t, auth.Config{})},
	}
}

// TestGrantsWillAndShared: with package auth, a will and a shared
// subscription are held to the user's grants like any publish and
// subscription.
func TestGrantsWillAndShared(t *testing.T) {
	t.Parallel()
	s := start(t, broker.Config{Users: newAuthDB(t, auth.Config{})})
	for _, v := range []byte{v311, v5} {
		t.Run(versionName(v), func(t *testing.T) {
			c := dialRaw(t, s.TCP, v)
			ack := c.connect(t, connectOpts{Version: v, ClientID: "w" + versionName(v), Clean: true,
				Username: strp("alice"), Password: strp("alice-secret"),
				Will: &will{Topic: "bob/status", Payload: "gone"}})
			want := byte(0x05)
			if v == v5 {
				want = 0x87
			}
			assert.Equal(t, want, ack.Reason, "a will outside the grants")

			c, _ = connectRaw(t, s.TCP, connectOpts{Version: v, ClientID: "s" + versionName(v), Clean: true,
				Username: strp("alice"), Password: strp("alice-secret"), Will: &will{Topic: "alice/status", Payload: "gone"}})
			deny := byte(0x80)
			if v == v5 {
				deny = 0x87
			}
			codes := c.subscribe(t, nil, sub{Filter: "$share/g/alice/+", QoS: 1}, sub{Filter: "$share/g/bob/+", QoS: 1})
			assert.Equal(t, []byte{1, deny}, codes, "shared subscriptions are checked on their filter")
		})
	}
}

// TestMutualTLSWithAuthDB: a required client certificate whose CN names a
// user logs in as that user without a password; without a certificate
// the TLS handshake fails.
func TestMutualTLSWithAuthDB(t *testing.T) {
	t.Parallel()
	db := newAuthDB(t, auth.Config{CertCNAsUsername: true})
	require.NoError(t, db.AddUser(brokertest.ClientCN, "", []auth.Grant{{Filter: "dev/#", Access: auth.AccessPubSub}}))
	s := brokertest.Start(t, brokertest.Options{Config: broker.Config{Users: db}, TLS: true, ClientAuth: tls.RequireAndVerifyClientCert})

	conn := tlsDial(t, s.TLS, s.Cert.ClientTLS(true))
	c := &rawConn{conn: conn, br: bufio.NewReaderSize(conn, 64<<10), version: v5}
	ack := c.connect(t, connectOpts{Version: v5, ClientID: "mtls", Clean: true})
	require.Equal(t, byte(0), ack.Reason, "the certificate's CN is the user")
	assert.Equal(t, []byte{1, 0x87}, c.subscribe(t, nil, sub{Filter: "dev/+", QoS: 1}, sub{Filter: "alice/+", QoS: 1}))

	// No certificate: the handshake is refused.
	raw, err := tls.Dial("tcp", s.TLS, s.Cert.ClientTLS(false))
	if err == nil {
		_ = raw.SetReadDeadline(time.Now().Add(3 * time.Second))
		_, err = raw.Read(make([]byte, 1))
		_ = raw.Close()
	}
	assert.Error(t, err, "a TLS client without a certificate got through")
}
