package auth

import (
	"strings"
	"testing"
)

// refMatch is plain MQTT topic matching, written the obvious way: filter
// matches topic (a topic name without wildcards).
func refMatch(filter, topic string) bool {
	if strings.HasPrefix(topic, "$") && (strings.HasPrefix(filter, "+") || strings.HasPrefix(filter, "#")) {
		return false // [MQTT-4.7.2-1]
	}
	f, tl := strings.Split(filter, "/"), strings.Split(topic, "/")
	for i, lvl := range f {
		if lvl == "#" {
			return true
		}
		if i >= len(tl) || (lvl != "+" && lvl != tl[i]) {
			return false
		}
	}
	return len(f) == len(tl)
}

// instances returns topic names that filter s matches: each "+" replaced
// by a few words, "#" by nothing (when allowed) or some levels.
func instances(s string) []string {
	out := []string{""}
	for i, lvl := range strings.Split(s, "/") {
		var next []string
		for _, prefix := range out {
			sep := "/"
			if i == 0 {
				sep = ""
			}
			switch lvl {
			case "+":
				for _, w := range []string{"x", "", "$y"} {
					if i == 0 && w == "$y" {
						continue // a first "+" does not match $ topics
					}
					next = append(next, prefix+sep+w)
				}
			case "#":
				if i > 0 && prefix != "" {
					next = append(next, prefix) // "a/#" matches "a"; "" is no topic
				}
				next = append(next, prefix+sep+"x", prefix+sep+"x/y/z", prefix+sep+"q")
			default:
				next = append(next, prefix+sep+lvl)
			}
		}
		out = next
		if len(out) > 200 {
			out = out[:200]
		}
	}
	return out
}

// FuzzCovers checks grant.covers against refMatch for topic names, and,
// for filters, that a covered filter's topics are all matched by the
// grant (the subset rule never allows more than the grant's filter).
func FuzzCovers(f *testing.F) {
	seeds := [][2]string{
		{"meter/#", "meter/1/temp"}, {"meter/+/temp", "meter/#"}, {"#", "$SYS/x"},
		{"+/#", "#"}, {"a/+/#", "a/#"}, {"meter", "meter/+"}, {"$SYS/#", "$SYS/+"},
		{"+", "a/b"}, {"a//b", "a/+/b"}, {"/", "/"}, {"#", "+/+/#"},
	}
	for _, s := range seeds {
		f.Add(s[0], s[1])
	}
	f.Fuzz(func(t *testing.T, filter, s string) {
		if filterProblem(filter) != "" || filterProblem(s) != "" || len(s) > 200 || len(filter) > 200 {
			return
		}
		c, err := Grant{Filter: filter, Access: AccessPubSub}.compile()
		if err != nil {
			t.Fatalf("valid filter %q does not compile: %v", filter, err)
		}
		eff := strings.Join(c.levels, "/") // with a parent grant's "/#"
		got := c.covers(s)
		if !strings.ContainsAny(s, "+#") {
			if want := refMatch(eff, s); got != want {
				t.Fatalf("grant %q, topic %q: covers %v, MQTT matching %v", filter, s, got, want)
			}
			return
		}
		if got {
			for _, topic := range instances(s) {
				if !refMatch(eff, topic) {
					t.Fatalf("grant %q covers filter %q, but not its topic %q", filter, s, topic)
				}
			}
		}
		if s == eff && !got {
			t.Fatalf("grant %q does not cover its own filter", filter)
		}
	})
}

// FuzzDecodeRecord: a stored record never panics the loader, and a record
// that loads encodes back to one that loads the same.
func FuzzDecodeRecord(f *testing.F) {
	f.Add([]byte("u/alice"), []byte(`{"v":1,"name":"alice","hash":"","grants":[{"filter":"a/#","access":"pub"}]}`))
	f.Add([]byte("u/bob"), []byte(`{"v":1,"name":"bob","hash":"$2a$04$abcdefghijklmnopqrstuu5s2v8.iXieOjg/.AySBTTZIIVFJeBe","grants":null}`))
	f.Add([]byte("u/x"), []byte(`{"v":2}`))
	f.Add([]byte("u/x"), []byte(`[]`))
	f.Fuzz(func(t *testing.T, key, val []byte) {
		u, err := decodeRecord(key, val)
		if err != nil {
			return
		}
		enc, err := encodeRecord(u)
		if err != nil {
			t.Fatalf("re-encode: %v", err)
		}
		u2, err := decodeRecord(key, enc)
		if err != nil {
			t.Fatalf("re-decode of %s: %v", enc, err)
		}
		if u2.name != u.name || string(u2.hash) != string(u.hash) || len(u2.grants) != len(u.grants) {
			t.Fatalf("round trip changed the user: %+v -> %+v", u, u2)
		}
	})
}

// FuzzParseUsersFile: no input panics the users file parser; what it
// accepts has valid names and compiled grants.
func FuzzParseUsersFile(f *testing.F) {
	f.Add([]byte("users:\n  - {name: a, password: password1, grants: [{filter: x, access: pub}]}\n"))
	f.Add([]byte("replace: true\nusers: []\n"))
	f.Add([]byte("users:\n  - name: a\n    grants:\n      - filter: #\n"))
	f.Fuzz(func(t *testing.T, data []byte) {
		entries, err := parseUsersFile(data)
		if err != nil {
			return
		}
		for _, e := range entries {
			if nameProblem(e.name) != "" {
				t.Fatalf("accepted bad name %q", e.name)
			}
			if len(e.grants) != len(e.spec) {
				t.Fatalf("grants %d, spec %d", len(e.grants), len(e.spec))
			}
		}
	})
}
