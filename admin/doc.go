// Package admin is mqttd's HTTP admin listener (DESIGN.md, "Admin API"):
// JSON over HTTP, every /api/ route behind `Authorization: Bearer <token>`,
// errors as {"error": "...", "field": "..."} with a 4xx (or 503) status.
//
// So far it serves:
//
//	GET    /healthz                      liveness, no token
//	GET    /api/v1/parent-topics         the registered parent topics
//	POST   /api/v1/parent-topics         register {"name": "meter", "type": "normal|ordered"}
//	DELETE /api/v1/parent-topics/{name}  unregister
//
// admin owns no state: the services behind the routes come in Deps as
// small interfaces (ParentTopics is implemented by the Kafka bridge
// through an adapter in cmd), so admin imports neither the bridge nor the
// broker.
//
// Concurrency: handlers run on net/http's goroutines and call the Deps
// concurrently; Deps implementations must be safe for that. Server holds
// no lock of its own beyond its start/close state.
package admin
