// Package kafka holds the Kafka bridge's acceptance tests against a real
// Apache Kafka 4.x (single KRaft node from scripts/kafka.sh). Tests only.
//
// TestMain starts Kafka with `scripts/kafka.sh up` on a free loopback port
// (and stops it with `down` at the end) unless MQTTD_KAFKA=host:port names
// one that is already running, as CI's .ci/run does; in that case
// KAFKA_RUN_DIR, when set, must be the run dir it was started with (the
// outage test stops and restarts it through the script). Without Java or
// Maven, and without MQTTD_KAFKA, the tests are skipped with a message.
//
// Each test starts its own broker (internal/brokertest) and bridge, with
// parent topics and a consumer group of its own, so tests share only the
// Kafka process and the command topic. Devices are paho.mqtt.golang
// clients; Kafka is read and written with sarama.
package kafka
