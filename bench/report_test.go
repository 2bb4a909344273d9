package bench

import (
	"math"
	"strings"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

const casesText = `# name | title | metric | op | target | args
fanin-q0 | fanin 8→1, QoS 0, delivered msgs/s | delivered_per_sec | >= | 4 | -scenario fanin -qos 0

lat | fanin QoS 1 at 20k msgs/s, p99 latency | p99_us | <= | 0.5 | -scenario fanin -qos 1 -rate 20000
`

func TestParseCases(t *testing.T) {
	cases, err := ParseCases(strings.NewReader(casesText))
	require.NoError(t, err)
	require.Len(t, cases, 2)
	assert.Equal(t, Case{Name: "fanin-q0", Title: "fanin 8→1, QoS 0, delivered msgs/s", Metric: "delivered_per_sec",
		Op: ">=", Target: 4, Args: "-scenario fanin -qos 0"}, cases[0])
	assert.Equal(t, "<=", cases[1].Op)
	assert.Equal(t, 0.5, cases[1].Target)
}

func TestParseCasesErrors(t *testing.T) {
	tests := []struct{ name, text, want string }{
		{"too few fields", "a | b | c", "3 fields"},
		{"bad op", "a | b | m | > | 1 | x", "op"},
		{"bad target", "a | b | m | >= | x | x", "target"},
		{"zero target", "a | b | m | >= | 0 | x", "target"},
		{"no metric", "a | b |  | >= | 1 | x", "metric"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, err := ParseCases(strings.NewReader(tt.text))
			require.ErrorIs(t, err, ErrReport)
			assert.Contains(t, err.Error(), tt.want)
			assert.Contains(t, err.Error(), "line 1")
		})
	}
}

// resultLine builds a RESULT line for a case and broker.
func resultLine(c, label string, rate, p99 float64, lost uint64) string {
	r := Result{Scenario: "fanin", Case: c, Label: label, DeliveredPerSec: rate, P99us: p99, Lost: lost}
	return r.Line()
}

func testResults(t *testing.T) []Record {
	t.Helper()
	log := strings.Join([]string{
		"some progress line",
		resultLine("fanin-q0", "mqttd", 400e3, 0, 0),
		resultLine("fanin-q0", "mqttd", 500e3, 0, 0),
		resultLine("fanin-q0", "mqttd", 450e3, 0, 0),
		resultLine("fanin-q0", "mosquitto", 100e3, 0, 0),
		resultLine("fanin-q0", "mosquitto", 120e3, 0, 3),
		resultLine("fanin-q0", "mosquitto", 90e3, 0, 0),
		resultLine("lat", "mqttd", 0, 900, 0),
		resultLine("lat", "mosquitto", 0, 1000, 0),
		"== summary text",
	}, "\n")
	results, err := ReadResults(strings.NewReader(log))
	require.NoError(t, err)
	require.Len(t, results, 8)
	return results
}

func TestCompare(t *testing.T) {
	results := testResults(t)
	cases, err := ParseCases(strings.NewReader(casesText))
	require.NoError(t, err)

	cand, ref, ratio, met := Compare(cases[0], results, "mqttd", "mosquitto")
	assert.Equal(t, Stats{N: 3, Median: 450e3, Min: 400e3, Max: 500e3}, cand)
	assert.Equal(t, Stats{N: 3, Median: 100e3, Min: 90e3, Max: 120e3}, ref)
	assert.InDelta(t, 4.5, ratio, 1e-9)
	assert.True(t, met)

	_, _, ratio, met = Compare(cases[1], results, "mqttd", "mosquitto")
	assert.InDelta(t, 0.9, ratio, 1e-9)
	assert.False(t, met, "0.9 is above the 0.5 target")

	_, _, ratio, met = Compare(cases[0], results, "mqttd", "nobody")
	assert.True(t, math.IsNaN(ratio))
	assert.False(t, met)
}

func TestStatsEvenCount(t *testing.T) {
	assert.Equal(t, Stats{N: 4, Median: 2.5, Min: 1, Max: 4}, statsOf([]float64{4, 1, 3, 2}))
	assert.Equal(t, Stats{}, statsOf(nil))
}

func TestWriteReport(t *testing.T) {
	cases, err := ParseCases(strings.NewReader(casesText))
	require.NoError(t, err)
	var b strings.Builder
	require.NoError(t, WriteReport(&b, ReportInput{
		Candidate: "mqttd", Reference: "mosquitto", Runs: 3, Cases: cases, Results: testResults(t),
		Machine: "nproc: 2", Commands: "bin/mqttbench -scenario fanin",
	}))
	out := b.String()
	assert.Contains(t, out, "# Benchmark: mqttd vs mosquitto")
	assert.Contains(t, out, "| fanin 8→1, QoS 0, delivered msgs/s | 450.0k/s<br>400.0k/s – 500.0k/s | "+
		"100.0k/s<br>90.0k/s – 120.0k/s | 4.50× | >= 4× | yes |")
	assert.Contains(t, out, "| fanin QoS 1 at 20k msgs/s, p99 latency | 900µs<br>(1 of 3 runs) | "+
		"1ms<br>(1 of 3 runs) | 0.90× | <= 0.5× | **no** |")
	assert.Contains(t, out, "| lost / duplicated / reordered, all runs | 0 / 0 / 0 | 3 / 0 / 0 | | 0 | yes |")
	assert.Contains(t, out, "**Not every target met.**")
	assert.Contains(t, out, "- fanin-q0, mosquitto: lost 3")
	assert.Contains(t, out, "```\nnproc: 2\n```")
	assert.Contains(t, out, "```\nbin/mqttbench -scenario fanin\n```")
}

func TestReadResultsBadLine(t *testing.T) {
	_, err := ReadResults(strings.NewReader("ok\nRESULT {not json\n"))
	require.ErrorIs(t, err, ErrReport)
	assert.Contains(t, err.Error(), "line 2")
}

func TestWriteReportSteal(t *testing.T) {
	cases, err := ParseCases(strings.NewReader(casesText))
	require.NoError(t, err)
	line := func(label string, steal float64) string {
		r := Result{Scenario: "fanin", Case: "lat", Label: label, P99us: 900, HostSteal: steal}
		return r.Line()
	}
	results, err := ReadResults(strings.NewReader(strings.Join([]string{
		line("mqttd", 0.02), line("mqttd", 0.30), line("mqttd", 0.05), line("mosquitto", 0.1),
	}, "\n")))
	require.NoError(t, err)
	var b strings.Builder
	require.NoError(t, WriteReport(&b, ReportInput{Candidate: "mqttd", Reference: "mosquitto", Cases: cases,
		Results: results}))
	assert.Contains(t, b.String(), "| lat | 0.050 (0.020 – 0.300) | 0.100 |")
	assert.Contains(t, b.String(), "| fanin-q0 | no run | no run |")

	// Bare metal: no steal, no section.
	b.Reset()
	require.NoError(t, WriteReport(&b, ReportInput{Candidate: "mqttd", Reference: "mosquitto", Cases: cases,
		Results: testResults(t)}))
	assert.NotContains(t, b.String(), "Host steal")
}
