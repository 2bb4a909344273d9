package bench

import (
	"encoding/json"
	"fmt"
	"io"
	"strings"
	"sync"
	"time"
)

// ResultPrefix starts the machine-readable result line.
const ResultPrefix = "RESULT "

// Result is the outcome of a run. Its JSON form (Line) is flat so a report
// can name any number by its key; fields that do not apply to a scenario
// are omitted.
type Result struct {
	Scenario    string  `json:"scenario"`
	Label       string  `json:"label,omitempty"`
	Case        string  `json:"case,omitempty"`
	Version     string  `json:"version"`
	QoS         int     `json:"qos"`
	Size        int     `json:"size"`
	Publishers  int     `json:"publishers,omitempty"`
	Subscribers int     `json:"subscribers,omitempty"`
	Inflight    int     `json:"inflight,omitempty"`
	QoS0Window  int     `json:"qos0_window,omitempty"`
	Rate        float64 `json:"rate,omitempty"`
	WarmupS     float64 `json:"warmup_s"`
	DurationS   float64 `json:"duration_s"`

	// Pub/sub scenarios. Sent counts messages published in the window;
	// Expected the deliveries they should cause; Received the distinct ones
	// that arrived (by the end of the drain); Delivered every delivery that
	// arrived during the window, whenever it was sent (the throughput).
	Sent            uint64  `json:"sent,omitempty"`
	SentPerSec      float64 `json:"sent_per_sec,omitempty"`
	Expected        uint64  `json:"expected,omitempty"`
	Received        uint64  `json:"received,omitempty"`
	Delivered       uint64  `json:"delivered,omitempty"`
	DeliveredPerSec float64 `json:"delivered_per_sec,omitempty"`
	DrainS          float64 `json:"drain_s,omitempty"` // how long the drain took
	// Acked counts the QoS 1/2 exchanges the broker completed during the
	// window (PUBACK, or PUBCOMP at QoS 2), whenever they were sent.
	Acked       uint64  `json:"acked,omitempty"`
	AckedPerSec float64 `json:"acked_per_sec,omitempty"`

	// kafka: the Kafka topic read (the parent topic), whether it is
	// ordered, and its partitions. Delivered and Received count its records.
	KafkaTopic      string `json:"kafka_topic,omitempty"`
	KafkaOrdered    bool   `json:"kafka_ordered,omitempty"`
	KafkaPartitions int    `json:"kafka_partitions,omitempty"`
	// KafkaVerify is when the tool read the records: "live" (during the
	// run; a record arrives when the tool reads it) or "after" (once the
	// window was over; a record arrives at its Kafka timestamp, the time
	// the bridge's producer put it in a batch for Kafka, in milliseconds).
	KafkaVerify string `json:"kafka_verify,omitempty"`
	// KafkaInWindow counts the records of the window's messages (of
	// Received) whose Kafka timestamp is before the end of the window:
	// Received minus KafkaInWindow were still on their way (in the
	// bridge's spool) when the window closed.
	KafkaInWindow uint64 `json:"kafka_in_window,omitempty"`

	// Latency of the messages sent in the window, microseconds.
	LatencyCount uint64  `json:"latency_count,omitempty"`
	P50us        float64 `json:"p50_us,omitempty"`
	P90us        float64 `json:"p90_us,omitempty"`
	P99us        float64 `json:"p99_us,omitempty"`
	P999us       float64 `json:"p999_us,omitempty"`
	MaxUs        float64 `json:"max_us,omitempty"`

	// conns.
	Conns         int     `json:"conns,omitempty"`
	Connected     int     `json:"connected,omitempty"`
	ConnectS      float64 `json:"connect_s,omitempty"`
	ConnectPerSec float64 `json:"connect_per_sec,omitempty"`
	ConnectP99us  float64 `json:"connect_p99_us,omitempty"` // one connect+subscribe
	// BrokerUsPerConnect is the broker's CPU time per connect+subscribe in
	// the connect phase: what the rate would be bounded by once the tool
	// is not the bottleneck (pid known).
	BrokerUsPerConnect float64 `json:"broker_us_per_connect,omitempty"`
	Verified           int     `json:"verified,omitempty"` // connections that got the final message
	RSSBefore          int64   `json:"rss_before_bytes,omitempty"`
	RSSAfter           int64   `json:"rss_after_bytes,omitempty"`
	RSSPerConn         float64 `json:"rss_per_conn_bytes,omitempty"`

	// Broker and tool resources over the window (pid known).
	BrokerPID int     `json:"broker_pid,omitempty"`
	BrokerRSS int64   `json:"broker_rss_bytes,omitempty"`
	BrokerCPU float64 `json:"broker_cpu,omitempty"` // cores used, 1.0 = one core busy
	ToolCPU   float64 `json:"tool_cpu"`             // cores the tool used; near 1 with taskset: suspect the tool
	// HostSteal is the CPU time the hypervisor withheld from this machine
	// during the window, in cores (0.1 = a tenth of one CPU's time), from
	// /proc/stat; 0 on bare metal. High values make latency tails noise.
	HostSteal float64 `json:"host_steal"`

	// Correctness: all must be 0 for a clean run.
	Lost           uint64 `json:"lost"`
	Duplicated     uint64 `json:"duplicated"`
	Reordered      uint64 `json:"reordered"`
	Unexpected     uint64 `json:"unexpected"`      // deliveries a subscriber should not get
	Malformed      uint64 `json:"malformed"`       // deliveries whose payload is not ours or has the wrong size
	Unacked        uint64 `json:"unacked"`         // QoS 1/2 exchanges unfinished after the drain (publishes unacknowledged, QoS 2 deliveries without PUBREL)
	Refused        uint64 `json:"refused"`         // MQTT 5 acks with an error reason
	ProtocolErrors uint64 `json:"protocol_errors"` // packets that break the protocol
	ConnErrors     uint64 `json:"conn_errors"`     // connections lost before the end
	Truncated      bool   `json:"truncated,omitempty"`
	// WindowStalls counts QoS 0 windows written off because no subscriber
	// moved for a second: with no loss it only means long pauses.
	WindowStalls int `json:"qos0_window_stalls,omitempty"`

	// Errors are the distinct failures seen, first few only.
	Errors []string `json:"errors,omitempty"`
}

// Clean reports whether the run saw no loss, duplicate, reorder or error.
func (r *Result) Clean() bool {
	return r.Lost == 0 && r.Duplicated == 0 && r.Reordered == 0 && r.Unexpected == 0 && r.Malformed == 0 &&
		r.Unacked == 0 && r.Refused == 0 && r.ProtocolErrors == 0 && r.ConnErrors == 0 && len(r.Errors) == 0
}

// Line returns the result as one line: ResultPrefix and compact JSON, with
// no newline.
func (r *Result) Line() string {
	b, err := json.Marshal(r)
	if err != nil { // a Result has only plain fields
		panic("bench: marshal result: " + err.Error())
	}
	return ResultPrefix + string(b)
}

// ParseLine parses a line written by Line.
func ParseLine(line string) (*Result, error) {
	rest, ok := strings.CutPrefix(strings.TrimSpace(line), ResultPrefix)
	if !ok {
		return nil, fmt.Errorf("bench: result line does not start with %q", ResultPrefix)
	}
	var r Result
	if err := json.Unmarshal([]byte(rest), &r); err != nil {
		return nil, fmt.Errorf("bench: result line: %w", err)
	}
	return &r, nil
}

// WriteSummary writes the result for a reader.
func (r *Result) WriteSummary(w io.Writer) error {
	var b strings.Builder
	p := func(format string, args ...any) { fmt.Fprintf(&b, format, args...) }
	title := r.Scenario
	if r.Label != "" {
		title += " against " + r.Label
	}
	p("== mqttbench %s: MQTT %s, QoS %d, %d-byte payload\n", title, r.Version, r.QoS, r.Size)
	if r.Scenario == "conns" {
		p("connections      %d of %d connected and subscribed in %.2fs: %s connects/s (p99 %s each)\n",
			r.Connected, r.Conns, r.ConnectS, si(r.ConnectPerSec), us(r.ConnectP99us))
		if r.BrokerUsPerConnect > 0 {
			p("broker CPU       %.1f µs per connect+subscribe\n", r.BrokerUsPerConnect)
		}
		p("verified         %d of %d got a message on their topic after %.0fs idle\n", r.Verified, r.Connected,
			r.DurationS)
		if r.RSSAfter > 0 {
			p("broker memory    %s before, %s after: %.0f bytes per connection\n", iec(r.RSSBefore),
				iec(r.RSSAfter), r.RSSPerConn)
		} else {
			p("broker memory    unknown (no pid)\n")
		}
	} else {
		window := fmt.Sprintf("in-flight window %d", r.Inflight)
		if r.QoS == 0 {
			window = "no QoS 0 window"
			if r.QoS0Window > 0 {
				window = fmt.Sprintf("QoS 0 window %d", r.QoS0Window)
			}
		}
		if r.KafkaTopic != "" {
			typ := "normal"
			if r.KafkaOrdered {
				typ = "ordered"
			}
			p("clients          %d publishers -> Kafka topic %s (%s, %d partitions), %s, rate %s\n", r.Publishers,
				r.KafkaTopic, typ, r.KafkaPartitions, window, rateName(r.Rate))
		} else {
			p("clients          %d publishers, %d subscribers, %s, rate %s\n", r.Publishers, r.Subscribers, window,
				rateName(r.Rate))
		}
		p("window           %.1fs after %.1fs warm-up; drain took %.2fs\n", r.DurationS, r.WarmupS, r.DrainS)
		p("published        %d (%s msgs/s)\n", r.Sent, si(r.SentPerSec))
		if r.QoS > 0 {
			p("acknowledged     %d (%s msgs/s)\n", r.Acked, si(r.AckedPerSec))
		}
		what := "delivered       "
		if r.KafkaTopic != "" {
			what = "in Kafka        "
		}
		p("%s %d (%s msgs/s)\n", what, r.Delivered, si(r.DeliveredPerSec))
		p("received         %d of %d expected\n", r.Received, r.Expected)
		if r.KafkaTopic != "" {
			p("by window end    %d of the %d received were in Kafka (Kafka timestamp), %d came later "+
				"(the bridge's backlog); checked %s\n", r.KafkaInWindow, r.Received, r.Received-min(r.KafkaInWindow,
				r.Received), verifyName(r.KafkaVerify))
		}
		p("latency          p50 %s  p90 %s  p99 %s  p99.9 %s  max %s  (%d samples)\n", us(r.P50us), us(r.P90us),
			us(r.P99us), us(r.P999us), us(r.MaxUs), r.LatencyCount)
	}
	if r.BrokerPID > 0 {
		p("broker           pid %d, %.2f cores, %s resident\n", r.BrokerPID, r.BrokerCPU, iec(r.BrokerRSS))
	}
	p("tool             %.2f cores\n", r.ToolCPU)
	if r.HostSteal >= 0.005 {
		p("host             %.2f cores stolen by the hypervisor during the window\n", r.HostSteal)
	}
	verdict := "clean"
	if !r.Clean() {
		verdict = "NOT CLEAN"
	}
	p("checks           %s: lost %d, duplicated %d, reordered %d, unexpected %d, malformed %d, unacked %d, "+
		"refused %d, protocol errors %d, connection errors %d\n", verdict, r.Lost, r.Duplicated, r.Reordered,
		r.Unexpected, r.Malformed, r.Unacked, r.Refused, r.ProtocolErrors, r.ConnErrors)
	if r.WindowStalls > 0 {
		p("note             QoS 0 window written off %d time(s): no subscriber moved for a second\n", r.WindowStalls)
	}
	if r.KafkaTopic != "" && !r.KafkaOrdered {
		p("note             normal topic: records of one client spread over the partitions, so reordered counts " +
			"only a client's records out of order within one partition\n")
	}
	if r.KafkaTopic != "" && r.KafkaOrdered {
		p("note             ordered topic: reordered counts every record of a client that came after a later one\n")
	}
	if r.Truncated {
		p("note             a stream had too many gaps: lost is approximate\n")
	}
	for _, e := range r.Errors {
		p("error            %s\n", e)
	}
	_, err := io.WriteString(w, b.String())
	return err
}

// verifyName describes a Result.KafkaVerify.
func verifyName(v string) string {
	switch v {
	case KafkaVerifyAfter:
		return "after the window (in Kafka and latency by Kafka timestamp, millisecond resolution)"
	case KafkaVerifyLive:
		return "live (in Kafka and latency by the time the tool read the record)"
	}
	return v
}

func rateName(r float64) string {
	if r == 0 {
		return "unbounded"
	}
	return si(r) + " msgs/s"
}

// si formats a rate with a k/M suffix.
func si(v float64) string {
	switch {
	case v >= 1e6:
		return fmt.Sprintf("%.2fM", v/1e6)
	case v >= 1e3:
		return fmt.Sprintf("%.1fk", v/1e3)
	}
	return fmt.Sprintf("%.0f", v)
}

// us formats microseconds as a duration.
func us(v float64) string {
	return time.Duration(v * 1e3).Round(time.Microsecond).String()
}

// iec formats bytes with a binary suffix.
func iec(n int64) string {
	switch {
	case n >= 1<<30:
		return fmt.Sprintf("%.2f GiB", float64(n)/(1<<30))
	case n >= 1<<20:
		return fmt.Sprintf("%.1f MiB", float64(n)/(1<<20))
	case n >= 1<<10:
		return fmt.Sprintf("%.1f KiB", float64(n)/(1<<10))
	}
	return fmt.Sprintf("%d B", n)
}

// durUs converts a duration to microseconds.
func durUs(d time.Duration) float64 { return float64(d) / 1e3 }

// errorList collects distinct error texts, keeping the first few. It is
// safe for concurrent use.
type errorList struct {
	mu   sync.Mutex // guards seen and list
	seen map[string]bool
	list []string
}

const maxErrors = 10

// all returns a copy of the errors collected.
func (l *errorList) all() []string {
	l.mu.Lock()
	defer l.mu.Unlock()
	return append([]string(nil), l.list...)
}

func (l *errorList) add(err error) {
	if err == nil {
		return
	}
	s := err.Error()
	l.mu.Lock()
	defer l.mu.Unlock()
	if l.seen == nil {
		l.seen = map[string]bool{}
	}
	if l.seen[s] || len(l.list) >= maxErrors {
		return
	}
	l.seen[s] = true
	l.list = append(l.list, s)
}
