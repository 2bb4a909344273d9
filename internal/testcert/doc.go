// Package testcert creates throwaway X.509 material for tests: a private CA,
// a server certificate valid for "localhost", 127.0.0.1 and ::1, and a client
// certificate with a caller-chosen common name. Keys are ECDSA P-256.
//
// Everything is generated per call to New and written as PEM files into the
// test's temporary directory, so tests that need file paths (a server loading
// -tls.cert/-tls.key, an external client such as mosquitto_pub) and tests
// that need in-memory tls.Config values share one bundle. Certificates are
// valid from one hour in the past to 24 hours in the future.
//
// Only tests import this package; it is not for production use.
package testcert
