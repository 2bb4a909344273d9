package broker

import "sync/atomic"

type counters struct {
	connections    atomic.Int64
	messagesIn     atomic.Uint64
	messagesOut    atomic.Uint64
	bytesIn        atomic.Uint64
	bytesOut       atomic.Uint64
	droppedOffline atomic.Uint64
	droppedQoS0    atomic.Uint64
	droppedPending atomic.Uint64
	droppedExpired atomic.Uint64
	droppedTooBig  atomic.Uint64
	refusedConns   atomic.Uint64
	refusedRate    atomic.Uint64
}

// Stats is a snapshot of the broker's counters.
type Stats struct {
	Connections   int64 // open network connections (CONNECT not required)
	Sessions      int64 // sessions, online and offline
	Subscriptions int64 // subscriptions, shared members included
	Retained      int64 // retained messages

	MessagesIn  uint64 // PUBLISH packets accepted from clients
	MessagesOut uint64 // PUBLISH packets written to clients
	BytesIn     uint64 // bytes of whole packets received
	BytesOut    uint64 // bytes of packets queued for writing

	DroppedOffline uint64 // offline-queue overflow (oldest dropped)
	DroppedQoS0    uint64 // QoS 0 to a slow consumer (outbound buffer full)
	DroppedPending uint64 // QoS 1/2 over an online session's pending cap
	DroppedExpired uint64 // message expiry passed before delivery
	DroppedTooBig  uint64 // larger than the client's Maximum Packet Size

	RefusedConnections uint64 // over MaxConnections / MaxConnectionsPerIP, or ConnectRate
	RateLimited        uint64 // clients disconnected for exceeding MaxMsgRate
}

// Stats returns the current counters. Safe from any goroutine.
func (b *Broker) Stats() Stats {
	return Stats{
		Connections:    b.st.connections.Load(),
		Sessions:       int64(b.store.Len()),
		Subscriptions:  b.subs.count.Load(),
		Retained:       b.ret.count.Load(),
		MessagesIn:     b.st.messagesIn.Load(),
		MessagesOut:    b.st.messagesOut.Load(),
		BytesIn:        b.st.bytesIn.Load(),
		BytesOut:       b.st.bytesOut.Load(),
		DroppedOffline: b.st.droppedOffline.Load(),
		DroppedQoS0:    b.st.droppedQoS0.Load(),
		DroppedPending: b.st.droppedPending.Load(),
		DroppedExpired: b.st.droppedExpired.Load(),
		DroppedTooBig:  b.st.droppedTooBig.Load(),

		RefusedConnections: b.st.refusedConns.Load(),
		RateLimited:        b.st.refusedRate.Load(),
	}
}
