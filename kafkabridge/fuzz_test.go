package kafkabridge

import (
	"bytes"
	"testing"
)

// FuzzDecodeRecord: decoding arbitrary spool bytes never panics, and what
// decodes re-encodes to the same bytes.
func FuzzDecodeRecord(f *testing.F) {
	for _, r := range []record{
		{topic: "meter", value: []byte(`{"clientId":"a"}`)},
		{topic: "orderMsg2mq-x", key: []byte("c"), value: []byte("v"), headers: []header{{[]byte("qos"), []byte("1")}}},
	} {
		f.Add(r.appendTo(nil))
	}
	f.Add([]byte{1, 0, 0, 0, 0x80})
	f.Fuzz(func(t *testing.T, b []byte) {
		r, err := decodeRecord(b)
		if err != nil {
			return
		}
		if again := r.appendTo(nil); !bytes.Equal(again, b) {
			// Only non-minimal varints may differ; they must decode alike.
			r2, err := decodeRecord(again)
			if err != nil || r2.topic != r.topic || !bytes.Equal(r2.value, r.value) || len(r2.headers) != len(r.headers) {
				t.Fatalf("re-encoding changed the record")
			}
		}
	})
}
