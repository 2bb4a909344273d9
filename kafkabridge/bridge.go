package kafkabridge

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/rs/zerolog"

	"github.com/mqttd/mqttd/broker"
	"github.com/mqttd/mqttd/codec"
	"github.com/mqttd/mqttd/kafkabridge/spool"
	"github.com/mqttd/mqttd/session"
)

// Errors passed to the broker's done callbacks (the publisher's
// connection is then closed unacknowledged; the client resends).
var (
	// ErrClosed: the bridge is closed or closing.
	ErrClosed = errors.New("kafkabridge: closed")
	// ErrOverloaded: the spool is full and the in-memory queue too.
	ErrOverloaded = errors.New("kafkabridge: spool and queue full")
)

// Bridge connects the broker to Kafka. See the package documentation.
type Bridge struct {
	cfg Config
	log zerolog.Logger
	// overloadLog and fullLog are sampled: a full spool would otherwise
	// log once per message.
	overloadLog, fullLog zerolog.Logger
	b                    *broker.Broker // commands go in through b.Publish; nil: no commands
	kv                   session.KV
	sp                   *spool.Spool
	seqs                 *seqs

	admin       topicAdmin
	newProducer func() (producer, error)
	newConsumer func() (consumerGroup, error)

	topicsMu sync.Mutex // serializes Register and Delete
	topics   atomic.Pointer[map[string]ParentTopic]

	in struct { // the intake queue: Accept and the hooks append, the writer takes
		sync.Mutex
		items  []item
		bytes  int64
		closed bool
	}
	inSignal chan struct{} // cap 1

	waiters struct { // AckKafka: done callbacks by spool sequence number
		sync.Mutex
		m map[uint64]func(error)
	}

	st struct {
		sync.Mutex
		kafkaUp        bool
		kafkaErr       string
		kafkaDownSince time.Time
		spoolFull      bool
		spoolFullSince time.Time
		claims         int
		lag            map[int32]int64
	}
	m counters

	started   atomic.Bool
	closeOnce sync.Once
	ctx       context.Context // ends when the bridge closes
	cancel    context.CancelFunc
	writerCtx context.Context // ends the writer once the intake is drained
	stopWrite context.CancelFunc
	sendCtx   context.Context // ends the sender
	stopSend  context.CancelFunc
	cmdCtx    context.Context // ends the command consumer
	stopCmd   context.CancelFunc
	writerWG  sync.WaitGroup
	senderWG  sync.WaitGroup
	cmdWG     sync.WaitGroup
	bgWG      sync.WaitGroup
}

// item is one record waiting in the intake queue, not yet encoded: the
// event loop only appends it.
type item struct {
	msg     *broker.Message // a device message, or
	parent  string
	ordered bool
	ev      *presenceEvent // a presence event, or
	rec     *record        // a ready record (dead letters)
	done    func(error)    // nil: nobody waits
	size    int64          // bytes it holds in memory, for QueueBytes
}

// New opens the spool, loads the registered parent topics from kv and
// starts a new presence generation. b receives the commands; it may be
// nil here and given with SetBroker before Start (the broker's Config
// needs the bridge as Acker and Hook before the broker exists). Nothing
// talks to Kafka before Start.
func New(cfg Config, b *broker.Broker, kv session.KV) (*Bridge, error) {
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	cfg.setDefaults()
	br, err := newBridge(cfg, b, kv)
	if err != nil {
		return nil, err
	}
	k := newKafka(&br.cfg)
	br.admin = k
	br.newProducer = k.producer
	br.newConsumer = k.consumerGroup
	return br, nil
}

// newBridge builds a bridge without its Kafka clients (tests put fakes).
func newBridge(cfg Config, b *broker.Broker, kv session.KV) (*Bridge, error) {
	if kv == nil {
		return nil, errors.New("kafkabridge: a KV is required")
	}
	so := spool.Options{Dir: cfg.SpoolDir, MaxBytes: cfg.SpoolMaxBytes, SegmentBytes: cfg.SpoolSegmentBytes, Log: cfg.Log}
	if err := so.Validate(); err != nil {
		return nil, fmt.Errorf("kafkabridge: %w", err)
	}
	sp, err := spool.Open(so)
	if err != nil {
		return nil, fmt.Errorf("kafkabridge: %w", err)
	}
	sq, err := newSeqs(kv)
	if err != nil {
		sp.Close()
		return nil, fmt.Errorf("kafkabridge: presence generation: %w", err)
	}
	br := &Bridge{cfg: cfg, log: cfg.Log, b: b, kv: kv, sp: sp, seqs: sq, inSignal: make(chan struct{}, 1)}
	br.overloadLog = cfg.Log.Sample(&zerolog.BurstSampler{Burst: 1, Period: 10 * time.Second})
	br.fullLog = cfg.Log.Sample(&zerolog.BurstSampler{Burst: 1, Period: 30 * time.Second})
	br.waiters.m = make(map[uint64]func(error))
	br.st.lag = make(map[int32]int64)
	br.st.kafkaUp = true // until a round fails
	if err := br.loadTopics(); err != nil {
		sp.Close()
		return nil, err
	}
	br.ctx, br.cancel = context.WithCancel(context.Background())
	br.writerCtx, br.stopWrite = context.WithCancel(context.Background())
	br.sendCtx, br.stopSend = context.WithCancel(context.Background())
	br.cmdCtx, br.stopCmd = context.WithCancel(context.Background())
	if bl := sp.Stats().Backlog; bl > 0 {
		br.log.Info().Uint64("records", bl).Msg("kafkabridge: spool holds records from before the restart: sending them first")
	}
	return br, nil
}

// SetBroker gives the bridge the broker that receives the commands. Call
// it before Start.
func (br *Bridge) SetBroker(b *broker.Broker) {
	if br.started.Load() {
		panic("kafkabridge: SetBroker after Start")
	}
	br.b = b
}

// Start creates the system topics (retrying in the background while
// Kafka is unreachable) and starts the spool writer, the producer and the
// command consumer. The bridge works without Kafka: records wait in the
// spool. ctx only bounds Start itself; Close stops the bridge.
func (br *Bridge) Start(ctx context.Context) error {
	if !br.started.CompareAndSwap(false, true) {
		return errors.New("kafkabridge: already started")
	}
	if err := ctx.Err(); err != nil {
		br.started.Store(false)
		return err
	}
	if br.b == nil && !br.cfg.DisableCommands {
		br.started.Store(false)
		return errors.New("kafkabridge: Start: no broker for the commands (SetBroker, or Config.DisableCommands)")
	}
	br.writerWG.Add(1)
	go br.writeLoop()
	br.senderWG.Add(1)
	go br.sendLoop()
	br.bgWG.Add(2)
	go br.ensureSystemTopics()
	go br.janitor()
	if !br.cfg.DisableCommands {
		br.cmdWG.Add(1)
		go br.consumeLoop()
	}
	br.log.Info().Strs("brokers", br.cfg.Brokers).Str("ack", string(br.cfg.Ack)).Msg("kafka bridge started")
	return nil
}

// Close stops the bridge: the command consumer first, then the intake
// (later messages are refused: QoS 1/2 publishers are disconnected
// unacknowledged and resend), then the writer once everything queued is
// in the spool. The producer gets up to Config.CloseTimeout to send the
// spool to Kafka; what remains is sent after the next start. Call it after
// the broker has closed, so the last disconnect events are recorded.
func (br *Bridge) Close() error {
	var err error
	br.closeOnce.Do(func() { err = br.close() })
	return err
}

func (br *Bridge) close() error {
	br.stopCmd()
	br.cmdWG.Wait()

	br.in.Lock()
	br.in.closed = true
	br.in.Unlock()
	signal(br.inSignal)
	br.stopWrite()
	deadline := time.Now().Add(br.cfg.CloseTimeout)
	if br.started.Load() {
		// The writer drains the intake into the spool (waiting for room
		// while the producer frees some), then the producer gets what
		// is left of CloseTimeout to empty the spool.
		writerDone := make(chan struct{})
		go func() { br.writerWG.Wait(); close(writerDone) }()
		select {
		case <-writerDone:
		case <-time.After(time.Until(deadline)):
		}
		for br.sp.Stats().Backlog > 0 && br.kafkaUp() && time.Now().Before(deadline) {
			time.Sleep(20 * time.Millisecond)
		}
	}
	br.stopSend() // a writer still waiting for room gives up now
	br.writerWG.Wait()
	br.senderWG.Wait()
	// Without Start, or when the writer gave up: refuse what is left.
	br.in.Lock()
	left := br.in.items
	br.in.items, br.in.bytes = nil, 0
	br.in.Unlock()
	for _, it := range left {
		if it.done != nil {
			br.m.refused.Add(1)
			it.done(ErrClosed)
		} else {
			br.m.dropped.Add(1)
		}
	}
	br.cancel()
	br.bgWG.Wait()

	br.waiters.Lock()
	pending := br.waiters.m
	br.waiters.m = make(map[uint64]func(error))
	br.waiters.Unlock()
	for _, done := range pending {
		done(ErrClosed)
	}
	var errs []error
	if br.admin != nil {
		errs = append(errs, br.admin.Close())
	}
	st := br.sp.Stats()
	errs = append(errs, br.sp.Close())
	if st.Backlog > 0 {
		br.log.Warn().Uint64("records", st.Backlog).Msg("kafkabridge: closed with records in the spool: they are sent after the next start")
	}
	br.log.Info().Msg("kafka bridge closed")
	return errors.Join(errs...)
}

// Accept implements broker.Acker: a device message whose parent topic is
// registered is queued for its Kafka topic; others are left alone. It
// never blocks. For QoS 1/2, done is called once the record is durable as
// Config.Ack says.
func (br *Bridge) Accept(m *broker.Message, done func(error)) bool {
	parent, _, _ := strings.Cut(m.Topic, "/")
	pt, ok := (*br.topics.Load())[parent]
	if !ok {
		return false
	}
	if m.QoS == codec.QoS0 {
		done(nil) // nothing waits for a QoS 0 message
		done = nil
	}
	br.m.accepted.Add(1)
	br.enqueue(item{
		msg:     m,
		parent:  parent,
		ordered: pt.Type == Ordered,
		done:    done,
		size:    int64(len(m.Payload)+len(m.Topic)+len(m.ClientID)) + 128,
	})
	return true
}

// enqueue appends it to the intake queue, or refuses it when the bridge
// is closed or the queue is full. Never blocks.
func (br *Bridge) enqueue(it item) {
	br.in.Lock()
	var refuse error
	switch {
	case br.in.closed:
		refuse = ErrClosed
	case br.in.bytes+it.size > br.cfg.QueueBytes:
		refuse = ErrOverloaded
	default:
		br.in.items = append(br.in.items, it)
		br.in.bytes += it.size
	}
	br.in.Unlock()
	if refuse == nil {
		signal(br.inSignal)
		return
	}
	if it.done != nil {
		br.m.refused.Add(1)
		it.done(refuse)
	} else {
		br.m.dropped.Add(1)
	}
	if errors.Is(refuse, ErrOverloaded) {
		br.overloadLog.Error().Int64("queue_bytes", br.cfg.QueueBytes).
			Msg("kafkabridge: spool full and memory queue full: refusing QoS 1/2 messages, dropping QoS 0 and events")
	}
}

// writeLoop moves queued items into the spool: encode, append, commit
// (synced in AckLocal mode: a group commit per batch), then release the
// publishers (AckLocal) or register them for Kafka's acknowledgement
// (AckKafka).
func (br *Bridge) writeLoop() {
	defer br.writerWG.Done()
	local := br.cfg.Ack == AckLocal
	tick := time.NewTicker(br.cfg.SyncInterval)
	defer tick.Stop()
	var (
		enc     recordEncoder
		w       spoolWriter
		spare   []item
		durable []func(error) // AckLocal: released after the next synced commit
	)
	commit := func() {
		// Items in the spool no longer count against QueueBytes. Done
		// here, once per batch (and before waiting for room), rather
		// than under the intake lock for every item.
		if w.freed != 0 {
			br.in.Lock()
			br.in.bytes -= w.freed
			br.in.Unlock()
			w.freed = 0
		}
		if w.spooled != 0 {
			br.m.spooled.Add(w.spooled)
			w.spooled = 0
		}
		if err := br.sp.Commit(local); err != nil {
			br.log.Error().Err(err).Msg("kafkabridge: spool commit failed")
			for _, d := range durable {
				d(err)
			}
		} else {
			for _, d := range durable {
				d(nil)
			}
		}
		clear(durable) // the callbacks hold connections: let them go
		durable = durable[:0]
	}
	w.commit = commit
	for {
		br.in.Lock()
		var items []item
		if len(br.in.items) > 0 {
			items, br.in.items, spare = br.in.items, spare[:0], nil
		}
		closed := br.in.closed
		br.in.Unlock()

		if len(items) == 0 {
			if closed && br.writerCtx.Err() != nil {
				if err := br.sp.Commit(true); err != nil {
					br.log.Error().Err(err).Msg("kafkabridge: spool commit failed")
				}
				return
			}
			select {
			case <-br.inSignal:
			case <-br.writerCtx.Done():
			case <-tick.C:
				if !local && br.sp.Dirty() {
					if err := br.sp.Commit(true); err != nil {
						br.log.Error().Err(err).Msg("kafkabridge: spool sync failed")
					}
				}
			}
			continue
		}
		for i := range items {
			it := &items[i]
			data := enc.item(it, &br.cfg)
			seq, err := br.appendWaiting(&w, data)
			w.freed += it.size
			switch {
			case err == nil:
				w.spooled++
				if it.done != nil {
					if local {
						durable = append(durable, it.done)
					} else {
						br.waiters.Lock()
						br.waiters.m[seq] = it.done
						br.waiters.Unlock()
					}
				}
			case errors.Is(err, spool.ErrTooLarge):
				// Can never be stored: counted, logged, released (holding
				// it would make the client resend it forever).
				br.m.failed.Add(1)
				br.log.Error().Int("bytes", len(data)).Msg("kafkabridge: record larger than a spool segment: not stored")
				if it.done != nil {
					it.done(nil)
				}
			default:
				// Closed while waiting for room, or a disk error: the
				// publisher resends after reconnecting.
				if it.done != nil {
					br.m.refused.Add(1)
					it.done(err)
				} else {
					br.m.dropped.Add(1)
				}
			}
			*it = item{} // the spare slice must not keep messages alive
		}
		commit()
		spare = items
	}
}

// spoolWriter is the writer goroutine's state between two commits.
type spoolWriter struct {
	commit  func() // commits the spool and releases what waits for it
	freed   int64  // intake bytes now in the spool, not yet subtracted
	spooled uint64 // records appended, not yet counted in Metrics
	full    bool   // this writer raised AlarmSpoolFull
}

// appendWaiting appends one record, waiting while the spool is full: the
// alarm is raised, what is buffered is committed (so the producer can
// free segments) and the writer waits for room. It gives up with
// ErrClosed when the bridge closes and the producer has stopped.
func (br *Bridge) appendWaiting(w *spoolWriter, data []byte) (uint64, error) {
	for {
		seq, err := br.sp.Append(data)
		if !errors.Is(err, spool.ErrFull) {
			if err == nil && w.full {
				br.setSpoolFull(false)
				w.full = false
			}
			return seq, err
		}
		w.commit()
		br.setSpoolFull(true)
		w.full = true
		select {
		case <-br.sp.Space():
		case <-br.sendCtx.Done():
			return 0, ErrClosed
		case <-time.After(time.Second):
		}
	}
}

func signal(ch chan struct{}) {
	select {
	case ch <- struct{}{}:
	default:
	}
}

// janitor forgets long-offline clients' presence counters.
func (br *Bridge) janitor() {
	defer br.bgWG.Done()
	t := time.NewTicker(10 * time.Minute)
	defer t.Stop()
	for {
		select {
		case <-br.ctx.Done():
			return
		case now := <-t.C:
			if n := br.seqs.prune(now.Add(-seqIdle)); n > 0 {
				br.log.Debug().Int("clients", n).Msg("kafkabridge: forgot presence counters of offline clients")
			}
		}
	}
}
