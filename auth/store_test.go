package auth

import (
	"encoding/json"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	"golang.org/x/crypto/bcrypt"

	"github.com/mqttd/mqttd/broker"
	"github.com/mqttd/mqttd/session"
)

func TestPersistenceRoundTrip(t *testing.T) {
	d, kv := newTestDB(t, Config{})
	t0 := time.Date(2025, 6, 1, 12, 0, 0, 123_000_000, time.UTC)
	d.now = func() time.Time { return t0 }
	require.NoError(t, d.AddUser("alice", "alice-password", []Grant{g("meter", "pub"), g("cmd/+/alice", "sub")}))
	require.NoError(t, d.AddUser("bob", "bob-password", nil))
	require.NoError(t, d.AddUser("dev-1", "", []Grant{g("dev/#", "pubsub")}))
	require.NoError(t, d.AddUser("gone", "gone-password", nil))
	require.NoError(t, d.DeleteUser("gone"))
	require.NoError(t, d.SetGrants("bob", []Grant{g("#", "sub")}))

	// A second DB over the same KV (a restart) sees the same users.
	d2, err := New(kv, Config{Cost: bcrypt.MinCost})
	require.NoError(t, err)
	assert.Equal(t, d.Users(), d2.Users())
	assert.Equal(t, 3, d2.Len())

	user, err := d2.Authenticate([]byte("alice"), []byte("alice-password"), "")
	require.NoError(t, err)
	assert.Equal(t, "alice", user)
	_, err = d2.Authenticate([]byte("alice"), []byte("bob-password"), "")
	assert.ErrorIs(t, err, broker.ErrBadCredentials)
	_, err = d2.Authenticate([]byte("bob"), []byte("bob-password"), "")
	assert.NoError(t, err)
	_, err = d2.Authenticate([]byte("gone"), []byte("gone-password"), "")
	assert.ErrorIs(t, err, broker.ErrBadCredentials)
	assert.True(t, d2.Allow("alice", "meter/1", broker.AccessPublish))
	assert.True(t, d2.Allow("alice", "cmd/x/alice", broker.AccessSubscribe))
	assert.False(t, d2.Allow("alice", "cmd/x/bob", broker.AccessSubscribe))
	assert.True(t, d2.Allow("bob", "any/thing", broker.AccessSubscribe))
	info, ok := d2.User("dev-1")
	require.True(t, ok)
	assert.False(t, info.Password)
	assert.Equal(t, t0, info.Created)

	// The record: versioned JSON under u/<name>, a bcrypt hash, no password.
	raw, err := kv.Get([]byte("u/alice"))
	require.NoError(t, err)
	assert.NotContains(t, string(raw), "alice-password")
	var r record
	require.NoError(t, json.Unmarshal(raw, &r))
	assert.Equal(t, 1, r.V)
	assert.Equal(t, "alice", r.Name)
	assert.NoError(t, bcrypt.CompareHashAndPassword([]byte(r.Hash), []byte("alice-password")))
	assert.Equal(t, []Grant{g("meter", "pub"), g("cmd/+/alice", "sub")}, r.Grants)
	_, err = kv.Get([]byte("u/gone"))
	assert.ErrorIs(t, err, session.ErrNotFound)
}

func TestLoadBadRecords(t *testing.T) {
	hash, err := bcrypt.GenerateFromPassword([]byte("password"), bcrypt.MinCost)
	require.NoError(t, err)
	good := record{V: 1, Name: "alice", Hash: string(hash), Grants: []Grant{g("a", "pub")}}
	enc := func(r record) []byte {
		b, err := json.Marshal(r)
		require.NoError(t, err)
		return b
	}
	tests := []struct {
		name     string
		key      string
		val      []byte
		contains string
	}{
		{"not json", "u/alice", []byte("{"), `"u/alice"`},
		{"future version", "u/alice", enc(func() record { r := good; r.V = 2; return r }()), "version 2"},
		{"no version", "u/alice", enc(func() record { r := good; r.V = 0; return r }()), "version 0"},
		{"name differs from key", "u/bob", enc(good), `names user "alice"`},
		{"bad name", "u/a b", enc(func() record { r := good; r.Name = "a b"; return r }()), "name"},
		{"bad hash", "u/alice", enc(func() record { r := good; r.Hash = "plaintext"; return r }()), "hash"},
		{"bad grant", "u/alice", enc(func() record { r := good; r.Grants = []Grant{g("a", "x")}; return r }()), "grants[0].access"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			kv := session.NewMemKV()
			require.NoError(t, kv.Set([]byte(tt.key), tt.val))
			_, err := New(kv, Config{Cost: bcrypt.MinCost})
			require.Error(t, err)
			assert.Contains(t, err.Error(), tt.contains)
		})
	}

	t.Run("good", func(t *testing.T) {
		kv := session.NewMemKV()
		require.NoError(t, kv.Set([]byte("u/alice"), enc(good)))
		require.NoError(t, kv.Set([]byte("v/other"), []byte("not ours")))
		d, err := New(kv, Config{Cost: bcrypt.MinCost})
		require.NoError(t, err)
		assert.Equal(t, 1, d.Len())
		_, err = d.Authenticate([]byte("alice"), []byte("password"), "")
		assert.NoError(t, err)
	})
}
