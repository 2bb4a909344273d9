package admin

import (
	"fmt"
	"math"
	"net/http"
	"sort"
	"strings"
)

// Metric is one sample for GET /metrics, in the Prometheus text format.
type Metric struct {
	Name  string  // metric name, e.g. "mqttd_connections"
	Help  string  // one line
	Type  string  // "counter" or "gauge"
	Value float64 // the sample
}

// metrics serves GET /metrics (no token: scrapers hold none).
func (s *Server) metrics(w http.ResponseWriter, _ *http.Request) {
	var ms []Metric
	if s.deps.Metrics != nil {
		ms = s.deps.Metrics()
	}
	sort.SliceStable(ms, func(i, j int) bool { return ms[i].Name < ms[j].Name })
	var b strings.Builder
	for _, m := range ms {
		typ := m.Type
		if typ != "counter" {
			typ = "gauge"
		}
		fmt.Fprintf(&b, "# HELP %s %s\n# TYPE %s %s\n", m.Name, strings.ReplaceAll(m.Help, "\n", " "), m.Name, typ)
		switch {
		case math.IsInf(m.Value, 1):
			fmt.Fprintf(&b, "%s +Inf\n", m.Name)
		case m.Value == math.Trunc(m.Value) && math.Abs(m.Value) < 1e15:
			fmt.Fprintf(&b, "%s %d\n", m.Name, int64(m.Value))
		default:
			fmt.Fprintf(&b, "%s %g\n", m.Name, m.Value)
		}
	}
	w.Header().Set("Content-Type", "text/plain; version=0.0.4; charset=utf-8")
	_, _ = w.Write([]byte(b.String()))
}
