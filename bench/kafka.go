package bench

import (
	"bytes"
	"context"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/IBM/sarama"
)

// OrderedPrefix starts the name of an ordered parent topic: the bridge
// keys its records by client ID, so each client's records sit in one
// partition in the order the client sent them (DESIGN.md, Kafka contract).
const OrderedPrefix = "orderMsg2mq-"

// kafkaParent returns the parent topic (and Kafka topic) of the kafka
// scenario: the topic prefix, with OrderedPrefix in front when the run
// asks for an ordered topic.
func kafkaParent(cfg *Config) string {
	p := cfg.TopicPrefix
	if cfg.KafkaOrdered && !strings.HasPrefix(p, OrderedPrefix) {
		p = OrderedPrefix + p
	}
	return p
}

// runKafka is the kafka scenario: a fan-in of publishers on topics under a
// parent topic the tool registers through the admin API, checked from the
// records of that Kafka topic instead of an MQTT subscriber.
func runKafka(ctx context.Context, r *runner) (*Result, error) {
	parent := kafkaParent(&r.cfg)
	if err := registerParent(ctx, &r.cfg, parent); err != nil {
		return nil, err
	}
	topo := topology{pubTopics: make([]string, r.cfg.Publishers)}
	ids := make([]string, r.cfg.Publishers)
	for i := range topo.pubTopics {
		topo.pubTopics[i] = parent + "/" + r.id + "/" + strconv.Itoa(i)
		ids[i] = clientID(r.id, "p", i)
	}
	kr, err := newKafkaReceiver(ctx, &r.cfg, parent, topo.pubTopics, ids)
	if err != nil {
		return nil, err
	}
	topo.kafka = kr
	res, err := runPubSub(ctx, r, topo)
	kr.stop() // runPubSub stopped it already unless setup failed
	if err != nil {
		return nil, err
	}
	res.KafkaTopic, res.KafkaOrdered, res.KafkaPartitions = parent, kr.ordered, len(kr.parts)
	return res, nil
}

// registerParent registers the parent topic through the broker's admin
// API. A name registered before (200) is as good as a new one (201).
func registerParent(ctx context.Context, cfg *Config, parent string) error {
	body, _ := json.Marshal(map[string]string{"name": parent}) // strings only: cannot fail
	ctx, cancel := context.WithTimeout(ctx, max(cfg.ConnectTimeout, 30*time.Second))
	defer cancel()
	url := "http://" + cfg.AdminAddr + "/api/v1/parent-topics"
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, url, bytes.NewReader(body))
	if err != nil {
		return fmt.Errorf("bench: admin API: %w", err)
	}
	req.Header.Set("Content-Type", "application/json")
	if cfg.AdminToken != "" {
		req.Header.Set("Authorization", "Bearer "+cfg.AdminToken)
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		return fmt.Errorf("bench: registering parent topic %q: %w", parent, err)
	}
	defer resp.Body.Close()
	msg, _ := io.ReadAll(io.LimitReader(resp.Body, 4<<10))
	if resp.StatusCode != http.StatusOK && resp.StatusCode != http.StatusCreated {
		return fmt.Errorf("bench: registering parent topic %q: POST %s: %s: %s", parent, url, resp.Status,
			strings.TrimSpace(string(msg)))
	}
	return nil
}

// kafkaReceiver reads the run's Kafka topic from the offsets it had when
// the run started (every partition) and checks the records as a
// subscriber checks deliveries. One goroutine per partition decodes the
// records; the checker state below mu is shared by them.
//
// When: in live mode (Config.KafkaVerify) the partition consumers run from
// the start of the warm-up, and a record arrives when the tool reads it.
// In after mode nothing is read before the window ends: the consumers
// start then (the drain waits for them as it waits for live ones), and a
// record arrives at its Kafka timestamp. Either way stop, after the drain,
// reads every partition up to the end offset it has at that moment, so
// both modes check the same records.
//
// Order: a normal topic spreads one client's records over the partitions,
// so their order across partitions means nothing; a record counts as
// reordered only when it comes after a higher sequence number of the same
// publisher in the same partition. An ordered topic keeps every record of a
// client in one partition, so there a record is reordered when any higher
// sequence number of its publisher came first, and a client whose records
// show up in two partitions is an error.
type kafkaReceiver struct {
	cfg     *Config
	ctx     context.Context // the run's: once it is done, stop reads no further
	topic   string
	ordered bool
	after   bool     // KafkaVerifyAfter
	pubs    []string // the publishers' MQTT topics
	ids     []string // and client IDs, by publisher index

	client   sarama.Client
	consumer sarama.Consumer
	parts    []int32
	offs     []int64 // by partition: the newest offset before the run, where reading starts
	// pcs are the partition consumers: live mode makes them before the
	// run; after mode makes them in start's goroutine, and only it uses
	// them.
	pcs []sarama.PartitionConsumer

	ps       *pubsubRun // set by start; its times are fixed by then
	wg       sync.WaitGroup
	quit     chan struct{} // closed by stop: the readers close their consumers
	stopOnce sync.Once
	started  bool // start ran (written before the goroutines start)

	mu struct {
		sync.Mutex            // guards the checker state
		streams    []Stream   // by publisher
		top        [][]uint64 // by partition, then publisher: one past the highest seq seen there
		home       []int32    // ordered topics: partition of each publisher (-1 none yet)
		hist       Histogram

		uniqueWin, dups, late, unexpected, malformed, deliveredWin uint64
		// inKafkaWin counts the window's records (those in uniqueWin)
		// whose Kafka timestamp is before the end of the window.
		inKafkaWin uint64
		noTS       uint64 // records without a Kafka timestamp
	}
	errs errorList

	delivered  atomic.Uint64   // every record, for progress
	uniqueWinA atomic.Uint64   // mu.uniqueWin, for the drain
	next       []atomic.Int64  // by partition: the offset after the last record read
	seen       []atomic.Uint64 // QoS 0 window: each publisher's progress (nil without a window)
}

func newKafkaReceiver(ctx context.Context, cfg *Config, topic string, pubs, ids []string) (*kafkaReceiver, error) {
	kc := sarama.NewConfig()
	kc.ClientID = "mqttbench"
	kc.Version = sarama.V4_0_0_0 // Kafka 4.x dropped the older protocol versions
	kc.Net.DialTimeout = cfg.ConnectTimeout
	kc.Metadata.AllowAutoTopicCreation = false
	kc.Consumer.Return.Errors = true
	kc.Consumer.MaxWaitTime = 50 * time.Millisecond // latency: fetch answers come at least this often
	kc.Consumer.Fetch.Default = 4 << 20
	kc.ChannelBufferSize = 4096
	client, err := sarama.NewClient(strings.Split(cfg.KafkaBrokers, ","), kc)
	if err != nil {
		return nil, fmt.Errorf("bench: connecting to Kafka %s: %w", cfg.KafkaBrokers, err)
	}
	kr := &kafkaReceiver{client: client}
	ok := false
	defer func() {
		if !ok {
			kr.stop()
		}
	}()
	// The bridge created the topic when the parent topic was registered;
	// its metadata may take a moment to show.
	var parts []int32
	deadline := time.Now().Add(cfg.ConnectTimeout)
	for {
		if err = client.RefreshMetadata(topic); err == nil {
			if parts, err = client.Partitions(topic); err == nil && len(parts) > 0 {
				break
			}
		}
		if time.Now().After(deadline) {
			return nil, fmt.Errorf("bench: Kafka topic %q has no partitions: %v", topic, err)
		}
		if !sleepCtx(ctx, 100*time.Millisecond) {
			return nil, ctx.Err()
		}
	}
	kr.init(ctx, cfg, topic, pubs, ids, parts)
	if kr.consumer, err = sarama.NewConsumerFromClient(client); err != nil {
		return nil, fmt.Errorf("bench: Kafka consumer: %w", err)
	}
	for i, p := range kr.parts {
		// A topic the bridge has just created may still be electing its
		// partition leaders: retry until the connect timeout.
		for {
			kr.offs[i], err = client.GetOffset(topic, p, sarama.OffsetNewest)
			if err == nil || time.Now().After(deadline) || !retriableKafka(err) {
				break
			}
			_ = client.RefreshMetadata(topic)
			if !sleepCtx(ctx, 100*time.Millisecond) {
				return nil, ctx.Err()
			}
		}
		if err != nil {
			return nil, fmt.Errorf("bench: Kafka topic %q partition %d: newest offset: %w", topic, p, err)
		}
		kr.next[i].Store(kr.offs[i])
	}
	if !kr.after {
		if kr.pcs, err = kr.consumePartitions(); err != nil {
			return nil, err
		}
	}
	ok = true
	return kr, nil
}

// retriableKafka reports whether err is one a new topic gives while its
// partitions get their leaders.
func retriableKafka(err error) bool {
	return errors.Is(err, sarama.ErrNotLeaderForPartition) || errors.Is(err, sarama.ErrLeaderNotAvailable) ||
		errors.Is(err, sarama.ErrUnknownTopicOrPartition) || errors.Is(err, sarama.ErrOffsetsLoadInProgress)
}

// init sets up the checker state of a receiver of topic's partitions
// parts. The offsets to read from (offs) are left at 0.
func (kr *kafkaReceiver) init(ctx context.Context, cfg *Config, topic string, pubs, ids []string, parts []int32) {
	kr.cfg, kr.ctx, kr.topic, kr.pubs, kr.ids, kr.parts = cfg, ctx, topic, pubs, ids, parts
	kr.ordered = strings.HasPrefix(topic, OrderedPrefix)
	kr.after = cfg.KafkaVerify == KafkaVerifyAfter
	kr.quit = make(chan struct{})
	kr.offs = make([]int64, len(parts))
	kr.next = make([]atomic.Int64, len(parts))
	kr.mu.streams = make([]Stream, len(pubs))
	kr.mu.top = make([][]uint64, len(parts))
	for i := range kr.mu.top {
		kr.mu.top[i] = make([]uint64, len(pubs))
	}
	kr.mu.home = make([]int32, len(pubs))
	for i := range kr.mu.home {
		kr.mu.home[i] = -1
	}
	if cfg.QoS == 0 && cfg.QoS0Window > 0 {
		kr.seen = make([]atomic.Uint64, len(pubs))
	}
}

// consumePartitions starts a consumer on every partition at its offset in
// offs. On error it closes the ones it started.
func (kr *kafkaReceiver) consumePartitions() ([]sarama.PartitionConsumer, error) {
	pcs := make([]sarama.PartitionConsumer, 0, len(kr.parts))
	for i, p := range kr.parts {
		pc, err := kr.consumer.ConsumePartition(kr.topic, p, kr.offs[i])
		if err != nil {
			for _, pc := range pcs {
				_ = pc.Close()
			}
			return nil, fmt.Errorf("bench: Kafka topic %q partition %d: %w", kr.topic, p, err)
		}
		pcs = append(pcs, pc)
	}
	return pcs, nil
}

// start begins reading (live mode), or a goroutine that begins when the
// window ends (after mode). Call it once ps's times are fixed, before any
// publisher writes.
func (kr *kafkaReceiver) start(ps *pubsubRun) {
	kr.ps = ps
	kr.started = true
	if !kr.after {
		for i, pc := range kr.pcs {
			kr.wg.Go(func() { kr.read(i, pc) })
		}
		return
	}
	kr.wg.Go(func() {
		t := time.NewTimer(time.Duration(ps.tEnd - ps.clk.now()))
		defer t.Stop()
		select {
		case <-t.C:
		case <-kr.quit:
			return
		}
		pcs, err := kr.consumePartitions()
		if err != nil {
			kr.errs.add(err)
			return
		}
		var wg sync.WaitGroup
		for i, pc := range pcs {
			wg.Go(func() { kr.read(i, pc) })
		}
		wg.Wait()
	})
}

// stop reads every partition to its end (when the run went through its
// window and was not cancelled), ends the partition consumers, waits for
// their goroutines and closes the Kafka clients. It may be called more
// than once.
func (kr *kafkaReceiver) stop() {
	kr.stopOnce.Do(func() {
		if kr.started && kr.ctx.Err() == nil && kr.ps.clk.now() >= kr.ps.tEnd {
			kr.readToEnd()
		}
		if kr.quit != nil {
			close(kr.quit)
		}
		if !kr.started { // nobody reads the channels: Close drains them
			for _, pc := range kr.pcs {
				_ = pc.Close()
			}
		}
		kr.wg.Wait()
		if kr.consumer != nil {
			_ = kr.consumer.Close()
		}
		_ = kr.client.Close()
	})
}

// readToEnd waits until every partition has been read up to the newest
// offset it has now: records that reached Kafka after the drain had all
// it waited for (a late duplicate) are checked too. It gives up, with an
// error, after the drain time (at least 30s).
func (kr *kafkaReceiver) readToEnd() {
	end := make([]int64, len(kr.parts))
	for i, p := range kr.parts {
		off, err := kr.client.GetOffset(kr.topic, p, sarama.OffsetNewest)
		if err != nil {
			kr.errs.add(fmt.Errorf("kafka: partition %d: newest offset after the drain: %w", p, err))
			return
		}
		end[i] = off
	}
	limit := max(kr.cfg.Drain, 30*time.Second)
	deadline := time.Now().Add(limit)
	for i := range end {
		for kr.next[i].Load() < end[i] {
			if time.Now().After(deadline) {
				kr.errs.add(fmt.Errorf("kafka: partition %d read up to offset %d of %d within %s after the drain",
					kr.parts[i], kr.next[i].Load(), end[i], limit))
				return
			}
			if !sleepCtx(kr.ctx, 5*time.Millisecond) {
				return
			}
		}
	}
}

// read consumes one partition until quit closes and its consumer is
// closed.
func (kr *kafkaReceiver) read(part int, pc sarama.PartitionConsumer) {
	msgs, errs, quit := pc.Messages(), pc.Errors(), kr.quit
	for msgs != nil || errs != nil {
		select {
		case m, ok := <-msgs:
			if !ok {
				msgs = nil
				continue
			}
			var ts int64
			if !m.Timestamp.IsZero() {
				ts = m.Timestamp.UnixNano()
			}
			kr.onRecord(part, m.Value, ts, kr.ps.clk.now())
			kr.next[part].Store(m.Offset + 1)
		case e, ok := <-errs:
			if !ok {
				errs = nil
				continue
			}
			kr.errs.add(fmt.Errorf("kafka consumer: %w", e))
		case <-quit:
			quit = nil
			pc.AsyncClose() // the channels close once it is done
		}
	}
}

// kafkaValue is the JSON value of a bridged device message.
type kafkaValue struct {
	ClientID        string `json:"clientId"`
	Topic           string `json:"topic"`
	Payload         string `json:"payload"`
	PayloadEncoding string `json:"payloadEncoding"`
	TS              int64  `json:"ts"`
}

// decodeKafkaValue returns the MQTT payload and client of a record value.
func decodeKafkaValue(value []byte) (kafkaValue, []byte, error) {
	var v kafkaValue
	if err := json.Unmarshal(value, &v); err != nil {
		return v, nil, fmt.Errorf("record value: %w", err)
	}
	switch v.PayloadEncoding {
	case "":
		return v, []byte(v.Payload), nil
	case "base64":
		p, err := base64.StdEncoding.DecodeString(v.Payload)
		if err != nil {
			return v, nil, fmt.Errorf("record value: payload: %w", err)
		}
		return v, p, nil
	}
	return v, nil, fmt.Errorf("record value: payloadEncoding %q", v.PayloadEncoding)
}

// onRecord checks one record read from partition part at time now; ts is
// its Kafka timestamp (Unix ns, 0 when it has none). The bridge leaves the
// timestamp to its sarama producer, which stamps a record (CreateTime, in
// milliseconds, truncated) when it puts it in a batch for Kafka: the
// moment the record leaves the bridge for Kafka, after any time in the
// spool.
//
// The record arrives at now in live mode, at ts in after mode: that is
// what deliveredWin and the latency measure. inKafkaWin uses ts in both.
func (kr *kafkaReceiver) onRecord(part int, value []byte, ts, now int64) {
	kr.delivered.Add(1)
	ps := kr.ps
	v, payload, err := decodeKafkaValue(value)
	var h Header
	if err == nil && len(payload) != kr.cfg.Size {
		err = fmt.Errorf("payload of %d bytes, want %d", len(payload), kr.cfg.Size)
	}
	if err == nil {
		h, _ = DecodePayload(payload)
	}
	arrived := now
	if kr.after {
		arrived = ts
	}
	kr.mu.Lock()
	defer kr.mu.Unlock()
	if ts == 0 {
		kr.mu.noTS++
	}
	if arrived != 0 && arrived >= ps.tStart && arrived < ps.tEnd {
		kr.mu.deliveredWin++
	}
	if err != nil {
		kr.mu.malformed++
		kr.errs.add(fmt.Errorf("kafka record: %w", err))
		return
	}
	pub := int(h.Pub)
	if pub >= len(kr.pubs) || v.ClientID != kr.ids[pub] || v.Topic != kr.pubs[pub] {
		kr.mu.unexpected++
		return
	}
	verdict := kr.mu.streams[pub].Observe(h.Seq)
	if kr.seen != nil {
		if next := kr.mu.streams[pub].Next(); next != kr.seen[pub].Load() {
			kr.seen[pub].Store(next)
			select { // wake the publisher if it waits on its window
			case ps.pubs[pub].wake <- struct{}{}:
			default:
			}
		}
	}
	top := &kr.mu.top[part][pub]
	reordered := h.Seq+1 < *top && verdict != Dup
	*top = max(*top, h.Seq+1)
	if kr.ordered {
		reordered = verdict == Late
		if home := kr.mu.home[pub]; home < 0 {
			kr.mu.home[pub] = kr.parts[part]
		} else if home != kr.parts[part] {
			kr.errs.add(fmt.Errorf("ordered topic %s: records of client %s in partitions %d and %d",
				kr.topic, v.ClientID, home, kr.parts[part]))
		}
	}
	if h.Sent < ps.tStart || h.Sent >= ps.tEnd {
		return // warm-up traffic
	}
	if verdict == Dup {
		kr.mu.dups++
		return
	}
	if reordered {
		kr.mu.late++
	}
	kr.mu.uniqueWin++
	kr.uniqueWinA.Add(1)
	if ts != 0 && ts < ps.tEnd {
		kr.mu.inKafkaWin++
	}
	if arrived != 0 {
		kr.mu.hist.Record(arrived - h.Sent)
	}
}

// collect adds the receiver's counts to res and its latencies to hist.
// Call it once stop has returned.
func (kr *kafkaReceiver) collect(ps *pubsubRun, res *Result, hist *Histogram) {
	kr.mu.Lock()
	defer kr.mu.Unlock()
	res.Received += kr.mu.uniqueWin
	res.Duplicated += kr.mu.dups
	res.Reordered += kr.mu.late
	res.Unexpected += kr.mu.unexpected
	res.Malformed += kr.mu.malformed
	res.Delivered += kr.mu.deliveredWin
	res.KafkaInWindow += kr.mu.inKafkaWin
	res.KafkaVerify = kr.cfg.KafkaVerify
	hist.Merge(&kr.mu.hist)
	if kr.after && kr.mu.noTS > 0 {
		kr.errs.add(fmt.Errorf("kafka: %d records without a timestamp: their arrival time is unknown", kr.mu.noTS))
	}
	for i := range kr.mu.streams {
		p := ps.pubs[i]
		first, last := uint64(1), uint64(0) // empty window
		if p.hasWin {
			first, last = p.first, p.last
		}
		res.Lost += kr.mu.streams[i].Missing(first, last)
		res.Truncated = res.Truncated || kr.mu.streams[i].Truncated
	}
	for _, e := range kr.errs.all() {
		ps.errs.add(errors.New(e))
	}
}
