package admin

import (
	"net/http"
	"net/http/httptest"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

func TestMetricsEndpoint(t *testing.T) {
	s, err := New(Config{Token: token}, Deps{Metrics: func() []Metric {
		return []Metric{
			{Name: "mqttd_messages_in_total", Help: "PUBLISH packets accepted", Type: "counter", Value: 42},
			{Name: "mqttd_connections", Help: "open connections", Type: "gauge", Value: 3},
			{Name: "mqttd_ratio", Help: "a fraction", Value: 0.25},
		}
	}})
	require.NoError(t, err)
	ts := httptest.NewServer(s.Handler())
	defer ts.Close()
	resp, err := http.Get(ts.URL + "/metrics") // no token needed
	require.NoError(t, err)
	defer resp.Body.Close()
	require.Equal(t, http.StatusOK, resp.StatusCode)
	assert.Contains(t, resp.Header.Get("Content-Type"), "text/plain")
	buf := make([]byte, 4096)
	n, _ := resp.Body.Read(buf)
	body := string(buf[:n])
	assert.Equal(t, "# HELP mqttd_connections open connections\n# TYPE mqttd_connections gauge\nmqttd_connections 3\n"+
		"# HELP mqttd_messages_in_total PUBLISH packets accepted\n# TYPE mqttd_messages_in_total counter\nmqttd_messages_in_total 42\n"+
		"# HELP mqttd_ratio a fraction\n# TYPE mqttd_ratio gauge\nmqttd_ratio 0.25\n", body)
}
