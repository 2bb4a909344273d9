package integration

import (
	"strings"
	"sync"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/mqttd/mqttd/broker"
)

// grant allows access to the topics a filter matches.
type grant struct {
	filter string
	access broker.Access
}

// testAuth is an in-memory broker.Authenticator: users with passwords,
// grants per user, and optionally a client certificate CN that stands in
// for a user.
type testAuth struct {
	users  map[string]string
	grants map[string][]grant
	certCN string // when set, a TLS client with this CN and no username is user certCN

	mu    sync.Mutex
	calls []string // "user/certCN" per Authenticate call
}

func (a *testAuth) Authenticate(username, password []byte, certCN string) (string, error) {
	a.mu.Lock()
	a.calls = append(a.calls, string(username)+"/"+certCN)
	a.mu.Unlock()
	if len(username) == 0 && a.certCN != "" && certCN == a.certCN {
		return certCN, nil
	}
	if pw, ok := a.users[string(username)]; ok && len(username) > 0 && pw == string(password) {
		return string(username), nil
	}
	return "", broker.ErrBadCredentials
}

// Calls returns the Authenticate calls so far, for failure messages.
func (a *testAuth) Calls() []string {
	a.mu.Lock()
	defer a.mu.Unlock()
	return append([]string(nil), a.calls...)
}

func (a *testAuth) Allow(user, topicOrFilter string, access broker.Access) bool {
	for _, g := range a.grants[user] {
		if g.access&access != 0 && filterMatches(g.filter, topicOrFilter) {
			return true
		}
	}
	return false
}

// filterMatches reports whether filter matches topic (a subscription filter
// given as topic matches when each of its levels is matched literally).
func filterMatches(filter, topic string) bool {
	f, tl := strings.Split(filter, "/"), strings.Split(topic, "/")
	for i, lvl := range f {
		if lvl == "#" {
			return true
		}
		if i >= len(tl) || (lvl != "+" && lvl != tl[i]) {
			return false
		}
	}
	return len(f) == len(tl)
}

func authConfig() broker.Config {
	return broker.Config{Users: &testAuth{
		users: map[string]string{"alice": "alice-secret", "root": "root-secret"},
		grants: map[string][]grant{
			"alice": {{"alice/#", broker.AccessPublish | broker.AccessSubscribe}, {"news/#", broker.AccessSubscribe}},
			"root":  {{"#", broker.AccessPublish | broker.AccessSubscribe}},
		},
	}}
}

// TestAnonymousRefused: without AllowAnonymous a client without a username
// gets CONNACK 0x05 (3.1.1) / 0x87 (5) and is closed.
func TestAnonymousRefused(t *testing.T) {
	t.Parallel()
	for _, cfg := range []struct {
		name string
		cfg  broker.Config
	}{{"no_users", broker.Config{}}, {"with_users", authConfig()}} {
		for _, v := range []byte{v311, v5} {
			t.Run(cfg.name+"_"+versionName(v), func(t *testing.T) {
				s := start(t, cfg.cfg)
				c := dialRaw(t, s.TCP, v)
				ack := c.connect(t, connectOpts{Version: v, ClientID: "anon", Clean: true})
				want := byte(0x05)
				if v == v5 {
					want = 0x87
				}
				assert.Equalf(t, want, ack.Reason, "anonymous CONNACK 0x%02x, want 0x%02x", ack.Reason, want)
				c.expectClosed(t, waitMsg)
			})
		}
	}
}

// TestAuthentication: right credentials connect; a wrong password, an
// unknown user or a missing password get CONNACK 0x04 (3.1.1) / 0x86 (5).
func TestAuthentication(t *testing.T) {
	t.Parallel()
	for name, cfg := range authConfigs(t) {
		t.Run(name, func(t *testing.T) { testAuthentication(t, cfg) })
	}
}

func testAuthentication(t *testing.T, cfg broker.Config) {
	s := start(t, cfg)
	cases := []struct {
		name     string
		user, pw *string
		ok       bool
	}{
		{"good", strp("alice"), strp("alice-secret"), true},
		{"wrong_password", strp("alice"), strp("nope"), false},
		{"unknown_user", strp("mallory"), strp("alice-secret"), false},
		{"no_password", strp("alice"), nil, false},
	}
	for _, tc := range cases {
		for _, v := range []byte{v311, v5} {
			t.Run(tc.name+"_"+versionName(v), func(t *testing.T) {
				c := dialRaw(t, s.TCP, v)
				ack := c.connect(t, connectOpts{Version: v, ClientID: "u" + tc.name, Clean: true, Username: tc.user, Password: tc.pw})
				if tc.ok {
					require.Equal(t, byte(0), ack.Reason, "%s", ack)
					c.ping(t)
					return
				}
				want := byte(0x04)
				if v == v5 {
					want = 0x86
				}
				assert.Equalf(t, want, ack.Reason, "CONNACK 0x%02x, want 0x%02x", ack.Reason, want)
				c.expectClosed(t, waitMsg)
			})
		}
	}
}

// TestAuthorization: publishing outside one's grants is MQTT 5 PUBACK or
// PUBREC 0x87 (DISCONNECT 0x87 at QoS 0) and a close in 3.1.1; subscribing
// outside them is SUBACK 0x80 / 0x87. Refused messages reach nobody.
func TestAuthorization(t *testing.T) {
	t.Parallel()
	for name, cfg := range authConfigs(t) {
		t.Run(name, func(t *testing.T) { testAuthorization(t, cfg) })
	}
}

func testAuthorization(t *testing.T, cfg broker.Config) {
	s := start(t, cfg)
	root, _ := connectRaw(t, s.TCP, connectOpts{Version: v5, ClientID: "root", Clean: true, Username: strp("root"), Password: strp("root-secret")})
	require.Equal(t, []byte{1}, root.subscribe(t, nil, sub{Filter: "#", QoS: 1}))
	alice := func(t *testing.T, v byte, id string) *rawConn {
		c, _ := connectRaw(t, s.TCP, connectOpts{Version: v, ClientID: id, Clean: true, Username: strp("alice"), Password: strp("alice-secret")})
		return c
	}
	// expectOnly checks what root saw before the marker.
	expectOnly := func(t *testing.T, want ...string) {
		t.Helper()
		root.publish(t, pub{Topic: "end", QoS: 1})
		got, _ := root.recvUntil(t, "end")
		var payloads []string
		for _, p := range got {
			payloads = append(payloads, string(p.Payload))
		}
		assert.Equal(t, want, payloads, "messages delivered")
	}

	t.Run("v5_publish", func(t *testing.T) {
		c := alice(t, v5, "a5")
		assert.Equal(t, byte(0), c.publish(t, pub{Topic: "alice/x", Payload: []byte("allowed"), QoS: 1}))
		assert.Equal(t, byte(0x87), c.publish(t, pub{Topic: "bob/x", Payload: []byte("denied1"), QoS: 1}))
		assert.Equal(t, byte(0x87), c.publish(t, pub{Topic: "bob/x", Payload: []byte("denied2"), QoS: 2}))
		assert.Equal(t, byte(0x87), c.publish(t, pub{Topic: "news/x", Payload: []byte("subscribe-only"), QoS: 1}))
		c.write(t, pub{Topic: "bob/x", Payload: []byte("denied0")}.encode(v5))
		c.expectDisconnect(t, 0x87, waitMsg)
		expectOnly(t, "allowed")
	})

	t.Run("v311_publish", func(t *testing.T) {
		c := alice(t, v311, "a3")
		assert.Equal(t, byte(0), c.publish(t, pub{Topic: "alice/y", Payload: []byte("allowed"), QoS: 1}))
		c.write(t, pub{Topic: "bob/x", Payload: []byte("denied"), QoS: 1, PacketID: 9}.encode(v311))
		assert.Empty(t, c.expectClosed(t, waitMsg), "3.1.1 unauthorized publish: close without PUBACK")
		expectOnly(t, "allowed")
	})

	for _, v := range []byte{v311, v5} {
		t.Run("subscribe_"+versionName(v), func(t *testing.T) {
			c := alice(t, v, "s"+versionName(v))
			deny := byte(0x80)
			if v == v5 {
				deny = 0x87
			}
			codes := c.subscribe(t, nil, sub{Filter: "alice/#", QoS: 1}, sub{Filter: "bob/#", QoS: 1}, sub{Filter: "news/+", QoS: 1}, sub{Filter: "#", QoS: 1})
			assert.Equal(t, []byte{1, deny, 1, deny}, codes)
			root.publish(t, pub{Topic: "bob/z", Payload: []byte("not for alice"), QoS: 1})
			root.publish(t, pub{Topic: "news/z", Payload: []byte("news"), QoS: 1})
			assert.Equal(t, "news", string(c.recv(t).Payload), "a refused subscription delivered")
		})
	}
}

// TestDenySubscribe: a filter listed in DenySubscribe is refused with
// SUBACK 0x80 in both versions (the deny rule is an operator's setting, not
// a user's missing grant, which is 0x87 in MQTT 5); other filters, even
// overlapping ones, are not.
func TestDenySubscribe(t *testing.T) {
	t.Parallel()
	s := start(t, broker.Config{AllowAnonymous: true, DenySubscribe: []string{"secret/#", "#"}})
	for _, v := range []byte{v311, v5} {
		t.Run(versionName(v), func(t *testing.T) {
			c, _ := connectRaw(t, s.TCP, connectOpts{Version: v, ClientID: "d" + versionName(v), Clean: true})
			deny := byte(0x80)
			codes := c.subscribe(t, nil, sub{Filter: "secret/#", QoS: 1}, sub{Filter: "#", QoS: 1}, sub{Filter: "secret/x", QoS: 1}, sub{Filter: "+/y", QoS: 1})
			assert.Equal(t, []byte{deny, deny, 1, 1}, codes)
		})
	}
}
