package broker

import (
	"fmt"
	"sort"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/mqttd/mqttd/codec"
	"github.com/mqttd/mqttd/session"
)

func matchIDs(t *trie, topic string) []string {
	m := &matcher{}
	t.match(topic, m)
	var out []string
	for _, e := range m.plain {
		out = append(out, e.s.ClientID)
	}
	for _, g := range m.groups {
		for _, e := range g.members {
			out = append(out, "share:"+e.s.ClientID)
		}
	}
	sort.Strings(out)
	return out
}

func TestTrieMatch(t *testing.T) {
	filters := map[string]string{
		"a": "sport/tennis/player1",
		"b": "sport/tennis/+",
		"c": "sport/#",
		"d": "#",
		"e": "+/+",
		"f": "+",
		"g": "/+",
		"h": "$SYS/#",
		"i": "$SYS/broker/+",
		"j": "+/tennis/#",
		"k": "sport/+/player1/#",
		"l": "//x",
	}
	tr := &trie{}
	for id, f := range filters {
		tr.add(session.New(id, ""), "", f, session.Subscription{Filter: f})
	}
	cases := []struct {
		topic string
		want  []string
	}{
		{"sport/tennis/player1", []string{"a", "b", "c", "d", "j", "k"}},
		{"sport/tennis/player2", []string{"b", "c", "d", "j"}},
		{"sport", []string{"c", "d", "f"}}, // "sport/#" matches its parent [MQTT-4.7.1-2]
		{"sport/", []string{"c", "d", "e"}},
		{"/finance", []string{"d", "e", "g"}},
		{"$SYS/broker/uptime", []string{"h", "i"}}, // no leading wildcard matches $ topics [MQTT-4.7.2-1]
		{"$SYS/broker", []string{"h"}},
		{"//x", []string{"d", "l"}},
		{"other/thing/deep", []string{"d"}},
	}
	for _, tc := range cases {
		t.Run(tc.topic, func(t *testing.T) {
			assert.Equal(t, tc.want, matchIDs(tr, tc.topic))
		})
	}
	assert.EqualValues(t, len(filters), tr.count.Load())
}

func TestTrieDollarLevelExact(t *testing.T) {
	tr := &trie{}
	tr.add(session.New("x", ""), "", "$SYS/broker", session.Subscription{})
	assert.Equal(t, []string{"x"}, matchIDs(tr, "$SYS/broker"))
	assert.Empty(t, matchIDs(tr, "$SYS/broker/x"))
}

func TestTrieRemovePrunes(t *testing.T) {
	tr := &trie{}
	s := session.New("c1", "")
	tr.add(s, "", "a/b/c", session.Subscription{})
	tr.add(s, "g1", "a/+", session.Subscription{})
	assert.True(t, tr.add(s, "", "a/b/c", session.Subscription{QoS: 1}), "re-subscribe replaces")
	assert.EqualValues(t, 2, tr.count.Load())
	assert.True(t, tr.remove(s, "c1", "", "a/b/c"))
	assert.False(t, tr.remove(s, "c1", "", "a/b/c"))
	assert.True(t, tr.remove(s, "c1", "g1", "a/+"))
	assert.EqualValues(t, 0, tr.count.Load())
	assert.Empty(t, tr.root.children, "empty branches are pruned")
	// A newer session under the same ID is not removed by the old one.
	s2 := session.New("c1", "")
	tr.add(s2, "", "x", session.Subscription{})
	assert.False(t, tr.remove(s, "c1", "", "x"))
	assert.Equal(t, []string{"c1"}, matchIDs(tr, "x"))
}

func TestMergeOverlapping(t *testing.T) {
	tr := &trie{}
	s := session.New("c", "")
	tr.add(s, "", "a/+", session.Subscription{QoS: 0, ID: 1})
	tr.add(s, "", "a/#", session.Subscription{QoS: 2, ID: 2})
	tr.add(s, "", "a/b", session.Subscription{QoS: 1, ID: 3, NoLocal: true})
	m := &matcher{}
	tr.match("a/b", m)
	msg := &session.Message{Topic: "a/b", QoS: codec.QoS2}
	out := m.merge(msg, "c")
	require.Len(t, out, 1)
	assert.Equal(t, codec.QoS2, out[0].QoS)
	ids := append([]uint32(nil), out[0].SubIDs...)
	sort.Slice(ids, func(i, j int) bool { return ids[i] < ids[j] })
	assert.Equal(t, []uint32{1, 2}, ids, "the No Local subscription does not match its own client")
}

func TestMergeManySessions(t *testing.T) {
	tr := &trie{}
	for i := 0; i < 100; i++ {
		s := session.New(fmt.Sprint("c", i), "")
		tr.add(s, "", "t/+", session.Subscription{QoS: 1})
		tr.add(s, "", "t/#", session.Subscription{QoS: 0})
	}
	m := &matcher{}
	tr.match("t/x", m)
	out := m.merge(&session.Message{Topic: "t/x", QoS: 2}, "")
	require.Len(t, out, 100)
	for _, d := range out {
		assert.Equal(t, codec.QoS1, d.QoS)
	}
}

func TestRetainedMatch(t *testing.T) {
	r := &retained{}
	for _, tp := range []string{"a", "a/b", "a/b/c", "x/b", "$SYS/up", "/lead"} {
		r.set(&session.Message{Topic: tp, Payload: []byte("v")})
	}
	topics := func(f string) []string {
		var out []string
		for _, m := range r.match(f, nil) {
			out = append(out, m.Topic)
		}
		sort.Strings(out)
		return out
	}
	assert.Equal(t, []string{"/lead", "a", "a/b", "a/b/c", "x/b"}, topics("#"))
	assert.Equal(t, []string{"a", "a/b", "a/b/c"}, topics("a/#"))
	assert.Equal(t, []string{"a/b", "x/b"}, topics("+/b"))
	assert.Equal(t, []string{"$SYS/up"}, topics("$SYS/#"))
	assert.Equal(t, []string{"/lead"}, topics("+/lead"))
	r.set(&session.Message{Topic: "a/b", Payload: nil})
	assert.Equal(t, []string{"a", "a/b/c"}, topics("a/#"))
	assert.EqualValues(t, 5, r.count.Load())
	r.set(&session.Message{Topic: "a/b/c"})
	r.set(&session.Message{Topic: "a"})
	assert.Equal(t, []string(nil), topics("a/#"))
}

func TestParseFilter(t *testing.T) {
	b := &Broker{cfg: Config{Names: NamesStrict}}
	cases := []struct {
		raw           string
		ok            bool
		group, filter string
	}{
		{"a/b", true, "", "a/b"},
		{"a/+/#", true, "", "a/+/#"},
		{"#", true, "", "#"},
		{"a/#/b", false, "", ""},
		{"a+", false, "", ""},
		{"a#", false, "", ""},
		{"$share/g1/a/+", true, "g1", "a/+"},
		{"$share/g1", false, "", ""},
		{"$share//a", false, "", ""},
		{"$queue/a/b", true, "$queue", "a/b"},
		{"$SYS/#", true, "", "$SYS/#"},
		{"a b", false, "", ""},
		{"a.b", false, "", ""},
		{"", false, "", ""},
	}
	for _, tc := range cases {
		t.Run(tc.raw, func(t *testing.T) {
			pf, ok := b.parseFilter(tc.raw)
			require.Equal(t, tc.ok, ok)
			if ok {
				assert.Equal(t, tc.group, pf.group)
				assert.Equal(t, tc.filter, pf.filter)
			}
		})
	}
	b.cfg.Names = NamesMQTT
	_, ok := b.parseFilter("a b/ü")
	assert.True(t, ok, "mqtt names allow any UTF-8 level")
}

func TestNames(t *testing.T) {
	b := &Broker{cfg: Config{Names: NamesStrict, MaxClientIDLen: 128}}
	long := make([]byte, 129)
	for i := range long {
		long[i] = 'a'
	}
	for _, tc := range []struct {
		id    string
		ok    bool
		group string
	}{
		{"dev-1_A", true, ""},
		{"G1@@@dev1", true, "G1"},
		{"@@@dev1", false, ""},
		{"G1@@@", false, ""},
		{"bad id", false, ""},
		{string(long), false, ""},
		{string(long[:128]), true, ""},
	} {
		g, ok := b.checkClientID(tc.id)
		assert.Equal(t, tc.ok, ok, tc.id)
		assert.Equal(t, tc.group, g, tc.id)
	}
	for _, tc := range []struct {
		topic string
		ok    bool
	}{
		{"meter/1/temp", true}, {"/a", true}, {"a//b", true}, {"$SYS/x", true},
		{"a/$b", false}, {"a b", false}, {"a/+", false}, {"", false}, {"a.b", false},
	} {
		assert.Equal(t, tc.ok, b.validTopic(tc.topic), tc.topic)
	}
}

// TestTrieManySubscribersOneFilter crosses the point where a node indexes
// its subscribers, both ways, with removals from the middle.
func TestTrieManySubscribersOneFilter(t *testing.T) {
	tr := &trie{}
	ss := make([]*session.Session, 100)
	for i := range ss {
		ss[i] = session.New(fmt.Sprint("c", i), "")
		tr.add(ss[i], "", "all/+", session.Subscription{QoS: 1})
	}
	require.Len(t, matchIDs(tr, "all/x"), 100)
	assert.True(t, tr.add(ss[50], "", "all/+", session.Subscription{QoS: 2}), "re-subscribe found through the index")
	for i := 0; i < 100; i += 3 {
		require.True(t, tr.remove(ss[i], ss[i].ClientID, "", "all/+"), i)
	}
	got := matchIDs(tr, "all/x")
	require.Len(t, got, 66)
	for i := 0; i < 100; i++ {
		want := i%3 != 0
		assert.Equal(t, want, tr.remove(ss[i], ss[i].ClientID, "", "all/+"), i)
	}
	assert.Empty(t, matchIDs(tr, "all/x"))
	assert.EqualValues(t, 0, tr.count.Load())
	assert.Empty(t, tr.root.children)
}

// TestTrieSharedMembersAfterUnlock: routing reads a shared group's members
// after the trie's lock is released while (un)subscribes replace them; the
// matcher keeps the slice it saw (run with -race).
func TestTrieSharedMembersAfterUnlock(t *testing.T) {
	tr := &trie{}
	a, b := session.New("a", ""), session.New("b", "")
	tr.add(a, "g", "t/+", session.Subscription{Filter: "$share/g/t/+"})
	done := make(chan struct{})
	go func() {
		defer close(done)
		for range 2000 {
			tr.add(b, "g", "t/+", session.Subscription{Filter: "$share/g/t/+"})
			tr.remove(b, "b", "g", "t/+")
		}
	}()
	seen := 0
	for {
		select {
		case <-done:
			assert.Positive(t, seen)
			return
		default:
		}
		m := &matcher{}
		tr.match("t/1", m)
		for _, gm := range m.groups {
			for _, e := range gm.members {
				if e.s.ClientID != "" {
					seen++
				}
			}
		}
	}
}

// TestTrieNodeInlineSubscriber: a node keeps a lone plain subscriber
// inline and moves it out and back as others come and go, shared groups
// beside it.
func TestTrieNodeInlineSubscriber(t *testing.T) {
	tr := &trie{}
	a, b := session.New("a", ""), session.New("b", "")
	require.False(t, tr.add(a, "", "x/y", session.Subscription{QoS: 1}))
	leaf := tr.root.children["x"].children["y"]
	require.NotNil(t, leaf)
	assert.Same(t, a, leaf.one.s)
	assert.Nil(t, leaf.more, "a lone subscriber needs nothing else")

	require.False(t, tr.add(b, "", "x/y", session.Subscription{QoS: 0}))
	require.False(t, tr.add(a, "g", "x/y", session.Subscription{QoS: 2}))
	assert.Equal(t, []string{"a", "b", "share:a"}, matchIDs(tr, "x/y"))
	assert.Nil(t, leaf.one.s, "two subscribers live in more")

	require.True(t, tr.remove(a, "a", "", "x/y"))
	assert.Equal(t, []string{"b", "share:a"}, matchIDs(tr, "x/y"))
	assert.Same(t, b, leaf.one.s, "the last one moves back inline")
	require.True(t, tr.remove(a, "a", "g", "x/y"))
	assert.Nil(t, leaf.more)

	assert.True(t, tr.add(b, "", "x/y", session.Subscription{QoS: 2}), "re-subscribe replaces")
	m := &matcher{}
	tr.match("x/y", m)
	out := m.merge(&session.Message{Topic: "x/y", QoS: codec.QoS2}, "")
	require.Len(t, out, 1)
	assert.Equal(t, codec.QoS2, out[0].QoS)
	assert.False(t, tr.remove(a, "b", "", "x/y"), "another session's subscription stays")
	require.True(t, tr.remove(nil, "b", "", "x/y"))
	assert.EqualValues(t, 0, tr.count.Load())
	assert.Empty(t, tr.root.children, "empty branches are pruned")
}
