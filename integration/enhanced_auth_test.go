package integration

import (
	"crypto/hmac"
	"crypto/sha256"
	"errors"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/mqttd/mqttd/broker"
)

const (
	propAuthMethod byte = 0x15
	propAuthData   byte = 0x16
)

// challengeAuth is a toy challenge-response method for the tests: the
// client names itself, the server sends a nonce, the client answers with
// HMAC-SHA256(secret, nonce).
type challengeAuth struct{ secrets map[string]string }

type challengeState struct{ user, nonce string }

func (a challengeAuth) Start(_ string, data []byte) (broker.AuthStep, error) {
	user := string(data)
	if _, ok := a.secrets[user]; !ok {
		return broker.AuthStep{}, broker.ErrBadCredentials
	}
	nonce := "nonce-for-" + user
	return broker.AuthStep{Out: []byte(nonce), State: challengeState{user, nonce}}, nil
}

func (a challengeAuth) Continue(state any, data []byte) (broker.AuthStep, error) {
	st := state.(challengeState)
	if !hmac.Equal(data, macOf(a.secrets[st.user], st.nonce)) {
		return broker.AuthStep{}, errors.New("wrong response")
	}
	return broker.AuthStep{Done: true, User: st.user, Out: []byte("welcome")}, nil
}

func macOf(secret, nonce string) []byte {
	m := hmac.New(sha256.New, []byte(secret))
	m.Write([]byte(nonce))
	return m.Sum(nil)
}

func authPacket(reason byte, method string, data []byte) []byte {
	p := props{}.str(propAuthMethod, method).str(propAuthData, string(data))
	return frame(0xF0, appendProps([]byte{reason}, p))
}

// TestEnhancedAuth drives the AUTH exchange of MQTT 5 [MQTT-4.12]: CONNECT
// with a method, a challenge, the answer, CONNACK; refusals; and
// re-authentication of a connected client.
func TestEnhancedAuth(t *testing.T) {
	cfg := broker.Config{AllowAnonymous: true, EnhancedAuth: map[string]broker.EnhancedAuth{
		"X-CHALLENGE": challengeAuth{secrets: map[string]string{"dev1": "s3cret"}},
	}}
	s := start(t, cfg)

	connectWith := func(t *testing.T, method, user string) *rawConn {
		c := dialRaw(t, s.TCP, v5)
		c.write(t, connectOpts{Version: v5, ClientID: "ea", Clean: true,
			Props: props{}.str(propAuthMethod, method).str(propAuthData, user)}.encode())
		return c
	}

	t.Run("success", func(t *testing.T) {
		c := connectWith(t, "X-CHALLENGE", "dev1")
		ch := c.expect(t, pAUTH)
		require.Equal(t, byte(0x18), ch.Reason, "continue authentication")
		d, ok := ch.Props.get(propAuthData)
		require.True(t, ok)
		require.Equal(t, "nonce-for-dev1", string(d.Bytes))
		c.write(t, authPacket(0x18, "X-CHALLENGE", macOf("s3cret", string(d.Bytes))))
		ack := c.expect(t, pCONNACK)
		require.Equal(t, byte(0), ack.Reason)
		m, _ := ack.Props.get(propAuthMethod)
		assert.Equal(t, "X-CHALLENGE", string(m.Bytes))
		fin, _ := ack.Props.get(propAuthData)
		assert.Equal(t, "welcome", string(fin.Bytes))

		// Re-authentication while connected.
		c.write(t, authPacket(0x19, "X-CHALLENGE", []byte("dev1")))
		ch = c.expect(t, pAUTH)
		require.Equal(t, byte(0x18), ch.Reason)
		c.write(t, authPacket(0x18, "X-CHALLENGE", macOf("s3cret", "nonce-for-dev1")))
		done := c.expect(t, pAUTH)
		assert.Equal(t, byte(0x00), done.Reason, "re-authentication succeeded")

		// The session works.
		assert.Equal(t, []byte{1}, c.subscribe(t, nil, sub{Filter: "ea/t", QoS: 1}))
	})
	t.Run("wrong answer", func(t *testing.T) {
		c := connectWith(t, "X-CHALLENGE", "dev1")
		c.expect(t, pAUTH)
		c.write(t, authPacket(0x18, "X-CHALLENGE", []byte("guess")))
		assert.Equal(t, byte(0x87), c.expect(t, pCONNACK).Reason)
		c.expectClosed(t, 3*time.Second)
	})
	t.Run("unknown user", func(t *testing.T) {
		c := connectWith(t, "X-CHALLENGE", "nobody")
		assert.Equal(t, byte(0x87), c.expect(t, pCONNACK).Reason)
	})
	t.Run("unknown method", func(t *testing.T) {
		c := connectWith(t, "SCRAM-SHA-1", "dev1")
		assert.Equal(t, byte(0x8C), c.expect(t, pCONNACK).Reason)
	})
	t.Run("other packet during the exchange", func(t *testing.T) {
		c := connectWith(t, "X-CHALLENGE", "dev1")
		c.expect(t, pAUTH)
		c.write(t, subscribePacket(v5, 1, nil, sub{Filter: "a", QoS: 0}))
		c.expectClosed(t, 3*time.Second)
	})
	t.Run("AUTH without a method", func(t *testing.T) {
		c, _ := connectRaw(t, s.TCP, connectOpts{Version: v5, ClientID: "plain", Clean: true})
		c.write(t, authPacket(0x19, "X-CHALLENGE", []byte("dev1")))
		c.expectDisconnect(t, 0x82, 3*time.Second) // [MQTT-4.12.0-7]
	})
}
