package kafka

import (
	"bytes"
	"crypto/rand"
	"encoding/hex"
	"fmt"
	"io"
	"net/http"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/IBM/sarama"
	mqtt "github.com/eclipse/paho.mqtt.golang"
	"github.com/rs/zerolog"
	"github.com/stretchr/testify/require"

	"github.com/mqttd/mqttd/admin"
	"github.com/mqttd/mqttd/broker"
	"github.com/mqttd/mqttd/internal/brokertest"
	"github.com/mqttd/mqttd/internal/wiring"
	"github.com/mqttd/mqttd/kafkabridge"
	"github.com/mqttd/mqttd/session"
)

const wait = 30 * time.Second

// uniq returns a short random suffix for names of this test run.
func uniq() string {
	var b [4]byte
	_, _ = rand.Read(b[:])
	return hex.EncodeToString(b[:])
}

// env is one test's broker, bridge and admin API.
type env struct {
	br       *kafkabridge.Bridge
	srv      *brokertest.Server
	adminURL string
	mqttURL  string
	kv       session.KV
	group    string
}

func (e *env) groupName() string { return e.group }

// setup starts a bridge (with its own consumer group and spool) and a
// broker that uses it, plus the admin API. mod may change the bridge's
// config. Cleanup closes the broker first, then the bridge.
func setup(t testing.TB, mod func(*kafkabridge.Config)) *env {
	t.Helper()
	addr := needKafka(t)
	kv := session.NewMemKV()
	cfg := kafkabridge.Config{
		Brokers:       []string{addr},
		SpoolDir:      t.TempDir(),
		ConsumerGroup: "mqttd-test-" + uniq(),
		Log:           testLogger(t),
		CloseTimeout:  10 * time.Second,
	}
	if mod != nil {
		mod(&cfg)
	}
	br, err := kafkabridge.New(cfg, nil, kv)
	require.NoError(t, err)
	// Registered before brokertest's cleanup, so it runs after it: the
	// broker's last disconnect events reach the bridge.
	t.Cleanup(func() { require.NoError(t, br.Close()) })
	srv := brokertest.Start(t, brokertest.Options{Config: broker.Config{
		AllowAnonymous: true,
		Ackers:         []broker.Acker{br},
		Hooks:          []broker.Hook{br},
	}})
	br.SetBroker(srv.Broker)
	require.NoError(t, br.Start(t.Context()))

	as, err := admin.New(admin.Config{Addr: "127.0.0.1:0", Token: "test-token"}, admin.Deps{ParentTopics: wiring.ParentTopics(br)})
	require.NoError(t, err)
	require.NoError(t, as.Start())
	t.Cleanup(func() { as.Close() })
	return &env{br: br, srv: srv, adminURL: "http://" + as.Addr(), mqttURL: "tcp://" + srv.TCP, kv: kv, group: cfg.ConsumerGroup}
}

// registerTopic registers a parent topic through the admin API.
func (e *env) registerTopic(t testing.TB, name, typ string) {
	t.Helper()
	body := fmt.Sprintf(`{"name":%q,"type":%q}`, name, typ)
	code, resp := e.api(t, "POST", "/api/v1/parent-topics", body)
	require.Equal(t, http.StatusCreated, code, resp)
}

func (e *env) api(t testing.TB, method, path, body string) (int, string) {
	t.Helper()
	req, err := http.NewRequest(method, e.adminURL+path, strings.NewReader(body))
	require.NoError(t, err)
	req.Header.Set("Authorization", "Bearer test-token")
	resp, err := http.DefaultClient.Do(req)
	require.NoError(t, err)
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return resp.StatusCode, string(b)
}

// device is a paho.mqtt.golang (MQTT 3.1.1) client.
type device struct {
	mqtt.Client
	id   string
	msgs chan mqtt.Message
}

func connect(t testing.TB, url, id string, clean bool) *device {
	t.Helper()
	d := &device{id: id, msgs: make(chan mqtt.Message, 10000)}
	o := mqtt.NewClientOptions().AddBroker(url).SetClientID(id).SetCleanSession(clean).
		SetProtocolVersion(4).SetAutoReconnect(false).SetKeepAlive(30 * time.Second).
		SetConnectTimeout(wait).SetWriteTimeout(wait).SetOrderMatters(true).SetMessageChannelDepth(10000).
		SetDefaultPublishHandler(func(_ mqtt.Client, m mqtt.Message) { d.msgs <- m })
	d.Client = mqtt.NewClient(o)
	tok := d.Connect()
	require.True(t, tok.WaitTimeout(wait), "connect %s", id)
	require.NoError(t, tok.Error(), "connect %s", id)
	t.Cleanup(func() {
		if d.IsConnectionOpen() {
			d.Disconnect(50)
		}
	})
	return d
}

func (d *device) pub(t testing.TB, topic string, qos byte, payload []byte) {
	t.Helper()
	tok := d.Publish(topic, qos, false, payload)
	require.True(t, tok.WaitTimeout(wait), "publish to %s not acknowledged", topic)
	require.NoError(t, tok.Error())
}

func (d *device) sub(t testing.TB, filter string, qos byte) {
	t.Helper()
	tok := d.Subscribe(filter, qos, nil)
	require.True(t, tok.WaitTimeout(wait))
	require.NoError(t, tok.Error())
}

func (d *device) recv(t testing.TB) mqtt.Message {
	t.Helper()
	select {
	case m := <-d.msgs:
		return m
	case <-time.After(wait):
		t.Fatalf("%s received nothing within %v", d.id, wait)
		return nil
	}
}

func saramaConfig() *sarama.Config {
	c := sarama.NewConfig()
	c.Version = sarama.V4_0_0_0
	c.ClientID = "mqttd-test"
	c.Producer.Return.Successes = true
	c.Producer.RequiredAcks = sarama.WaitForAll
	c.Metadata.AllowAutoTopicCreation = false
	return c
}

// consume reads topic from the oldest offset on every partition until
// want records matched keep, or fails after d. Records of one partition
// keep their order.
func consume(t testing.TB, topic string, want int, d time.Duration, keep func(*sarama.ConsumerMessage) bool) []*sarama.ConsumerMessage {
	t.Helper()
	c, err := sarama.NewConsumer([]string{kafkaEnv.addr}, saramaConfig())
	require.NoError(t, err)
	defer c.Close()
	parts, err := c.Partitions(topic)
	require.NoError(t, err, "partitions of %s", topic)
	ch := make(chan *sarama.ConsumerMessage, 1024)
	stop := make(chan struct{})
	var wg sync.WaitGroup
	for _, p := range parts {
		pc, err := c.ConsumePartition(topic, p, sarama.OffsetOldest)
		require.NoError(t, err)
		wg.Add(1)
		go func() {
			defer wg.Done()
			defer pc.Close()
			for {
				select {
				case m := <-pc.Messages():
					select {
					case ch <- m:
					case <-stop:
						return
					}
				case <-stop:
					return
				}
			}
		}()
	}
	defer wg.Wait()
	defer close(stop)
	var out []*sarama.ConsumerMessage
	timeout := time.After(d)
	for len(out) < want {
		select {
		case m := <-ch:
			if keep == nil || keep(m) {
				out = append(out, m)
			}
		case <-timeout:
			t.Fatalf("%s: %d of %d records within %v", topic, len(out), want, d)
		}
	}
	// Give stragglers (duplicates, strays) a moment to show up too.
	linger := time.After(500 * time.Millisecond)
	for {
		select {
		case m := <-ch:
			if keep == nil || keep(m) {
				out = append(out, m)
			}
		case <-linger:
			return out
		}
	}
}

func header(m *sarama.ConsumerMessage, key string) (string, bool) {
	for _, h := range m.Headers {
		if string(h.Key) == key {
			return string(h.Value), true
		}
	}
	return "", false
}

// produce sends one record to topic with headers (key, value pairs).
func produce(t testing.TB, topic string, value []byte, kv ...string) {
	t.Helper()
	p, err := sarama.NewSyncProducer([]string{kafkaEnv.addr}, saramaConfig())
	require.NoError(t, err)
	defer p.Close()
	m := &sarama.ProducerMessage{Topic: topic, Value: sarama.ByteEncoder(value)}
	for i := 0; i+1 < len(kv); i += 2 {
		m.Headers = append(m.Headers, sarama.RecordHeader{Key: []byte(kv[i]), Value: []byte(kv[i+1])})
	}
	_, _, err = p.SendMessage(m)
	require.NoError(t, err)
}

// testLogger writes the bridge's logs (info and up) to the test log
// until the test ends.
func testLogger(t testing.TB) zerolog.Logger {
	w := &testWriter{t: t}
	t.Cleanup(func() {
		w.mu.Lock()
		w.t = nil
		w.mu.Unlock()
	})
	return zerolog.New(zerolog.ConsoleWriter{Out: w, NoColor: true, TimeFormat: "15:04:05.000"}).
		Level(zerolog.InfoLevel).With().Timestamp().Logger()
}

type testWriter struct {
	mu sync.Mutex // guards t
	t  testing.TB
}

func (w *testWriter) Write(p []byte) (int, error) {
	w.mu.Lock()
	defer w.mu.Unlock()
	if w.t != nil {
		w.t.Log(string(bytes.TrimRight(p, "\n")))
	}
	return len(p), nil
}
