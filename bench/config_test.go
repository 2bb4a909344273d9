package bench

import (
	"testing"
	"time"

	"github.com/mqttd/mqttd/codec"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

func TestConfigDefaults(t *testing.T) {
	c := Config{Scenario: "fanin"}
	require.NoError(t, c.Validate())
	assert.Equal(t, "127.0.0.1:1883", c.Addr)
	assert.Equal(t, codec.V311, c.Version)
	assert.Equal(t, 64, c.Size)
	assert.Equal(t, 10*time.Second, c.Duration)
	assert.Equal(t, time.Duration(0), c.Warmup)
	assert.Equal(t, 5*time.Second, c.Drain)
	assert.Equal(t, 64, c.Inflight)
	assert.Equal(t, 8, c.Publishers)
	assert.Equal(t, 1000, c.Subscribers)
	assert.Equal(t, 50, c.Pairs)
	assert.Equal(t, 10000, c.Conns)
	assert.Equal(t, 64, c.ConnInflight)
	assert.False(t, c.NoPipeline, "pipelined by default")
	assert.Equal(t, "bench", c.TopicPrefix)

	d := DefaultConfig()
	assert.Equal(t, 2*time.Second, d.Warmup)
}

func TestConfigValidate(t *testing.T) {
	tests := []struct {
		field string
		edit  func(*Config)
	}{
		{"scenario", func(c *Config) { c.Scenario = "nosuch" }},
		{"addr", func(c *Config) { c.Addr = "10.0.0.1:1883" }},
		{"addr", func(c *Config) { c.Addr = "localhost" }},
		{"version", func(c *Config) { c.Version = 3 }},
		{"qos", func(c *Config) { c.QoS = 3 }},
		{"size", func(c *Config) { c.Size = 15 }},
		{"warmup/duration/drain", func(c *Config) { c.Drain = -time.Second }},
		{"inflight", func(c *Config) { c.Inflight = 65536 }},
		{"rate", func(c *Config) { c.Rate = -1 }},
		{"publishers", func(c *Config) { c.Publishers = -1 }},
		{"conns", func(c *Config) { c.Conns = MaxPublishers }},
		{"conn-inflight", func(c *Config) { c.ConnInflight = 65536 }},
		{"conn-inflight", func(c *Config) { c.ConnInflight = -1 }},
		{"spread", func(c *Config) { c.Spread = 255 }},
		{"spread", func(c *Config) { c.Spread, c.Addr = 4, "[::1]:1883" }},
		{"keepalive", func(c *Config) { c.KeepAlive = 1500 * time.Millisecond }},
		{"topic-prefix", func(c *Config) { c.TopicPrefix = "a/+/b" }},
		{"topic-prefix", func(c *Config) { c.TopicPrefix = "$SYS" }},
		{"pid", func(c *Config) { c.PID = -2 }},
	}
	for _, tt := range tests {
		t.Run(tt.field, func(t *testing.T) {
			c := Config{Scenario: "pairs"}
			tt.edit(&c)
			err := c.Validate()
			require.ErrorIs(t, err, ErrConfig)
			assert.Contains(t, err.Error(), tt.field+":")
		})
	}
}

func TestConfigAcceptsLoopbackForms(t *testing.T) {
	for _, addr := range []string{"127.0.0.1:1", "127.0.0.5:1883", "localhost:1883", "[::1]:1883"} {
		c := Config{Scenario: "conns", Addr: addr}
		assert.NoError(t, c.Validate(), addr)
	}
}

func TestParseVersion(t *testing.T) {
	for in, want := range map[string]codec.Version{"3.1.1": codec.V311, "4": codec.V311, "5": codec.V5, "5.0": codec.V5} {
		got, err := ParseVersion(in)
		require.NoError(t, err, in)
		assert.Equal(t, want, got, in)
		if want == codec.V5 {
			assert.Equal(t, "5", versionName(got))
		} else {
			assert.Equal(t, "3.1.1", versionName(got))
		}
	}
	_, err := ParseVersion("3.1")
	assert.ErrorIs(t, err, ErrConfig)
}

func TestScenarioTable(t *testing.T) {
	assert.Equal(t, []string{"fanin", "fanout", "pairs", "conns", "kafka"}, Scenarios())
	assert.Len(t, ScenarioHelp(), len(Scenarios()))
}

func TestKafkaScenarioNeedsBrokers(t *testing.T) {
	c := Config{Scenario: "kafka"}
	err := c.Validate()
	require.ErrorIs(t, err, ErrConfig)
	assert.Contains(t, err.Error(), "kafka-brokers:")
}
