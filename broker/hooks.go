package broker

import "errors"

// ErrBadCredentials is returned by an Authenticator for an unknown user or
// a wrong password.
var ErrBadCredentials = errors.New("broker: bad username or password")

// Access is what a grant allows.
type Access byte

// Access kinds.
const (
	AccessPublish Access = 1 << iota
	AccessSubscribe
)

// Authenticator checks credentials and topic grants. Implementations are
// called from event loops and must be fast and non-blocking (keep users in
// memory); they must be safe for concurrent use.
type Authenticator interface {
	// Authenticate checks a username/password pair (and, for TLS clients,
	// certCN, the verified client certificate's common name or "").
	// It returns the authenticated user name (usually username; certCN
	// when the certificate stands in for the username) or ErrBadCredentials.
	Authenticate(username, password []byte, certCN string) (user string, err error)

	// Allow reports whether user may publish to topic (AccessPublish) or
	// subscribe to filter (AccessSubscribe). user is "" for anonymous.
	// A publish topic may alias the connection's read buffer: it is valid
	// only during the call and must not be kept.
	Allow(user, topicOrFilter string, access Access) bool
}

// Hook receives broker events. Methods are called from event loops and
// must not block: hand work to a goroutine of your own.
type Hook interface {
	// OnConnect is called after a client's CONNACK (success) was queued.
	OnConnect(c ClientInfo)
	// OnDisconnect is called once per connection that had connected.
	OnDisconnect(c ClientInfo, reason string)
	// OnPublish is called for every message accepted from a client, after
	// routing. m and its fields must not be modified; they may be kept.
	OnPublish(m *Message)
}

// Acker holds a publisher's acknowledgement until a message is safe in
// another system (the Kafka bridge). Accept is called on the event loop
// for every message accepted from a client (any QoS), after routing; it
// must not block. It returns false when the message is of no interest;
// true takes it: for QoS 1/2 the broker then holds the publisher's
// PUBACK/PUBREC (keeping acknowledgement order) until done is called, from
// any goroutine, exactly once. done(nil) releases the acknowledgement;
// done(err) closes the publisher's connection unacknowledged (the client
// will resend). For QoS 0, done must still be called once; it does nothing.
type Acker interface {
	Accept(m *Message, done func(error)) bool
}

// PublishOptions modify Broker.Publish.
type PublishOptions struct {
	// OnlineOnly delivers to sessions whose client is connected only
	// (the "cleanSession=true" commands); false also queues the message
	// for offline persistent sessions.
	OnlineOnly bool
}
