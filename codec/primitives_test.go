package codec

import (
	"bytes"
	"math/rand"
	"testing"
	"unicode/utf8"

	"github.com/stretchr/testify/assert"
)

// TestSWARAgainstReference checks the word-at-a-time scans of ValidUTF8 and
// hasWildcard against the obvious byte-by-byte definitions, on inputs where
// the interesting byte sits at every offset of every length up to 40.
func TestSWARAgainstReference(t *testing.T) {
	refUTF8 := func(b []byte) bool { return utf8.Valid(b) && bytes.IndexByte(b, 0) < 0 }
	refWild := func(b []byte) bool { return bytes.ContainsAny(b, "+#") }
	specials := []byte{0x00, 0x01, 0x7f, 0x80, 0xab, 0xa3, 0xff, '+', '#', '*', '"', 0xc3, 0xed}
	for n := 0; n <= 40; n++ {
		for pos := 0; pos < n; pos++ {
			for _, c := range specials {
				in := bytes.Repeat([]byte{'a'}, n)
				in[pos] = c
				assert.Equal(t, refUTF8(in), ValidUTF8(in), "ValidUTF8(% x)", in)
				assert.Equal(t, refWild(in), hasWildcard(in), "hasWildcard(% x)", in)
			}
		}
	}
	rng := rand.New(rand.NewSource(1))
	for i := 0; i < 20000; i++ {
		in := make([]byte, rng.Intn(48))
		for j := range in {
			in[j] = specials[rng.Intn(len(specials))]
			if rng.Intn(3) > 0 {
				in[j] = byte('a' + rng.Intn(26))
			}
		}
		assert.Equal(t, refUTF8(in), ValidUTF8(in), "ValidUTF8(% x)", in)
		assert.Equal(t, refWild(in), hasWildcard(in), "hasWildcard(% x)", in)
	}
}
