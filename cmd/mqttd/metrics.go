package main

import "github.com/mqttd/mqttd/admin"

// metrics gathers the samples of GET /metrics: the broker's counters and,
// with the Kafka bridge on, the bridge's.
func (s *server) metrics() []admin.Metric {
	st := s.b.Stats()
	c := func(name, help string, v uint64) admin.Metric {
		return admin.Metric{Name: name, Help: help, Type: "counter", Value: float64(v)}
	}
	g := func(name, help string, v int64) admin.Metric {
		return admin.Metric{Name: name, Help: help, Type: "gauge", Value: float64(v)}
	}
	ms := []admin.Metric{
		g("mqttd_connections", "Open network connections.", st.Connections),
		g("mqttd_sessions", "Sessions, online and offline.", st.Sessions),
		g("mqttd_subscriptions", "Subscriptions, shared members included.", st.Subscriptions),
		g("mqttd_retained_messages", "Retained messages.", st.Retained),
		c("mqttd_messages_in_total", "PUBLISH packets accepted from clients.", st.MessagesIn),
		c("mqttd_messages_out_total", "PUBLISH packets written to clients.", st.MessagesOut),
		c("mqttd_bytes_in_total", "Bytes of whole packets received.", st.BytesIn),
		c("mqttd_bytes_out_total", "Bytes of packets queued for writing.", st.BytesOut),
		c("mqttd_dropped_offline_total", "QoS 1/2 messages dropped from full offline queues.", st.DroppedOffline),
		c("mqttd_dropped_qos0_total", "QoS 0 messages dropped for slow consumers.", st.DroppedQoS0),
		c("mqttd_dropped_pending_total", "QoS 1/2 messages dropped for lack of packet ids or pending room.", st.DroppedPending),
		c("mqttd_dropped_expired_total", "Messages whose expiry passed before delivery.", st.DroppedExpired),
		c("mqttd_dropped_too_big_total", "Messages larger than the client's Maximum Packet Size.", st.DroppedTooBig),
		c("mqttd_refused_connections_total", "Connections refused by connection caps or the connect rate.", st.RefusedConnections),
		c("mqttd_rate_limited_total", "Clients disconnected for exceeding the message rate.", st.RateLimited),
	}
	if s.bridge != nil {
		m := s.bridge.Metrics()
		ms = append(ms,
			c("mqttd_kafka_accepted_total", "Device messages taken for Kafka.", m.Accepted),
			c("mqttd_kafka_presence_total", "Connect and disconnect events recorded.", m.Presence),
			c("mqttd_kafka_spooled_total", "Records written to the on-disk spool.", m.Spooled),
			c("mqttd_kafka_produced_total", "Records Kafka acknowledged.", m.Produced),
			c("mqttd_kafka_failed_total", "Records lost for good (refused by Kafka as invalid, corrupt spool frames).", m.Failed),
			c("mqttd_kafka_dropped_total", "QoS 0 messages and events dropped while overloaded.", m.Dropped),
			c("mqttd_kafka_refused_total", "QoS 1/2 messages refused while overloaded (publishers resend).", m.Refused),
			c("mqttd_kafka_resent_total", "Records sent again after a failed round.", m.Resent),
			g("mqttd_kafka_backlog", "Spooled records Kafka has not acknowledged yet.", int64(m.Backlog)),
			g("mqttd_kafka_spool_bytes", "The spool's size on disk.", m.SpoolBytes),
			g("mqttd_kafka_queue_bytes", "Bytes waiting in memory to enter the spool.", m.QueueBytes),
			c("mqttd_kafka_commands_consumed_total", "Records read from the command topic.", m.CommandsConsumed),
			c("mqttd_kafka_commands_delivered_total", "Commands that entered the broker.", m.CommandsDelivered),
			c("mqttd_kafka_commands_dlq_total", "Commands sent to the dead-letter topic.", m.CommandsDLQ),
			g("mqttd_kafka_consumer_lag", "Command-topic records not yet consumed.", m.ConsumerLag),
		)
	}
	return ms
}
