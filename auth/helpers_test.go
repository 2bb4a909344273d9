package auth

import (
	"testing"

	"github.com/stretchr/testify/require"
	"golang.org/x/crypto/bcrypt"

	"github.com/mqttd/mqttd/session"
)

// newTestDB returns a DB over a fresh MemKV with the cheapest bcrypt cost
// (unless cfg sets one), and the KV.
func newTestDB(t testing.TB, cfg Config) (*DB, *session.MemKV) {
	t.Helper()
	if cfg.Cost == 0 {
		cfg.Cost = bcrypt.MinCost
	}
	kv := session.NewMemKV()
	d, err := New(kv, cfg)
	require.NoError(t, err)
	return d, kv
}

// g is a short Grant constructor for tables.
func g(filter, access string) Grant { return Grant{Filter: filter, Access: access} }
