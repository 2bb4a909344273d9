package integration

import (
	"fmt"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

// TestSharedSubscriptions: each message published to a shared
// subscription's filter goes to exactly one member of the group
// [MQTT-4.8.2]; every member gets some; other groups and non-shared
// subscriptions on the same filter get every message. When a member leaves,
// the others take its share.
func TestSharedSubscriptions(t *testing.T) {
	t.Parallel()
	cases := []struct {
		name   string
		filter string // shared filter for the group under test
		other  string // a second group on the same topics ("" for none)
	}{
		{"share", "$share/g/sh/+", "$share/g2/sh/+"},
		{"queue", "$queue/sh/+", ""},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			s := start(t, anon())
			members := []client{
				newClient(t, s, v5, "m1"),
				newClient(t, s, v5, "m2"),
				newClient(t, s, v311, "m3"),
			}
			for i, m := range members {
				require.Equal(t, byte(1), m.Sub(t, tc.filter, 1), "member %d subscribing to %q", i, tc.filter)
			}
			plain := newClient(t, s, v5, "plain")
			require.Equal(t, byte(1), plain.Sub(t, "sh/+", 1))
			var other client
			if tc.other != "" {
				other = newClient(t, s, v311, "other")
				require.Equal(t, byte(1), other.Sub(t, tc.other, 1))
			}
			pub := newClient(t, s, v5, "pub")

			const n = 300
			for i := 0; i < n; i++ {
				pub.Pub(t, "sh/t", numbered("s", i), 1, false)
			}
			for i := 0; i < n; i++ {
				assert.Equal(t, string(numbered("s", i)), string(plain.Recv(t).Payload), "non-shared subscriber")
				if other != nil {
					assert.Equal(t, string(numbered("s", i)), string(other.Recv(t).Payload), "second group")
				}
			}
			counts := collectShared(t, members, n)
			for i, c := range counts {
				assert.Positive(t, c, "member %d got no messages (counts %v)", i, counts)
			}

			// A member leaves: the remaining ones get everything.
			members[0].Close()
			for i := 0; i < 30; i++ {
				pub.Pub(t, "sh/t", numbered("after", i), 1, false)
			}
			collectShared(t, members[1:], 30)
		})
	}
}

// collectShared reads the members' messages until n distinct payloads have
// arrived, failing on a duplicate, and then checks that nothing more comes
// for a moment. It returns the count per member.
func collectShared(t *testing.T, members []client, n int) []int {
	t.Helper()
	counts := make([]int, len(members))
	seen := map[string]int{}
	deadline := time.Now().Add(waitMsg)
	for len(seen) < n {
		got := false
		for i, m := range members {
			select {
			case msg := <-msgChan(m):
				got = true
				if j, dup := seen[string(msg.Payload)]; dup {
					require.FailNow(t, "duplicate delivery to a shared group", "%q went to member %d and member %d", msg.Payload, j, i)
				}
				seen[string(msg.Payload)] = i
				counts[i]++
			default:
			}
		}
		if time.Now().After(deadline) {
			require.FailNow(t, "shared group missed messages", "%d of %d arrived (per member %v)", len(seen), n, counts)
		}
		if !got {
			time.Sleep(time.Millisecond)
		}
	}
	// Nothing more may come: no message went to two members.
	time.Sleep(300 * time.Millisecond)
	for i, m := range members {
		select {
		case msg := <-msgChan(m):
			require.FailNow(t, "extra delivery to a shared group", "member %d got %q after all %d arrived", i, msg.Payload, n)
		default:
		}
	}
	return counts
}

// msgChan returns a client's delivery channel.
func msgChan(c client) chan msg {
	switch c := c.(type) {
	case *v5Client:
		return c.msgs
	case *v3Client:
		return c.msgs
	}
	panic(fmt.Sprintf("msgChan: unknown client %T", c))
}
