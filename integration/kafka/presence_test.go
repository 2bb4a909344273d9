package kafka

import (
	"encoding/json"
	"io"
	"net"
	"sort"
	"strings"
	"testing"
	"time"

	"github.com/IBM/sarama"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/mqttd/mqttd/kafkabridge"
)

type presenceRecord struct {
	ClientID string `json:"clientid"`
	TS       int64  `json:"ts"`
	Seq      uint64 `json:"seq"`
	Event    string `json:"event"`
	Reason   string `json:"reason"`
	IP       string `json:"ip"`
	Protocol string `json:"protocol"`
}

// rawConnect opens a TCP connection and completes an MQTT 3.1.1 CONNECT
// (clean session, keepalive 60 s) by hand; the caller drops it.
func rawConnect(t *testing.T, addr, id string) net.Conn {
	t.Helper()
	c, err := net.DialTimeout("tcp", addr, wait)
	require.NoError(t, err)
	body := []byte{0, 4, 'M', 'Q', 'T', 'T', 4, 0x02, 0, 60, 0, byte(len(id))}
	body = append(body, id...)
	_, err = c.Write(append([]byte{0x10, byte(len(body))}, body...))
	require.NoError(t, err)
	require.NoError(t, c.SetReadDeadline(time.Now().Add(wait)))
	ack := make([]byte, 4)
	_, err = io.ReadFull(c, ack)
	require.NoError(t, err)
	require.Equal(t, []byte{0x20, 2, 0, 0}, ack, "CONNACK accepted")
	return c
}

// TestKafkaPresence: connect and disconnect events for a connect, a clean
// disconnect, a network drop and a takeover, keyed by client ID, with a
// seq that increases from event to event.
func TestKafkaPresence(t *testing.T) {
	e := setup(t, nil)
	id := "pres-" + uniq()

	d := connect(t, e.mqttURL, id, true) // 1: connect
	d.Disconnect(100)                    // 2: clean disconnect
	require.Eventually(t, func() bool { return e.br.Metrics().Presence == 2 }, wait, 10*time.Millisecond)

	raw := rawConnect(t, e.srv.TCP, id) // 3: connect
	require.Eventually(t, func() bool { return e.br.Metrics().Presence == 3 }, wait, 10*time.Millisecond)
	raw.Close() // 4: network drop
	require.Eventually(t, func() bool { return e.br.Metrics().Presence == 4 }, wait, 10*time.Millisecond)

	first := connect(t, e.mqttURL, id, true) // 5: connect
	second := connect(t, e.mqttURL, id, true)
	// 6 and 7: the second's connect and the first's takeover, in either order.
	require.Eventually(t, func() bool { return !first.IsConnectionOpen() }, wait, 10*time.Millisecond)
	require.Eventually(t, func() bool { return e.br.Metrics().Presence == 7 }, wait, 10*time.Millisecond)
	second.Disconnect(100) // 8: clean disconnect

	mine := func(m *sarama.ConsumerMessage) bool { return string(m.Key) == id }
	conns := consume(t, kafkabridge.DefaultConnectTopic, 4, wait, mine)
	discs := consume(t, kafkabridge.DefaultDisconnectTopic, 4, wait, mine)
	require.Len(t, conns, 4)
	require.Len(t, discs, 4)

	var all []presenceRecord
	decode := func(recs []*sarama.ConsumerMessage, event string) {
		var last uint64
		for _, r := range recs {
			var v presenceRecord
			require.NoError(t, json.Unmarshal(r.Value, &v), "%s", r.Value)
			assert.Equal(t, id, v.ClientID)
			assert.Equal(t, event, v.Event)
			assert.Equal(t, "127.0.0.1", v.IP)
			assert.Equal(t, "mqtt", v.Protocol)
			assert.NotZero(t, v.TS)
			assert.Greater(t, v.Seq, last, "seq increases within %s", r.Topic)
			last = v.Seq
			all = append(all, v)
		}
	}
	decode(conns, "connect")
	decode(discs, "disconnect")

	sort.Slice(all, func(i, j int) bool { return all[i].Seq < all[j].Seq })
	var got []string
	for i, v := range all {
		if i > 0 {
			require.NotEqual(t, all[i-1].Seq, v.Seq, "seqs are unique")
		}
		got = append(got, v.Event+":"+reasonKind(v.Reason))
	}
	// By seq: the lifecycle as it happened (the takeover's connect and
	// disconnect may come in either order).
	want1 := []string{"connect:connect", "disconnect:clean", "connect:connect", "disconnect:network",
		"connect:connect", "connect:connect", "disconnect:takeover", "disconnect:clean"}
	want2 := []string{"connect:connect", "disconnect:clean", "connect:connect", "disconnect:network",
		"connect:connect", "disconnect:takeover", "connect:connect", "disconnect:clean"}
	if strings.Join(got, " ") != strings.Join(want2, " ") {
		assert.Equal(t, want1, got, "events ordered by seq")
	}
}

// reasonKind classifies a disconnect reason.
func reasonKind(r string) string {
	switch {
	case r == "connect":
		return "connect"
	case r == "takeover":
		return "takeover"
	case r == "client disconnect":
		return "clean"
	case strings.HasPrefix(r, "network error") || r == "connection closed":
		return "network"
	}
	return "other(" + r + ")"
}
