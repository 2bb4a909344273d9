package auth

import (
	"errors"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	"golang.org/x/crypto/bcrypt"

	"github.com/mqttd/mqttd/broker"
	"github.com/mqttd/mqttd/session"
)

func TestNewRejects(t *testing.T) {
	_, err := New(nil, Config{})
	require.Error(t, err)

	tests := []struct {
		name  string
		cfg   Config
		field string
	}{
		{"bad superuser", Config{Superusers: []string{"ok", "not ok"}}, "superusers[1]"},
		{"empty superuser", Config{Superusers: []string{""}}, "superusers[0]"},
		{"bad anonymous grant", Config{AnonymousGrants: []Grant{g("a/#/b", "sub")}}, "anonymous_grants[0].filter"},
		{"cost too low", Config{Cost: 3}, "cost"},
		{"cost too high", Config{Cost: 32}, "cost"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, err := New(session.NewMemKV(), tt.cfg)
			var fe *FieldError
			require.ErrorAs(t, err, &fe)
			assert.Equal(t, tt.field, fe.Field)
		})
	}
}

func TestConfigZeroValueWorks(t *testing.T) {
	var c Config
	require.NoError(t, c.Validate())
	assert.Equal(t, DefaultCost, c.cost())
}

func TestAuthenticate(t *testing.T) {
	d, _ := newTestDB(t, Config{})
	require.NoError(t, d.AddUser("alice", "alice-password", nil))
	require.NoError(t, d.AddUser("bob", "bob-password", nil))
	require.NoError(t, d.AddUser("dev-7", "", nil)) // certificate-only

	tests := []struct {
		name, user, pass string
		want             string // "" for refusal
	}{
		{"right", "alice", "alice-password", "alice"},
		{"right again (cached)", "alice", "alice-password", "alice"},
		{"other user", "bob", "bob-password", "bob"},
		{"wrong password", "alice", "alice-passwore", ""},
		{"other's password", "alice", "bob-password", ""},
		{"empty password", "alice", "", ""},
		{"password prefix", "alice", "alice-passwor", ""},
		{"password longer", "alice", "alice-password!", ""},
		{"unknown user", "carol", "alice-password", ""},
		{"no username", "", "alice-password", ""},
		{"case matters", "Alice", "alice-password", ""},
		{"certificate-only user by password", "dev-7", "", ""},
		{"certificate-only user by any password", "dev-7", "anything-at-all", ""},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			user, err := d.Authenticate([]byte(tt.user), []byte(tt.pass), "")
			if tt.want == "" {
				assert.ErrorIs(t, err, broker.ErrBadCredentials)
				assert.Empty(t, user)
				return
			}
			require.NoError(t, err)
			assert.Equal(t, tt.want, user)
		})
	}
}

func TestAuthenticateCertCN(t *testing.T) {
	setup := func(cnAs bool) *DB {
		d, _ := newTestDB(t, Config{CertCNAsUsername: cnAs})
		require.NoError(t, d.AddUser("client1", "", nil))
		require.NoError(t, d.AddUser("alice", "alice-password", nil))
		return d
	}
	on, off := setup(true), setup(false)

	tests := []struct {
		name       string
		d          *DB
		user, pass string
		cn         string
		want       string // "" for refusal
	}{
		{"cn alone", on, "", "", "client1", "client1"},
		{"cn and same username", on, "client1", "ignored", "client1", "client1"},
		{"cn and other username", on, "alice", "alice-password", "client1", ""},
		{"cn of no user falls back to password", on, "alice", "alice-password", "stranger", "alice"},
		{"cn of no user, no username", on, "", "", "stranger", ""},
		{"cn of no user, wrong password", on, "alice", "nope-nope", "stranger", ""},
		{"no cn: password", on, "alice", "alice-password", "", "alice"},
		{"no cn: certificate-only user", on, "client1", "", "", ""},
		{"off: cn ignored", off, "", "", "client1", ""},
		{"off: cn ignored, password used", off, "alice", "alice-password", "client1", "alice"},
		{"off: cn with its username", off, "client1", "", "client1", ""},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			user, err := tt.d.Authenticate([]byte(tt.user), []byte(tt.pass), tt.cn)
			if tt.want == "" {
				assert.ErrorIs(t, err, broker.ErrBadCredentials)
				return
			}
			require.NoError(t, err)
			assert.Equal(t, tt.want, user)
		})
	}
}

func TestAddUserValidation(t *testing.T) {
	d, _ := newTestDB(t, Config{})
	tests := []struct {
		name, user, pass string
		grants           []Grant
		field            string
	}{
		{"empty name", "", "password1", nil, "name"},
		{"long name", strings.Repeat("a", MaxNameLen+1), "password1", nil, "name"},
		{"space in name", "a b", "password1", nil, "name"},
		{"slash in name", "a/b", "password1", nil, "name"},
		{"plus in name", "a+b", "password1", nil, "name"},
		{"non-ascii name", "bjørn", "password1", nil, "name"},
		{"short password", "a", "1234567", nil, "password"},
		{"long password", "a", strings.Repeat("p", MaxPasswordLen+1), nil, "password"},
		{"bad filter", "a", "password1", []Grant{g("x", "pub"), g("x/#/y", "pub")}, "grants[1].filter"},
		{"bad access", "a", "password1", []Grant{g("x", "rw")}, "grants[0].access"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			err := d.AddUser(tt.user, tt.pass, tt.grants)
			var fe *FieldError
			require.ErrorAs(t, err, &fe)
			assert.Equal(t, tt.field, fe.Field)
			assert.Equal(t, "auth: "+fe.Field+": "+fe.Msg, err.Error())
		})
	}
	assert.Equal(t, 0, d.Len())

	for _, ok := range []string{"a", strings.Repeat("Z", MaxNameLen), "dev_1.home@site-2"} {
		require.NoError(t, d.AddUser(ok, strings.Repeat("p", MinPasswordLen), nil), ok)
	}
	require.NoError(t, d.AddUser("maxpass", strings.Repeat("p", MaxPasswordLen), nil))
	assert.Equal(t, 4, d.Len())
}

func TestUserLifecycle(t *testing.T) {
	d, _ := newTestDB(t, Config{Superusers: []string{"root"}})
	t0 := time.Date(2025, 1, 2, 3, 4, 5, 0, time.UTC)
	d.now = func() time.Time { return t0 }

	require.NoError(t, d.AddUser("alice", "password-1", []Grant{g("meter", "pub")}))
	err := d.AddUser("alice", "password-2", nil)
	assert.ErrorIs(t, err, ErrUserExists)

	info, ok := d.User("alice")
	require.True(t, ok)
	assert.Equal(t, UserInfo{Name: "alice", Grants: []Grant{g("meter", "pub")}, Created: t0, Updated: t0, Password: true}, info)
	assert.True(t, d.Allow("alice", "meter/1", broker.AccessPublish))

	// Grants change at once for connected clients.
	t1 := t0.Add(time.Hour)
	d.now = func() time.Time { return t1 }
	require.NoError(t, d.SetGrants("alice", []Grant{g("other/#", "sub")}))
	assert.False(t, d.Allow("alice", "meter/1", broker.AccessPublish))
	assert.True(t, d.Allow("alice", "other/x", broker.AccessSubscribe))
	info, _ = d.User("alice")
	assert.Equal(t, t0, info.Created)
	assert.Equal(t, t1, info.Updated)
	_, err = d.Authenticate([]byte("alice"), []byte("password-1"), "")
	require.NoError(t, err, "grants change keeps the password")

	// The returned grants are a copy.
	info.Grants[0].Filter = "changed"
	info, _ = d.User("alice")
	assert.Equal(t, "other/#", info.Grants[0].Filter)

	require.NoError(t, d.SetPassword("alice", "password-2"))
	_, err = d.Authenticate([]byte("alice"), []byte("password-1"), "")
	assert.ErrorIs(t, err, broker.ErrBadCredentials, "old password after change (it was cached)")
	_, err = d.Authenticate([]byte("alice"), []byte("password-2"), "")
	require.NoError(t, err)
	assert.True(t, d.Allow("alice", "other/x", broker.AccessSubscribe), "password change keeps grants")

	require.NoError(t, d.SetPassword("alice", ""))
	info, _ = d.User("alice")
	assert.False(t, info.Password)
	_, err = d.Authenticate([]byte("alice"), []byte("password-2"), "")
	assert.ErrorIs(t, err, broker.ErrBadCredentials)

	var fe *FieldError
	require.ErrorAs(t, d.SetPassword("alice", "short"), &fe)
	assert.Equal(t, "password", fe.Field)
	require.ErrorAs(t, d.SetGrants("alice", []Grant{g("", "pub")}), &fe)
	assert.Equal(t, "grants[0].filter", fe.Field)

	assert.ErrorIs(t, d.SetGrants("bob", nil), ErrNoUser)
	assert.ErrorIs(t, d.SetPassword("bob", "password-3"), ErrNoUser)
	assert.ErrorIs(t, d.DeleteUser("bob"), ErrNoUser)

	require.NoError(t, d.AddUser("root", "password-r", nil))
	require.NoError(t, d.AddUser("bob", "password-b", []Grant{g("#", "pubsub")}))
	users := d.Users()
	require.Len(t, users, 3)
	assert.Equal(t, []string{"alice", "bob", "root"}, []string{users[0].Name, users[1].Name, users[2].Name})
	assert.True(t, users[2].Superuser)
	assert.False(t, users[1].Superuser)

	require.NoError(t, d.DeleteUser("bob"))
	_, ok = d.User("bob")
	assert.False(t, ok)
	assert.False(t, d.Allow("bob", "x", broker.AccessPublish), "a deleted user's grants end at once")
	_, err = d.Authenticate([]byte("bob"), []byte("password-b"), "")
	assert.ErrorIs(t, err, broker.ErrBadCredentials)
	assert.Equal(t, 2, d.Len())
}

func TestEnsureUser(t *testing.T) {
	d, _ := newTestDB(t, Config{})
	added, err := d.EnsureUser("admin", "first-password", []Grant{g("#", "pubsub")})
	require.NoError(t, err)
	assert.True(t, added)
	added, err = d.EnsureUser("admin", "second-password", nil)
	require.NoError(t, err)
	assert.False(t, added)
	_, err = d.Authenticate([]byte("admin"), []byte("first-password"), "")
	assert.NoError(t, err, "an existing user is left as it is")
	assert.True(t, d.Allow("admin", "x", broker.AccessPublish))

	_, err = d.EnsureUser("bad name", "first-password", nil)
	var fe *FieldError
	require.ErrorAs(t, err, &fe)
	assert.Equal(t, "name", fe.Field)
}

func TestVerifyCache(t *testing.T) {
	d, _ := newTestDB(t, Config{})
	require.NoError(t, d.AddUser("alice", "alice-password", nil))
	u := d.lookup("alice")
	assert.Nil(t, u.verified.Load())
	_, err := d.Authenticate([]byte("alice"), []byte("wrong-password"), "")
	require.Error(t, err)
	assert.Nil(t, u.verified.Load(), "a wrong password is not cached")
	_, err = d.Authenticate([]byte("alice"), []byte("alice-password"), "")
	require.NoError(t, err)
	assert.NotNil(t, u.verified.Load())
	// The cache only ever confirms the password that filled it.
	_, err = d.Authenticate([]byte("alice"), []byte("wrong-password"), "")
	assert.ErrorIs(t, err, broker.ErrBadCredentials)

	nc, _ := newTestDB(t, Config{DisableVerifyCache: true})
	require.NoError(t, nc.AddUser("alice", "alice-password", nil))
	_, err = nc.Authenticate([]byte("alice"), []byte("alice-password"), "")
	require.NoError(t, err)
	assert.Nil(t, nc.lookup("alice").verified.Load())
}

// TestVerifyCacheSpeed: a reconnect with a cached password skips bcrypt.
func TestVerifyCacheSpeed(t *testing.T) {
	d, _ := newTestDB(t, Config{Cost: 7}) // a few ms a hash (much more with -race)
	require.NoError(t, d.AddUser("alice", "alice-password", nil))
	start := time.Now()
	_, err := d.Authenticate([]byte("alice"), []byte("alice-password"), "")
	require.NoError(t, err)
	first := time.Since(start)
	start = time.Now()
	for range 20 {
		_, err = d.Authenticate([]byte("alice"), []byte("alice-password"), "")
		require.NoError(t, err)
	}
	again := time.Since(start)
	assert.Less(t, again, first, "20 cached checks should take less than one bcrypt run (first %v, 20 cached %v)", first, again)
}

// TestUnknownUserTiming: refusing an unknown user costs a bcrypt run like
// refusing a wrong password, so timing does not reveal which names exist.
func TestUnknownUserTiming(t *testing.T) {
	d, _ := newTestDB(t, Config{Cost: 6}) // a few ms a hash
	cost, err := bcrypt.Cost(d.ver.dummy)
	require.NoError(t, err)
	assert.Equal(t, 6, cost, "dummy hash cost follows Config.Cost")

	require.NoError(t, d.AddUser("alice", "alice-password", nil))
	require.NoError(t, d.AddUser("certonly", "", nil))
	minOf := func(user string) time.Duration {
		best := time.Duration(1 << 62)
		for range 5 {
			start := time.Now()
			_, err := d.Authenticate([]byte(user), []byte("wrong-password"), "")
			require.ErrorIs(t, err, broker.ErrBadCredentials)
			best = min(best, time.Since(start))
		}
		return best
	}
	known, unknown, certOnly := minOf("alice"), minOf("nobody"), minOf("certonly")
	assert.Greater(t, unknown, known/2, "unknown user %v vs known user %v", unknown, known)
	assert.Greater(t, certOnly, known/2, "certificate-only user %v vs known user %v", certOnly, known)
}

// failKV is a KV whose writes fail.
type failKV struct{ session.KV }

var errDisk = errors.New("disk on fire")

func (failKV) Set(_, _ []byte) error { return errDisk }
func (failKV) Delete(_ []byte) error { return errDisk }

func TestStoreErrorChangesNothing(t *testing.T) {
	kv := session.NewMemKV()
	d, err := New(kv, Config{Cost: bcrypt.MinCost})
	require.NoError(t, err)
	require.NoError(t, d.AddUser("alice", "alice-password", []Grant{g("a", "pub")}))

	d.kv = failKV{kv}
	assert.ErrorIs(t, d.AddUser("bob", "bob-password", nil), errDisk)
	_, ok := d.User("bob")
	assert.False(t, ok)
	assert.ErrorIs(t, d.SetGrants("alice", []Grant{g("b", "pub")}), errDisk)
	assert.True(t, d.Allow("alice", "a", broker.AccessPublish))
	assert.False(t, d.Allow("alice", "b", broker.AccessPublish))
	assert.ErrorIs(t, d.SetPassword("alice", "new-password"), errDisk)
	_, err = d.Authenticate([]byte("alice"), []byte("alice-password"), "")
	assert.NoError(t, err)
	assert.ErrorIs(t, d.DeleteUser("alice"), errDisk)
	_, ok = d.User("alice")
	assert.True(t, ok)
	assert.Equal(t, 1, d.Len())
}
