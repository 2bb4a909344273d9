// Package wiring holds the adapters that connect sibling packages which
// must not import each other (DESIGN: imports point down; cmd wires). It
// exists so that cmd/mqttd and the integration tests wire the same code.
//
// ParentTopics adapts the Kafka bridge's parent-topic registry to the
// admin API's ParentTopics interface, mapping the bridge's errors to the
// admin API's (field errors, 404, 409, 503).
package wiring
