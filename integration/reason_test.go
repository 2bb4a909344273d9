package integration

import (
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

// TestReasonStrings: MQTT 5 refusals and server DISCONNECTs say why in a
// Reason String, so an operator reading a client's log sees the cause.
func TestReasonStrings(t *testing.T) {
	cfg := anon()
	cfg.MaxPacketSize = 1024
	s := start(t, cfg)

	c := dialRaw(t, s.TCP, v5)
	ack := c.connect(t, connectOpts{Version: v5, ClientID: "bad id!", Clean: true})
	require.Equal(t, byte(0x85), ack.Reason)
	rs, ok := ack.Props.get(propReasonString)
	require.True(t, ok, "CONNACK 0x85 without a reason string")
	assert.Contains(t, string(rs.Bytes), "client id")

	d, _ := connectRaw(t, s.TCP, connectOpts{Version: v5, ClientID: "big", Clean: true})
	d.write(t, pub{Topic: "a/b", Payload: make([]byte, 2000)}.encode(v5))
	pkts := d.expectClosed(t, 3*time.Second)
	require.NotEmpty(t, pkts)
	last := pkts[len(pkts)-1]
	require.Equal(t, pDISCONNECT, last.Type)
	require.Equal(t, byte(0x95), last.Reason)
	rs, ok = last.Props.get(propReasonString)
	require.True(t, ok, "DISCONNECT 0x95 without a reason string")
	assert.Contains(t, string(rs.Bytes), "packet too large")
}
