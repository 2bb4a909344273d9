package bench

import (
	"strings"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

func TestResultLineRoundTrip(t *testing.T) {
	r := Result{Scenario: "pairs", Label: "mqttd", Case: "pairs-q2", Version: "3.1.1", QoS: 2, Size: 64,
		Sent: 1000, Expected: 1000, Received: 999, Lost: 1, P99us: 1234.5, Errors: []string{"boom"}}
	line := r.Line()
	require.True(t, strings.HasPrefix(line, ResultPrefix))
	assert.NotContains(t, line, "\n")
	got, err := ParseLine(line + "\n")
	require.NoError(t, err)
	assert.Equal(t, &r, got)

	_, err = ParseLine("{}")
	assert.Error(t, err, "no prefix")
}

func TestResultClean(t *testing.T) {
	assert.True(t, (&Result{Sent: 10}).Clean())
	for name, r := range map[string]Result{
		"lost": {Lost: 1}, "duplicated": {Duplicated: 1}, "reordered": {Reordered: 1},
		"unexpected": {Unexpected: 1}, "malformed": {Malformed: 1}, "unacked": {Unacked: 1},
		"refused": {Refused: 1}, "protocol": {ProtocolErrors: 1}, "conn": {ConnErrors: 1},
		"errors": {Errors: []string{"x"}},
	} {
		assert.False(t, r.Clean(), name)
	}
}

func TestWriteSummary(t *testing.T) {
	var b strings.Builder
	r := Result{Scenario: "fanin", Label: "mosquitto", Version: "3.1.1", QoS: 1, Size: 64, Publishers: 8,
		Subscribers: 1, Inflight: 64, Sent: 100, Expected: 100, Received: 98, Lost: 2, DeliveredPerSec: 1500}
	require.NoError(t, r.WriteSummary(&b))
	out := b.String()
	assert.Contains(t, out, "fanin against mosquitto: MQTT 3.1.1, QoS 1, 64-byte payload")
	assert.Contains(t, out, "NOT CLEAN: lost 2")
	assert.Contains(t, out, "1.5k msgs/s")

	b.Reset()
	c := Result{Scenario: "conns", Conns: 10, Connected: 10, Verified: 10, RSSBefore: 1 << 20, RSSAfter: 2 << 20,
		RSSPerConn: 104857.6}
	require.NoError(t, c.WriteSummary(&b))
	assert.Contains(t, b.String(), "10 of 10 connected")
	assert.Contains(t, b.String(), "1.0 MiB before, 2.0 MiB after: 104858 bytes per connection")
}

func TestErrorListKeepsDistinctFirstFew(t *testing.T) {
	var l errorList
	l.add(nil)
	for i := range 30 {
		l.add(assertErr(strings.Repeat("x", i%12+1)))
	}
	assert.Len(t, l.all(), maxErrors)
	assert.Equal(t, "x", l.all()[0])
}

type assertErr string

func (e assertErr) Error() string { return string(e) }
