package auth

import (
	"errors"
	"strings"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/mqttd/mqttd/broker"
)

func TestFilterProblem(t *testing.T) {
	tests := []struct {
		filter string
		ok     bool
	}{
		{"meter", true},
		{"meter/#", true},
		{"#", true},
		{"+", true},
		{"+/+/temp", true},
		{"meter/+/temp/#", true},
		{"/", true}, // two empty levels
		{"a//b", true},
		{"$SYS/#", true},
		{"$share", false}, // would read as a shared subscription
		{"", false},
		{"a/#/b", false},
		{"a#", false},
		{"a/b#", false},
		{"a+/b", false},
		{"a/+b", false},
		{"a\x00b", false},
		{"a\xffb", false},
		{"$share/g/meter/#", false},
		{"$queue/meter/#", false},
		{strings.Repeat("a", maxFilterLen+1), false},
	}
	for _, tt := range tests {
		t.Run(tt.filter, func(t *testing.T) {
			msg := filterProblem(tt.filter)
			if tt.ok {
				assert.Empty(t, msg)
			} else {
				assert.NotEmpty(t, msg)
			}
		})
	}
}

func TestGrantCompile(t *testing.T) {
	tests := []struct {
		grant  Grant
		levels []string
		access broker.Access
		field  string // "" when valid
	}{
		{g("meter", "pub"), []string{"meter", "#"}, broker.AccessPublish, ""},
		{g("meter/1", "sub"), []string{"meter", "1"}, broker.AccessSubscribe, ""},
		{g("#", "pubsub"), []string{"#"}, broker.AccessPublish | broker.AccessSubscribe, ""},
		{g("+", "pub"), []string{"+"}, broker.AccessPublish, ""},
		{g("meter", "PUB"), nil, 0, "access"},
		{g("meter", ""), nil, 0, "access"},
		{g("meter", "publish"), nil, 0, "access"},
		{g("", "pub"), nil, 0, "filter"},
		{g("a/#/b", "pub"), nil, 0, "filter"},
	}
	for _, tt := range tests {
		t.Run(tt.grant.Filter+"_"+tt.grant.Access, func(t *testing.T) {
			c, err := tt.grant.compile()
			if tt.field != "" {
				var fe *FieldError
				require.True(t, errors.As(err, &fe), "err %v", err)
				assert.Equal(t, tt.field, fe.Field)
				return
			}
			require.NoError(t, err)
			assert.Equal(t, tt.levels, c.levels)
			assert.Equal(t, tt.access, c.access)
		})
	}
}

func TestCompileGrantsFieldNames(t *testing.T) {
	_, err := compileGrants([]Grant{g("a", "pub"), g("b", "sub"), g("c/#/d", "pub")})
	var fe *FieldError
	require.ErrorAs(t, err, &fe)
	assert.Equal(t, "grants[2].filter", fe.Field)

	_, err = compileGrants([]Grant{g("a", "pub"), g("b", "write")})
	require.ErrorAs(t, err, &fe)
	assert.Equal(t, "grants[1].access", fe.Field)
	assert.Contains(t, fe.Error(), `"write"`)

	_, err = compileGrants(make([]Grant, MaxGrants+1))
	require.ErrorAs(t, err, &fe)
	assert.Equal(t, "grants", fe.Field)
}

// TestCovers checks topic matching (s without wildcards) and the subset
// rule for subscription filters (s with wildcards).
func TestCovers(t *testing.T) {
	tests := []struct {
		grant, s string
		want     bool
	}{
		// Parent topic grant: the topic and everything below.
		{"meter", "meter", true},
		{"meter", "meter/1", true},
		{"meter", "meter/1/temp", true},
		{"meter", "meter/", true},
		{"meter", "meters", false},
		{"meter", "mete", false},
		{"meter", "other/meter", false},
		{"meter", "meter/#", true},
		{"meter", "meter/+/temp", true},
		{"meter", "#", false},
		{"meter", "+", false},
		{"meter", "+/1", false},
		// Exact topic grant.
		{"meter/1", "meter/1", true},
		{"meter/1", "meter/1/temp", false},
		{"meter/1", "meter", false},
		{"meter/1", "meter/2", false},
		{"meter/1", "meter/+", false},
		{"meter/1", "meter/#", false},
		// Multi-level wildcard grant.
		{"meter/#", "meter", true}, // [MQTT-4.7.1-2] "a/#" matches "a"
		{"meter/#", "meter/1", true},
		{"meter/#", "meter/1/2/3", true},
		{"meter/#", "meter/+/temp", true},
		{"meter/#", "meter/#", true},
		{"meter/#", "meter/+", true},
		{"meter/#", "meter/+/#", true},
		{"meter/#", "+/1", false},
		{"meter/#", "#", false},
		{"meter/#", "meterx/1", false},
		// Single-level wildcard grant.
		{"meter/+/temp", "meter/1/temp", true},
		{"meter/+/temp", "meter//temp", true},
		{"meter/+/temp", "meter/+/temp", true},
		{"meter/+/temp", "meter/#", false},
		{"meter/+/temp", "meter/1/#", false},
		{"meter/+/temp", "meter/1/temp/x", false},
		{"meter/+/temp", "meter/1", false},
		{"meter/+/temp", "meter/1/hum", false},
		{"meter/+/temp", "meter/+/+", false},
		{"meter/+", "meter", false},
		{"meter/+", "meter/", true},
		{"+/temp", "a/temp", true},
		{"+/temp", "+/temp", true},
		{"+/temp", "#", false},
		{"+", "a", true},
		{"+", "+", true},
		{"+", "a/b", false},
		{"+", "#", false},
		{"+/#", "a", true},
		{"+/#", "#", true},
		{"+/#", "a/b/c", true},
		{"+/#", "+/#", true},
		{"+/#", "+", true},
		{"+/+/#", "#", false},   // "#" matches "a", "+/+/#" does not
		{"a/+/#", "a/#", false}, // "a/#" matches "a"
		// Everything grant.
		{"#", "a", true},
		{"#", "a/b/c", true},
		{"#", "#", true},
		{"#", "+/x/#", true},
		{"#", "/", true},
		// The $ rule [MQTT-4.7.2-1].
		{"#", "$SYS/broker/uptime", false},
		{"#", "$SYS/#", false},
		{"#", "$foo", false},
		{"+/#", "$SYS/x", false},
		{"+/uptime", "$SYS/uptime", false},
		{"$SYS/#", "$SYS/broker/uptime", true},
		{"$SYS/#", "$SYS/#", true},
		{"$SYS", "$SYS/broker", true},
		{"$SYS/+/uptime", "$SYS/broker/uptime", true},
		{"$SYS/#", "#", false},
		{"a/#", "a/$b", true}, // $ matters in the first level only
		{"a/+", "a/$b", true},
	}
	for _, tt := range tests {
		t.Run(tt.grant+" ⊇ "+tt.s, func(t *testing.T) {
			c, err := Grant{Filter: tt.grant, Access: AccessPubSub}.compile()
			require.NoError(t, err)
			assert.Equal(t, tt.want, c.covers(tt.s))
		})
	}
}

func TestAllow(t *testing.T) {
	d, _ := newTestDB(t, Config{
		Superusers:      []string{"root"},
		AnonymousGrants: []Grant{g("public/#", "sub")},
	})
	require.NoError(t, d.AddUser("meter1", "password1", []Grant{
		g("meter", "pub"),
		g("cmd/meter1", "sub"),
		g("shared/+/data", "pubsub"),
	}))
	require.NoError(t, d.AddUser("watcher", "password2", []Grant{g("#", "sub")}))
	require.NoError(t, d.AddUser("nobody", "password3", nil))
	require.NoError(t, d.AddUser("root", "password4", nil))

	pub, sub := broker.AccessPublish, broker.AccessSubscribe
	tests := []struct {
		user, topic string
		access      broker.Access
		want        bool
	}{
		{"meter1", "meter", pub, true},
		{"meter1", "meter/1/temp", pub, true},
		{"meter1", "meter/1/temp", sub, false}, // pub grant only
		{"meter1", "meter/#", sub, false},
		{"meter1", "meter/+", pub, false}, // a wildcard is no topic to publish to
		{"meter1", "meter/#", pub, false},
		{"meter1", "cmd/meter1", sub, true},
		{"meter1", "cmd/meter1/reboot", sub, false}, // two levels: an exact topic, not a parent
		{"meter1", "cmd/meter1/#", sub, false},
		{"meter1", "cmd/meter1", pub, false},
		{"meter1", "cmd/meter2", sub, false},
		{"meter1", "cmd/+", sub, false},
		{"meter1", "shared/x/data", pub, true},
		{"meter1", "shared/x/data", sub, true},
		{"meter1", "shared/+/data", sub, true},
		{"meter1", "shared/#", sub, false},
		{"meter1", "shared/x/data", pub | sub, true},
		{"meter1", "meter/1", pub | sub, false}, // both asked, pub granted
		{"meter1", "", pub, false},
		{"meter1", "other", pub, false},
		{"meter1", "meter", 0, false},
		{"watcher", "a/b", sub, true},
		{"watcher", "#", sub, true},
		{"watcher", "+/+", sub, true},
		{"watcher", "$SYS/#", sub, false},
		{"watcher", "$SYS/broker/uptime", sub, false},
		{"watcher", "a/b", pub, false},
		{"nobody", "a", pub, false},
		{"nobody", "a", sub, false},
		{"nobody", "#", sub, false},
		{"root", "anything/at/all", pub, true},
		{"root", "$SYS/#", sub, true},
		{"root", "#", sub, true},
		{"ghost", "meter/1", pub, false}, // not a user
		{"", "public/news", sub, true},   // anonymous
		{"", "public/#", sub, true},
		{"", "public/news", pub, false},
		{"", "meter/1", sub, false},
	}
	for _, tt := range tests {
		t.Run(tt.user+"_"+tt.topic, func(t *testing.T) {
			assert.Equal(t, tt.want, d.Allow(tt.user, tt.topic, tt.access))
		})
	}
}

func TestAllowSuperuserWithoutAccount(t *testing.T) {
	// A superuser name grants everything even before the user exists;
	// logging in still needs the user.
	d, _ := newTestDB(t, Config{Superusers: []string{"admin"}})
	assert.True(t, d.Allow("admin", "x/y", broker.AccessPublish))
	_, err := d.Authenticate([]byte("admin"), []byte("whatever1"), "")
	assert.ErrorIs(t, err, broker.ErrBadCredentials)
}

func TestAnonymousDefaultsToNothing(t *testing.T) {
	d, _ := newTestDB(t, Config{})
	assert.False(t, d.Allow("", "a", broker.AccessPublish))
	assert.False(t, d.Allow("", "#", broker.AccessSubscribe))
}

// TestCoversExhaustive compares grant.covers with its definition over a
// small world: every filter of up to four levels built from "a", "$s",
// "", "+" and "#", against every topic of up to five levels built from
// "a", "b", "$s" and "". A grant covers a filter exactly when every topic
// the filter matches is matched by the grant. Five levels and the extra
// word "b" are enough for a counterexample to any of these filters.
func TestCoversExhaustive(t *testing.T) {
	// words builds every "/"-joined string of 1..maxLevels levels from
	// ws, where "#" may only end one; "" alone is neither topic nor filter.
	words := func(ws []string, maxLevels int) []string {
		var out []string
		var build func(prefix string, n int)
		build = func(prefix string, n int) {
			for _, w := range ws {
				s := w
				if n > 0 {
					s = prefix + "/" + w
				}
				if s != "" {
					out = append(out, s)
				}
				if w != "#" && n+1 < maxLevels {
					build(s, n+1)
				}
			}
		}
		build("", 0)
		return out
	}
	filters := words([]string{"a", "$s", "", "+", "#"}, 4)
	topics := words([]string{"a", "b", "$s", ""}, 5)

	// A filter's match set over topics, as a bitset.
	type bits []uint64
	matchSet := func(filter string) bits {
		m := make(bits, (len(topics)+63)/64)
		for i, tp := range topics {
			if refMatch(filter, tp) {
				m[i/64] |= 1 << (i % 64)
			}
		}
		return m
	}
	subset := func(a, b bits) bool {
		for i := range a {
			if a[i]&^b[i] != 0 {
				return false
			}
		}
		return true
	}
	plain := make([]bits, len(filters))
	for i, f := range filters {
		plain[i] = matchSet(f)
	}
	checked, covered := 0, 0
	for _, gf := range filters {
		c, err := Grant{Filter: gf, Access: AccessSub}.compile()
		require.NoError(t, err, gf)
		gm := matchSet(strings.Join(c.levels, "/")) // a parent grant "a" is "a/#"
		for j, sf := range filters {
			want := subset(plain[j], gm)
			if got := c.covers(sf); got != want {
				t.Errorf("grant %q, filter %q: covers %v, by definition %v", gf, sf, got, want)
			}
			checked++
			if want {
				covered++
			}
		}
		// Topics are filters without wildcards: plain matching.
		for i, tp := range topics {
			if got, want := c.covers(tp), gm[i/64]&(1<<(i%64)) != 0; got != want {
				t.Errorf("grant %q, topic %q: covers %v, matching %v", gf, tp, got, want)
			}
		}
	}
	t.Logf("%d grant/filter pairs, %d covered; %d topics", checked, covered, len(topics))
	assert.Greater(t, covered, 1000)
	assert.Greater(t, checked-covered, 1000)
	c, err := Grant{Filter: "#", Access: AccessSub}.compile()
	require.NoError(t, err)
	assert.False(t, c.covers(""))
}
