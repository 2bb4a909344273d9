package auth

import (
	"fmt"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/mqttd/mqttd/broker"
)

// benchDB has 10,000 users, "u42" among them, each with ten grants of
// the usual shapes; the topics match late or not at all, so Allow looks
// at most or all grants.
func benchDB(tb testing.TB) *DB {
	d, _ := newTestDB(tb, Config{Superusers: []string{"root"}})
	grants := []Grant{
		g("cmd/+/reboot", "sub"),
		g("cmd/+/config", "sub"),
		g("fw/+/image/#", "sub"),
		g("site/a/+/temp", "pub"),
		g("site/b/+/temp", "pub"),
		g("site/c/+/temp", "pub"),
		g("alerts", "pub"),
		g("status/+", "pub"),
		g("shared/data/#", "pubsub"),
		g("meter", "pub"),
	}
	for i := range 10000 {
		u := &user{name: fmt.Sprintf("u%d", i), spec: grants}
		var err error
		u.grants, err = compileGrants(grants)
		require.NoError(tb, err)
		d.publish(u) // skips bcrypt and the KV: only Allow is measured
	}
	return d
}

var allowCases = []struct {
	name, topic string
	access      broker.Access
	want        bool
}{
	{"pub_last_grant", "meter/7/energy/total", broker.AccessPublish, true},
	{"pub_denied", "other/7/energy/total", broker.AccessPublish, false},
	{"sub_filter", "shared/data/+/x", broker.AccessSubscribe, true},
	{"sub_denied", "cmd/#", broker.AccessSubscribe, false},
}

func BenchmarkAllow(b *testing.B) {
	d := benchDB(b)
	for _, c := range allowCases {
		b.Run(c.name, func(b *testing.B) {
			require.Equal(b, c.want, d.Allow("u42", c.topic, c.access))
			b.ReportAllocs()
			for b.Loop() {
				d.Allow("u42", c.topic, c.access)
			}
		})
	}
	b.Run("superuser", func(b *testing.B) {
		b.ReportAllocs()
		for b.Loop() {
			d.Allow("root", "meter/7/energy/total", broker.AccessPublish)
		}
	})
	b.Run("parallel", func(b *testing.B) {
		b.ReportAllocs()
		b.RunParallel(func(pb *testing.PB) {
			for pb.Next() {
				d.Allow("u42", "meter/7/energy/total", broker.AccessPublish)
			}
		})
	})
}

// BenchmarkAuthenticateCached is a reconnect: the password verified before.
func BenchmarkAuthenticateCached(b *testing.B) {
	d, _ := newTestDB(b, Config{})
	require.NoError(b, d.AddUser("alice", "alice-password", nil))
	user, pass := []byte("alice"), []byte("alice-password")
	_, err := d.Authenticate(user, pass, "")
	require.NoError(b, err)
	b.ReportAllocs()
	for b.Loop() {
		_, _ = d.Authenticate(user, pass, "")
	}
}

func TestAllowAllocs(t *testing.T) {
	d := benchDB(t)
	for _, c := range allowCases {
		require.Equal(t, c.want, d.Allow("u42", c.topic, c.access), c.name)
		allocs := testing.AllocsPerRun(100, func() { d.Allow("u42", c.topic, c.access) })
		assert.Zero(t, allocs, c.name)
	}
}
