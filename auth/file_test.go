package auth

import (
	"errors"
	"os"
	"path/filepath"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	"golang.org/x/crypto/bcrypt"

	"github.com/mqttd/mqttd/broker"
)

func writeFile(t *testing.T, text string) string {
	t.Helper()
	p := filepath.Join(t.TempDir(), "users.yaml")
	require.NoError(t, os.WriteFile(p, []byte(text), 0o600))
	return p
}

func TestLoadFile(t *testing.T) {
	hash, err := bcrypt.GenerateFromPassword([]byte("bob-password"), bcrypt.MinCost)
	require.NoError(t, err)
	d, _ := newTestDB(t, Config{})
	path := writeFile(t, `
users:
  - name: alice
    password: alice-password
    grants:
      - {filter: meter/#, access: pub}
      - filter: cmd/alice
        access: sub
  - name: bob
    password_hash: "`+string(hash)+`"
    grants: [{filter: "#", access: pubsub}]
  - name: dev-7
`)
	require.NoError(t, d.LoadFile(path))
	assert.Equal(t, 3, d.Len())

	_, err = d.Authenticate([]byte("alice"), []byte("alice-password"), "")
	assert.NoError(t, err)
	_, err = d.Authenticate([]byte("bob"), []byte("bob-password"), "")
	assert.NoError(t, err)
	assert.True(t, d.Allow("alice", "meter/1", broker.AccessPublish))
	assert.True(t, d.Allow("alice", "cmd/alice", broker.AccessSubscribe))
	assert.False(t, d.Allow("alice", "cmd/alice/x", broker.AccessSubscribe))
	assert.True(t, d.Allow("bob", "x/y", broker.AccessSubscribe))
	info, ok := d.User("dev-7")
	require.True(t, ok)
	assert.False(t, info.Password)
	assert.Empty(t, info.Grants)
}

func TestLoadFileKeepsOrReplaces(t *testing.T) {
	d, _ := newTestDB(t, Config{})
	require.NoError(t, d.AddUser("alice", "old-password", []Grant{g("old", "pub")}))
	require.NoError(t, d.AddUser("bob", "old-password", []Grant{g("old", "pub")}))

	// Default: existing users are kept, new ones added.
	require.NoError(t, d.LoadFile(writeFile(t, `
users:
  - {name: alice, password: new-password, grants: [{filter: new, access: pub}]}
  - {name: carol, password: new-password}
`)))
	_, err := d.Authenticate([]byte("alice"), []byte("old-password"), "")
	assert.NoError(t, err, "alice kept")
	assert.True(t, d.Allow("alice", "old", broker.AccessPublish))
	assert.False(t, d.Allow("alice", "new", broker.AccessPublish))
	_, err = d.Authenticate([]byte("carol"), []byte("new-password"), "")
	assert.NoError(t, err, "carol added")

	// Per user replace.
	require.NoError(t, d.LoadFile(writeFile(t, `
users:
  - {name: alice, password: new-password, replace: true, grants: [{filter: new, access: pub}]}
  - {name: bob, password: new-password}
`)))
	_, err = d.Authenticate([]byte("alice"), []byte("new-password"), "")
	assert.NoError(t, err, "alice replaced")
	assert.True(t, d.Allow("alice", "new", broker.AccessPublish))
	assert.False(t, d.Allow("alice", "old", broker.AccessPublish))
	_, err = d.Authenticate([]byte("bob"), []byte("old-password"), "")
	assert.NoError(t, err, "bob kept")

	// Top level replace, overridden per user.
	require.NoError(t, d.LoadFile(writeFile(t, `
replace: true
users:
  - {name: bob, password: newer-password}
  - {name: carol, password: newer-password, replace: false}
`)))
	_, err = d.Authenticate([]byte("bob"), []byte("newer-password"), "")
	assert.NoError(t, err, "bob replaced")
	assert.False(t, d.Allow("bob", "old", broker.AccessPublish), "replace replaces grants too")
	_, err = d.Authenticate([]byte("carol"), []byte("new-password"), "")
	assert.NoError(t, err, "carol kept")
}

func TestLoadFileErrors(t *testing.T) {
	tests := []struct {
		name, text string
		field      string // FieldError's field; "" when the error is not one
	}{
		{"empty", ``, ""},
		{"not yaml", "users: [\n", ""},
		{"no users key", "replace: true\n", "users"},
		{"users not a list", "users: alice\n", ""},
		{"unknown key", "users:\n  - {name: a, pasword: password1}\n", ""},
		{"unknown top key", "user:\n  - {name: a, password: password1}\n", ""},
		{"two documents", "users: []\n---\nusers: []\n", ""},
		{"bad name", "users:\n  - {name: a b, password: password1}\n", "users[0].name"},
		{"no name", "users:\n  - {password: password1}\n", "users[0].name"},
		{"duplicate", "users:\n  - {name: a, password: password1}\n  - {name: a, password: password2}\n", "users[1].name"},
		{"short password", "users:\n  - {name: a, password: short}\n", "users[0].password"},
		{"both passwords", "users:\n  - {name: a, password: password1, password_hash: x}\n", "users[0].password"},
		{"bad hash", "users:\n  - {name: a, password_hash: password1}\n", "users[0].password_hash"},
		{"bad access", "users:\n  - name: a\n    grants: [{filter: x, access: all}]\n", "users[0].grants[0].access"},
		{"bad filter", "users:\n  - name: a\n  - name: b\n    grants: [{filter: x/#/y, access: pub}]\n", "users[1].grants[0].filter"},
		{"unquoted #", "users:\n  - name: a\n    grants:\n      - filter: #\n        access: pub\n", "users[0].grants[0].filter"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			d, _ := newTestDB(t, Config{})
			require.NoError(t, d.AddUser("keep", "keep-password", nil))
			path := writeFile(t, tt.text)
			err := d.LoadFile(path)
			var fileErr *FileError
			require.ErrorAs(t, err, &fileErr)
			assert.Equal(t, path, fileErr.Path)
			assert.Contains(t, err.Error(), path)
			var fe *FieldError
			if tt.field != "" {
				require.ErrorAs(t, err, &fe, "err: %v", err)
				assert.Equal(t, tt.field, fe.Field)
			} else {
				assert.False(t, errors.As(err, &fe), "err: %v", err)
			}
			assert.Equal(t, 1, d.Len(), "an invalid file changes nothing")
		})
	}

	t.Run("missing file", func(t *testing.T) {
		d, _ := newTestDB(t, Config{})
		err := d.LoadFile(filepath.Join(t.TempDir(), "nope.yaml"))
		var fileErr *FileError
		require.ErrorAs(t, err, &fileErr)
		assert.ErrorIs(t, err, os.ErrNotExist)
	})

	t.Run("first entry valid, later invalid: nothing added", func(t *testing.T) {
		d, _ := newTestDB(t, Config{})
		err := d.LoadFile(writeFile(t, "users:\n  - {name: a, password: password1}\n  - {name: b, password: x}\n"))
		require.Error(t, err)
		assert.Equal(t, 0, d.Len())
	})
}
