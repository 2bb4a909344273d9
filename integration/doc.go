// Package integration is mqttd's end-to-end test suite: real MQTT clients
// (paho.golang for MQTT 5, paho.mqtt.golang for 3.1.1, mosquitto_pub and
// mosquitto_sub, and a small raw-socket client for byte-level cases) drive
// a broker started in-process by internal/brokertest over TCP, TLS,
// WebSocket and secure WebSocket on loopback.
//
// The package holds tests only. Each test starts its own broker, so tests
// share no state; tests that mostly wait for timers (keepalive, expiry,
// will delay) run in parallel. TestMain raises -test.parallel to 8 unless
// it was given, because those waits, not CPU, bound the suite's run time.
//
// Tests that need mosquitto-clients fail with a hint to run `make deps`
// when the tools are missing, unless MQTTD_SKIP_EXTERNAL=1 is set, in which
// case they are skipped.
//
// The raw client (rawclient_test.go) encodes and decodes packets itself
// rather than with package codec, so the broker's codec is checked against
// an independent implementation.
package integration
