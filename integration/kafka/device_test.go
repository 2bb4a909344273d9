package kafka

import (
	"encoding/base64"
	"encoding/json"
	"fmt"
	"net/http"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/IBM/sarama"
	mqtt "github.com/eclipse/paho.mqtt.golang"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/mqttd/mqttd/kafkabridge"
)

// deviceRecord is the JSON value of a device message's record.
type deviceRecord struct {
	ClientID        string `json:"clientId"`
	Topic           string `json:"topic"`
	Payload         string `json:"payload"`
	PayloadEncoding string `json:"payloadEncoding"`
	TS              int64  `json:"ts"`
}

// TestKafkaDeviceMessage: a parent topic registered through the admin API
// gets its Kafka topic (3 partitions, 72 h retention); a device's
// publishes land there with every JSON field and header; publishes to an
// unregistered parent topic are delivered over MQTT only.
func TestKafkaDeviceMessage(t *testing.T) {
	e := setup(t, nil)
	name := "meter" + uniq()
	e.registerTopic(t, name, "")

	code, body := e.api(t, "GET", "/api/v1/parent-topics", "")
	require.Equal(t, http.StatusOK, code)
	assert.Contains(t, body, `"name":"`+name+`","type":"normal"`)
	code, body = e.api(t, "POST", "/api/v1/parent-topics", `{"name":"`+name+`","type":"ordered"}`)
	assert.Equal(t, http.StatusBadRequest, code, "a conflicting type: %s", body)
	assert.Contains(t, body, `"field":"type"`)

	ca, err := sarama.NewClusterAdmin([]string{kafkaEnv.addr}, saramaConfig())
	require.NoError(t, err)
	defer ca.Close()
	md, err := ca.DescribeTopics([]string{name})
	require.NoError(t, err)
	require.Len(t, md, 1)
	assert.Len(t, md[0].Partitions, 3, "partitions")
	cfgs, err := ca.DescribeConfig(sarama.ConfigResource{Type: sarama.TopicResource, Name: name, ConfigNames: []string{"retention.ms"}})
	require.NoError(t, err)
	require.NotEmpty(t, cfgs)
	assert.Equal(t, strconv.FormatInt((72*time.Hour).Milliseconds(), 10), cfgs[0].Value, "retention.ms")

	watcher := connect(t, e.mqttURL, "watch-"+uniq(), true)
	other := "unreg" + uniq()
	watcher.sub(t, name+"/#", 1)
	watcher.sub(t, other+"/#", 1)

	devID := "dev-" + uniq()
	dev := connect(t, e.mqttURL, devID, true)
	before := time.Now().UnixMilli()
	dev.pub(t, name+"/dev1/temp", 1, []byte(`{"t":21.5,"unit":"°C"}`))
	dev.pub(t, name+"/dev1/raw", 2, []byte{0xff, 0x00, 0x01, 0x80})
	dev.pub(t, name, 0, []byte("parent only"))
	dev.pub(t, other+"/x", 1, []byte("not for kafka"))
	after := time.Now().UnixMilli()
	for range 4 {
		watcher.recv(t) // delivered as usual, registered or not
	}

	recs := consume(t, name, 3, wait, nil)
	require.Len(t, recs, 3, "exactly the three publishes to the registered parent topic")
	byTopic := map[string]*sarama.ConsumerMessage{}
	for _, r := range recs {
		var v deviceRecord
		require.NoError(t, json.Unmarshal(r.Value, &v), "value is JSON: %s", r.Value)
		byTopic[v.Topic] = r
		assert.Nil(t, r.Key, "normal topics are not keyed")
		assert.Equal(t, devID, v.ClientID)
		assert.GreaterOrEqual(t, v.TS, before)
		assert.LessOrEqual(t, v.TS, after)
		h, _ := header(r, "clientId")
		assert.Equal(t, devID, h)
		h, _ = header(r, "mqttTopic")
		assert.Equal(t, v.Topic, h)
		var raw map[string]any
		require.NoError(t, json.Unmarshal(r.Value, &raw))
		for _, f := range []string{"clientId", "topic", "payload", "ts"} {
			assert.Contains(t, raw, f)
		}
	}

	r := byTopic[name+"/dev1/temp"]
	require.NotNil(t, r)
	var v deviceRecord
	require.NoError(t, json.Unmarshal(r.Value, &v))
	assert.Equal(t, `{"t":21.5,"unit":"°C"}`, v.Payload)
	assert.Empty(t, v.PayloadEncoding)
	q, _ := header(r, "qos")
	assert.Equal(t, "1", q)

	r = byTopic[name+"/dev1/raw"]
	require.NotNil(t, r)
	require.NoError(t, json.Unmarshal(r.Value, &v))
	assert.Equal(t, "base64", v.PayloadEncoding)
	got, err := base64.StdEncoding.DecodeString(v.Payload)
	require.NoError(t, err)
	assert.Equal(t, []byte{0xff, 0x00, 0x01, 0x80}, got)
	q, _ = header(r, "qos")
	assert.Equal(t, "2", q)

	r = byTopic[name]
	require.NotNil(t, r, "a publish to the parent topic itself")
	q, _ = header(r, "qos")
	assert.Equal(t, "0", q)

	// Unregistering stops the bridging; the Kafka topic stays.
	code, body = e.api(t, "DELETE", "/api/v1/parent-topics/"+name, "")
	require.Equal(t, http.StatusNoContent, code, body)
	dev.pub(t, name+"/dev1/temp", 1, []byte("after delete"))
	watcher.recv(t)
	m := e.br.Metrics()
	assert.Equal(t, uint64(3), m.Accepted, "nothing taken after the delete")
}

// TestKafkaOrderedClients: three clients each send 1,000 numbered QoS 1
// messages to an orderMsg2mq- topic (acknowledged only once Kafka has
// them); reading every partition shows each client's sequence complete,
// in order, in one partition, keyed by the client ID.
func TestKafkaOrderedClients(t *testing.T) {
	e := setup(t, func(c *kafkabridge.Config) { c.Ack = kafkabridge.AckKafka })
	name := kafkabridge.OrderedPrefix + uniq()
	e.registerTopic(t, name, "")
	code, body := e.api(t, "GET", "/api/v1/parent-topics", "")
	require.Equal(t, http.StatusOK, code)
	assert.Contains(t, body, `"name":"`+name+`","type":"ordered"`)

	const clients, per = 3, 1000
	ids := make([]string, clients)
	errs := make(chan error, clients)
	for c := range clients {
		ids[c] = fmt.Sprintf("ord%d-%s", c, uniq())
		dev := connect(t, e.mqttURL, ids[c], true)
		go func() {
			toks := make([]mqtt.Token, 0, per)
			for i := range per {
				toks = append(toks, dev.Publish(name+"/seq", 1, false, []byte(strconv.Itoa(i))))
			}
			for i, tok := range toks {
				if !tok.WaitTimeout(2 * wait) {
					errs <- fmt.Errorf("%s: message %d not acknowledged", dev.id, i)
					return
				}
				if err := tok.Error(); err != nil {
					errs <- err
					return
				}
			}
			errs <- nil
		}()
	}
	for range clients {
		require.NoError(t, <-errs)
	}

	recs := consume(t, name, clients*per, 2*wait, nil)
	require.Len(t, recs, clients*per, "no duplicates while Kafka is healthy")
	next := map[string]int{}
	part := map[string]int32{}
	for _, r := range recs {
		var v deviceRecord
		require.NoError(t, json.Unmarshal(r.Value, &v))
		require.Equal(t, v.ClientID, string(r.Key), "keyed by client ID")
		if p, ok := part[v.ClientID]; ok {
			require.Equal(t, p, r.Partition, "client %s in one partition", v.ClientID)
		}
		part[v.ClientID] = r.Partition
		n, err := strconv.Atoi(v.Payload)
		require.NoError(t, err)
		require.Equal(t, next[v.ClientID], n, "client %s: in order, no gap", v.ClientID)
		next[v.ClientID] = n + 1
	}
	for _, id := range ids {
		assert.Equal(t, per, next[id], "client %s complete", id)
	}
	m := e.br.Metrics()
	assert.Equal(t, uint64(0), m.Resent, "nothing resent while Kafka is healthy")
	assert.Equal(t, uint64(0), m.Failed)
	assert.True(t, strings.HasPrefix(name, "orderMsg2mq-"))
}
