package broker

import (
	"bytes"

	"github.com/mqttd/mqttd/codec"
)

// EnhancedAuth performs MQTT 5 enhanced authentication [MQTT-4.12] for
// one Authentication Method (SCRAM, Kerberos, a token scheme...). The
// broker drives the AUTH exchange; the implementation judges each step.
// Methods are called on event loops: they must be fast and must not block
// (keep credentials in memory). Safe for concurrent use.
type EnhancedAuth interface {
	// Start begins an exchange with the client's first Authentication
	// Data (from CONNECT, or from AUTH 0x19 when re-authenticating).
	// It returns either done with the authenticated user (and optional
	// final data for the client), or a challenge (out) and a state for
	// Continue, or an error (ErrBadCredentials or any other refusal).
	Start(clientID string, data []byte) (st AuthStep, err error)
	// Continue takes the client's next Authentication Data (AUTH 0x18).
	Continue(state any, data []byte) (st AuthStep, err error)
}

// AuthStep is the outcome of one step of enhanced authentication.
type AuthStep struct {
	Done  bool   // authenticated
	User  string // the user, when Done
	Out   []byte // data for the client: a challenge, or final data when Done
	State any    // carried to the next Continue when not Done
}

// authOutcome is what an enhanced exchange decided, for the CONNACK.
type authOutcome struct {
	method string
	user   string
	data   []byte
}

// authExchange is an enhanced authentication in progress. Loop-owned.
type authExchange struct {
	method  string
	impl    EnhancedAuth
	state   any
	connect *codec.Connect // the CONNECT waiting for the outcome; nil when re-authenticating
}

// startEnhancedAuth handles a CONNECT with an Authentication Method.
func (c *conn) startEnhancedAuth(p *codec.Connect) error {
	method := string(p.Props.AuthMethod)
	impl := c.b.cfg.EnhancedAuth[method]
	if impl == nil {
		return c.refuse("", codec.BadAuthenticationMethod, "authentication method not supported")
	}
	st, err := impl.Start(string(p.ClientID), p.Props.AuthData)
	if err != nil {
		return c.refuse("", codec.NotAuthorized, "enhanced authentication failed")
	}
	if st.Done {
		return c.connect(p, &authOutcome{method: method, user: st.User, data: st.Out})
	}
	// The CONNECT waits for the exchange: keep a copy, the read buffer
	// is reused.
	c.setAuth(&authExchange{method: method, impl: impl, state: st.State, connect: cloneConnect(p)})
	c.sendAuth(codec.ContinueAuthentication, method, st.Out)
	return nil
}

func (c *conn) sendAuth(r codec.ReasonCode, method string, data []byte) {
	a := codec.Auth{Reason: r}
	a.Props.Set(codec.PropAuthMethod)
	a.Props.AuthMethod = []byte(method)
	if data != nil {
		a.Props.Set(codec.PropAuthData)
		a.Props.AuthData = bytes.Clone(data)
	}
	c.write(true, func(b []byte) []byte { return a.Append(b, codec.V5) })
}

// onAuth handles an AUTH packet: the next step of an exchange, or a
// re-authentication request from a connected client [MQTT-4.12.1].
func (c *conn) onAuth(h codec.Header, body []byte) error {
	if !c.v5() {
		return &codec.MalformedError{Packet: codec.AUTH, Field: "packet type", Reason: codec.ProtocolError, Msg: "AUTH in MQTT 3.1.1"}
	}
	var a codec.Auth
	if err := a.Decode(h, body, codec.V5); err != nil {
		return err
	}
	method := string(a.Props.AuthMethod)
	switch {
	case a.Reason == codec.ContinueAuthentication && c.auth() != nil:
		ex := c.auth()
		if method != ex.method {
			return &codec.MalformedError{Packet: codec.AUTH, Field: "authentication method", Reason: codec.ProtocolError, Msg: "differs from the exchange's"} // [MQTT-4.12.0-5]
		}
		st, err := ex.impl.Continue(ex.state, a.Props.AuthData)
		if err != nil {
			c.setAuth(nil)
			if ex.connect != nil {
				return c.refuse("", codec.NotAuthorized, "enhanced authentication failed")
			}
			c.closeWith(codec.NotAuthorized, "re-authentication failed")
			return nil
		}
		if !st.Done {
			ex.state = st.State
			c.sendAuth(codec.ContinueAuthentication, method, st.Out)
			return nil
		}
		c.setAuth(nil)
		if ex.connect != nil {
			return c.connect(ex.connect, &authOutcome{method: method, user: st.User, data: st.Out})
		}
		if st.User != c.user {
			c.closeWith(codec.NotAuthorized, "re-authenticated as another user")
			return nil
		}
		c.sendAuth(codec.Success, method, st.Out)
		return nil
	case a.Reason == codec.ReAuthenticate && c.connected && c.auth() == nil:
		if method != c.authMethod() {
			return &codec.MalformedError{Packet: codec.AUTH, Field: "authentication method", Reason: codec.ProtocolError, Msg: "re-authentication must use the CONNECT's method"} // [MQTT-4.12.1-1]
		}
		impl := c.b.cfg.EnhancedAuth[method]
		st, err := impl.Start(c.clientID(), a.Props.AuthData)
		if err != nil {
			c.closeWith(codec.NotAuthorized, "re-authentication failed")
			return nil
		}
		if st.Done {
			if st.User != c.user {
				c.closeWith(codec.NotAuthorized, "re-authenticated as another user")
				return nil
			}
			c.sendAuth(codec.Success, method, st.Out)
			return nil
		}
		c.setAuth(&authExchange{method: method, impl: impl, state: st.State})
		c.sendAuth(codec.ContinueAuthentication, method, st.Out)
		return nil
	default:
		return &codec.MalformedError{Packet: codec.AUTH, Field: "reason code", Reason: codec.ProtocolError, Msg: "unexpected AUTH"}
	}
}

// cloneConnect deep-copies a decoded CONNECT off the read buffer.
func cloneConnect(p *codec.Connect) *codec.Connect {
	q := *p
	cl := func(b []byte) []byte {
		if b == nil {
			return nil
		}
		return bytes.Clone(b)
	}
	q.ProtocolName, q.ClientID = cl(p.ProtocolName), cl(p.ClientID)
	q.WillTopic, q.WillPayload = cl(p.WillTopic), cl(p.WillPayload)
	q.Username, q.Password = cl(p.Username), cl(p.Password)
	q.Props = cloneProps(p.Props)
	q.WillProps = cloneProps(p.WillProps)
	return &q
}

func cloneProps(p codec.Properties) codec.Properties {
	cl := func(b []byte) []byte {
		if b == nil {
			return nil
		}
		return bytes.Clone(b)
	}
	q := p
	q.ContentType, q.ResponseTopic, q.CorrelationData = cl(p.ContentType), cl(p.ResponseTopic), cl(p.CorrelationData)
	q.AssignedClientID, q.AuthMethod, q.AuthData = cl(p.AssignedClientID), cl(p.AuthMethod), cl(p.AuthData)
	q.ResponseInfo, q.ServerReference, q.ReasonString = cl(p.ResponseInfo), cl(p.ServerReference), cl(p.ReasonString)
	q.SubscriptionIDs = append([]uint32(nil), p.SubscriptionIDs...)
	q.User = nil
	for _, u := range p.User {
		q.User = append(q.User, codec.UserProperty{Key: cl(u.Key), Value: cl(u.Value)})
	}
	return q
}
