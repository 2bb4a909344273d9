package main

import (
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/mqttd/mqttd/bench"
	"github.com/mqttd/mqttd/codec"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

func TestParseFlags(t *testing.T) {
	var stderr strings.Builder
	cfg, strict, quiet, err := parseFlags([]string{"-scenario", "fanout", "-addr", "127.0.0.1:1999", "-version", "5",
		"-qos", "2", "-size", "128", "-duration", "3s", "-warmup", "0s", "-drain", "1s", "-inflight", "10",
		"-rate", "5000", "-subscribers", "20", "-spread", "8", "-qos0-window", "7", "-label", "m", "-case", "c",
		"-strict", "-quiet"}, &stderr)
	require.NoError(t, err)
	assert.True(t, strict)
	assert.True(t, quiet)
	assert.Equal(t, "fanout", cfg.Scenario)
	assert.Equal(t, "127.0.0.1:1999", cfg.Addr)
	assert.Equal(t, codec.V5, cfg.Version)
	assert.Equal(t, codec.QoS2, cfg.QoS)
	assert.Equal(t, 128, cfg.Size)
	assert.Equal(t, 3*time.Second, cfg.Duration)
	assert.Zero(t, cfg.Warmup)
	assert.Equal(t, time.Second, cfg.Drain)
	assert.Equal(t, 10, cfg.Inflight)
	assert.Equal(t, 5000.0, cfg.Rate)
	assert.Equal(t, 20, cfg.Subscribers)
	assert.Equal(t, 8, cfg.Spread)
	assert.Equal(t, 7, cfg.QoS0Window)
	assert.Equal(t, "m", cfg.Label)
	assert.Equal(t, "c", cfg.Case)

	cfg, _, _, err = parseFlags([]string{"-scenario", "fanin"}, &stderr)
	require.NoError(t, err)
	assert.Equal(t, 2*time.Second, cfg.Warmup, "the command line warms up by default")
	assert.False(t, cfg.NoPipeline, "pipelined by default")
	assert.Equal(t, 64, cfg.ConnInflight)

	cfg, _, _, err = parseFlags([]string{"-scenario", "conns", "-pipeline=false", "-conn-inflight", "500"}, &stderr)
	require.NoError(t, err)
	assert.True(t, cfg.NoPipeline)
	assert.Equal(t, 500, cfg.ConnInflight)

	cfg, _, _, err = parseFlags([]string{"-scenario", "kafka", "-kafka-brokers", "127.0.0.1:9092"}, &stderr)
	require.NoError(t, err)
	assert.Equal(t, bench.KafkaVerifyLive, cfg.KafkaVerify, "default")
	cfg, _, _, err = parseFlags([]string{"-scenario", "kafka", "-kafka-brokers", "127.0.0.1:9092",
		"-kafka-verify", "after"}, &stderr)
	require.NoError(t, err)
	assert.Equal(t, bench.KafkaVerifyAfter, cfg.KafkaVerify)
}

func TestParseFlagsErrors(t *testing.T) {
	for _, args := range [][]string{
		{},
		{"-scenario", "kafka"},
		{"-scenario", "fanin", "-qos", "3"},
		{"-scenario", "fanin", "-version", "4.0"},
		{"-scenario", "fanin", "-addr", "192.0.2.1:1883"},
		{"-scenario", "fanin", "extra"},
		{"-scenario", "conns", "-conn-inflight", "-1"},
		{"-scenario", "kafka", "-kafka-brokers", "127.0.0.1:9092", "-kafka-verify", "later"},
	} {
		var stderr strings.Builder
		_, _, _, err := parseFlags(args, &stderr)
		assert.Error(t, err, "%q", args)
	}
}

func TestRunExitCodes(t *testing.T) {
	var out, errOut strings.Builder
	assert.Equal(t, exitError, run(t.Context(), []string{"-scenario", "nope"}, &out, &errOut))
	assert.Contains(t, errOut.String(), "scenario")
	assert.Equal(t, exitOK, run(t.Context(), []string{"-h"}, &out, &errOut))
	assert.Contains(t, errOut.String(), "fanin")
}

func TestFreePort(t *testing.T) {
	var out, errOut strings.Builder
	require.Equal(t, exitOK, run(t.Context(), []string{"freeport"}, &out, &errOut))
	port, err := strconv.Atoi(strings.TrimSpace(out.String()))
	require.NoError(t, err)
	assert.Positive(t, port)
}

func TestReportCommand(t *testing.T) {
	dir := t.TempDir()
	cases := filepath.Join(dir, "cases.txt")
	results := filepath.Join(dir, "results.txt")
	require.NoError(t, os.WriteFile(cases, []byte("c1 | case one | delivered_per_sec | >= | 2 | -scenario fanin\n"), 0o644))
	a := bench.Result{Scenario: "fanin", Case: "c1", Label: "mqttd", DeliveredPerSec: 300}
	b := bench.Result{Scenario: "fanin", Case: "c1", Label: "mosquitto", DeliveredPerSec: 100}
	require.NoError(t, os.WriteFile(results, []byte(a.Line()+"\nnoise\n"+b.Line()+"\n"), 0o644))

	var out, errOut strings.Builder
	code := run(t.Context(), []string{"report", "-cases", cases, "-results", results, "-runs", "1"}, &out, &errOut)
	require.Equal(t, exitOK, code, errOut.String())
	assert.Contains(t, out.String(), "| case one | 300/s | 100/s | 3.00× | >= 2× | yes |")

	errOut.Reset()
	assert.Equal(t, exitError, run(t.Context(), []string{"report", "-cases", cases}, &out, &errOut))
	assert.Contains(t, errOut.String(), "-results")
	assert.Equal(t, exitError, run(t.Context(), []string{"report", "-cases", filepath.Join(dir, "none"),
		"-results", results}, &out, &errOut))
}
