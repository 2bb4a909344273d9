// Package crash checks mqttd's durability from the outside: it builds the
// real mqttd binary, runs it as a child process on a data directory, kills
// it with SIGKILL and restarts it on the same directory, and checks with
// its own MQTT clients that what the broker promised survives.
//
// What it proves:
//   - every message the broker acknowledged to a publisher (PUBACK for
//     QoS 1, PUBREC for QoS 2) reaches every persistent subscriber that
//     matched it, at least once for QoS 1 and exactly once for QoS 2,
//     however often the broker is killed while messages flow;
//   - QoS 2 exchanges cut at each step complete without a duplicate;
//   - sessions, offline queues and retained messages survive a restart,
//     and sessions expire on time across one;
//   - -persistence=false keeps nothing;
//   - a corrupt or foreign data directory stops the broker at start with a
//     clear error, not a panic and not a silent reset.
//
// The MQTT client here is built on package codec but drives the protocol
// by hand, so the tests decide exactly when each PUBACK, PUBREC, PUBREL
// and PUBCOMP is sent and know exactly which publishes were acknowledged.
//
// The package holds tests only. TestMain builds the binary once; each test
// starts its own broker on its own port and data directory. The long kill
// loop (TestKill9NoAcknowledgedLoss) is skipped with -short.
package crash
