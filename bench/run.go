package bench

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"fmt"
	"io"
	"net"
	"strconv"
	"time"
)

// scenario is one entry of the scenario table.
type scenario struct {
	name, help string
	run        func(ctx context.Context, r *runner) (*Result, error)
}

// scenarios is the table Run dispatches on. A new scenario is one more
// entry: a topology for runPubSub (with MQTT subscribers, or the Kafka
// receiver), or a function of its own.
var scenarios = []scenario{
	{"fanin", "P publishers (-publishers) -> 1 subscriber on a wildcard", func(ctx context.Context, r *runner) (*Result, error) {
		return runPubSub(ctx, r, faninTopology(r, r.cfg.Publishers))
	}},
	{"fanout", "1 publisher -> S subscribers (-subscribers) on its topic", func(ctx context.Context, r *runner) (*Result, error) {
		return runPubSub(ctx, r, fanoutTopology(r, r.cfg.Subscribers))
	}},
	{"pairs", "N publisher/subscriber pairs (-pairs), a topic each", func(ctx context.Context, r *runner) (*Result, error) {
		return runPubSub(ctx, r, pairsTopology(r, r.cfg.Pairs))
	}},
	{"conns", "C idle subscribed connections (-conns): connect rate and broker RSS per connection", runConns},
	{"kafka", "P publishers (-publishers) on a bridged parent topic -> its Kafka records (-kafka-brokers)", runKafka},
}

func lookupScenario(name string) *scenario {
	for i := range scenarios {
		if scenarios[i].name == name {
			return &scenarios[i]
		}
	}
	return nil
}

// Scenarios returns the scenario names Config.Scenario accepts.
func Scenarios() []string {
	out := make([]string, len(scenarios))
	for i, s := range scenarios {
		out[i] = s.name
	}
	return out
}

// ScenarioHelp returns a one-line description of each scenario, in the
// order of Scenarios.
func ScenarioHelp() []string {
	out := make([]string, len(scenarios))
	for i, s := range scenarios {
		out[i] = fmt.Sprintf("%-7s %s", s.name, s.help)
	}
	return out
}

// runner is the state every scenario shares.
type runner struct {
	cfg      Config
	opts     connOpts
	dial     dialer
	clk      clock
	id       string    // unique per run: part of client IDs and topics
	progress io.Writer // progress lines; io.Discard when nil
	pid      int       // broker pid, 0 when unknown
	errs     errorList
}

// topic returns the i-th topic of the run.
func (r *runner) topic(i int) string {
	return r.cfg.TopicPrefix + "/" + r.id + "/" + strconv.Itoa(i)
}

// Run runs cfg.Scenario against the broker and returns its result. It
// writes a progress line to progress (if not nil) every second. The run is
// bounded: setup by ConnectTimeout per step, then warm-up, duration and
// drain; cancelling ctx ends it early with an error.
//
// An error means the run could not be measured (bad config, no broker, a
// refused connection during setup). Problems during the measurement (lost
// messages, dropped connections) are counted in the Result instead.
func Run(ctx context.Context, cfg Config, progress io.Writer) (*Result, error) {
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	if progress == nil {
		progress = io.Discard
	}
	var id [4]byte
	if _, err := rand.Read(id[:]); err != nil {
		return nil, fmt.Errorf("bench: run id: %w", err)
	}
	r := &runner{
		cfg: cfg,
		opts: connOpts{version: cfg.Version, keepAlive: cfg.KeepAlive, username: cfg.Username,
			password: cfg.Password, timeout: cfg.ConnectTimeout},
		dial:     dialer{addr: cfg.Addr, spread: cfg.Spread, timeout: cfg.ConnectTimeout},
		clk:      newClock(),
		id:       hex.EncodeToString(id[:]),
		progress: progress,
		pid:      cfg.PID,
	}
	if r.pid == 0 {
		_, portStr, _ := net.SplitHostPort(cfg.Addr)
		port, _ := strconv.Atoi(portStr) // Validate checked the address
		if pid, err := findListener(port); err == nil {
			r.pid = pid
		} else {
			fmt.Fprintf(progress, "mqttbench: broker process not found (%v); no broker memory and CPU figures\n", err)
		}
	}
	res, err := lookupScenario(cfg.Scenario).run(ctx, r)
	if err != nil {
		return nil, err
	}
	res.Scenario, res.Label, res.Case = cfg.Scenario, cfg.Label, cfg.Case
	res.Version, res.QoS, res.Size = versionName(cfg.Version), int(cfg.QoS), cfg.Size
	res.WarmupS, res.DurationS = cfg.Warmup.Seconds(), cfg.Duration.Seconds()
	if cfg.Scenario == "conns" {
		res.WarmupS = 0 // conns has no warm-up
	}
	if res.BrokerPID == 0 {
		res.BrokerPID = r.pid
	}
	res.Errors = append(res.Errors, r.errs.all()...)
	return res, nil
}

// pinger sends PINGREQ on connections idle for half the keepalive until
// stop closes. With keepalive 0 it returns at once.
func (r *runner) pinger(stop <-chan struct{}, conns func() []*wconn) {
	if r.cfg.KeepAlive <= 0 {
		return
	}
	half := r.cfg.KeepAlive / 2
	t := time.NewTicker(max(half/4, 100*time.Millisecond))
	defer t.Stop()
	ping := []byte{0xc0, 0}
	for {
		select {
		case <-stop:
			return
		case <-t.C:
		}
		cutoff := time.Now().Add(-half).UnixNano()
		for _, c := range conns() {
			if c != nil && c.lastWrite.Load() < cutoff {
				_ = c.write(ping) // a dead connection shows up in its reader
			}
		}
	}
}

// sleepCtx sleeps for d or until ctx ends; it reports whether d elapsed.
func sleepCtx(ctx context.Context, d time.Duration) bool {
	if d <= 0 {
		return ctx.Err() == nil
	}
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-ctx.Done():
		return false
	case <-t.C:
		return true
	}
}
