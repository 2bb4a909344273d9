package session

import (
	"errors"
	"testing"

	"github.com/stretchr/testify/require"
)

// FuzzRecords decodes arbitrary bytes as each record type. A decode
// either fails with ErrCorrupt or succeeds; what succeeds encodes again
// into a record that decodes to the same value (the store never rewrites
// a record into something else).
func FuzzRecords(f *testing.F) {
	for _, r := range validRecords() {
		f.Add(r.kind, r.b)
	}
	f.Add(recOut, []byte{})
	f.Add(recWill, []byte{recordV1})
	f.Fuzz(func(t *testing.T, kind byte, b []byte) {
		var err error
		switch kind % 4 {
		case recOut:
			var v *Inflight
			if v, err = decodeOut(b); err == nil {
				again, err2 := decodeOut(encodeOut(v))
				require.NoError(t, err2)
				require.Equal(t, v, again)
			}
		case recSession:
			var v *Session
			if v, err = decodeSession(b); err == nil {
				again, err2 := decodeSession(encodeSession(v))
				require.NoError(t, err2)
				require.Equal(t, v, again)
			}
		case recWill:
			var v *Will
			if v, err = decodeWill(b); err == nil {
				again, err2 := decodeWill(encodeWill(v))
				require.NoError(t, err2)
				require.Equal(t, v, again)
			}
		case recRetained:
			var v *Message
			if v, err = decodeRetained(b); err == nil {
				again, err2 := decodeRetained(encodeRetained(v))
				require.NoError(t, err2)
				require.Equal(t, v, again)
			}
		}
		if err != nil && !errors.Is(err, ErrCorrupt) {
			t.Fatalf("error %v is not ErrCorrupt", err)
		}
	})
}
