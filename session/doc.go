// Package session holds the protocol-neutral state of one client across
// its connections: its subscriptions, the messages waiting for it (the
// offline / pending queue), the QoS 1/2 messages in flight towards it, the
// QoS 2 packet ids it sent that are not yet released, its expiry, and a
// delayed will. A Store keeps the sessions of all clients.
//
// Concurrency: Session.Mu guards a session's fields; the broker takes it
// for every read or change (lock order: Session.Mu before any connection
// lock of the broker). A Store is safe for concurrent use.
//
// Memory: a broker holds a session per client, online or offline, so a
// Session keeps inline only what every session uses (112 bytes,
// TestSessionSize) and the rest in a part allocated on first use; the
// Store finds sessions through its own hash table (idTable), about 16
// bytes a session where a map[string]*Session costs about 45.
//
// Message is the immutable, shared form of one published message: it is
// created once when the broker accepts a PUBLISH and then referenced by
// every session it is delivered to, never copied or modified.
package session
