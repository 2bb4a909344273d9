package spool

import (
	"os"
	"path/filepath"
	"testing"
)

// FuzzOpenRead writes arbitrary bytes as a segment file, opens the spool
// and reads everything back: recovery and the reader must never panic,
// must return consecutive sequence numbers, and every record returned must
// be one whose frame is intact in the input.
func FuzzOpenRead(f *testing.F) {
	var good []byte
	for i := range 5 {
		good = AppendFrame(good, uint64(1+i), rec(i))
	}
	f.Add(good)
	f.Add(good[:len(good)-3])
	f.Add(append(append([]byte(nil), good...), 0xff, 0xff, 0xff, 0xff, 1, 2, 3, 4))
	f.Add(AppendFrame(nil, 9, []byte("x")))
	f.Add([]byte{})
	f.Fuzz(func(t *testing.T, data []byte) {
		dir := t.TempDir()
		if err := os.WriteFile(filepath.Join(dir, segmentName(1)), data, 0o640); err != nil {
			t.Fatal(err)
		}
		s, err := Open(Options{Dir: dir, MaxBytes: 1 << 20, SegmentBytes: 1 << 18})
		if err != nil {
			t.Fatalf("Open: %v", err)
		}
		defer s.Close()
		want := s.Stats().Backlog
		done := make(chan struct{})
		close(done)
		var got uint64
		off := 0
		for got < want {
			ents, err := s.Read(done, 100, 1<<20)
			if err != nil {
				t.Fatalf("Read after %d of %d: %v", got, want, err)
			}
			for _, e := range ents {
				if e.Seq != 1+got {
					t.Fatalf("sequence %d, want %d", e.Seq, 1+got)
				}
				seq, rec, n, err := ParseFrame(data[off:])
				if err != nil || seq != e.Seq || string(rec) != string(e.Data) {
					t.Fatalf("record %d does not match the input frame at %d", e.Seq, off)
				}
				off += n
				got++
			}
		}
		// Appending after recovery continues the sequence.
		seq, err := s.Append([]byte("more"))
		if err != nil {
			t.Fatalf("Append: %v", err)
		}
		if seq != want+1 {
			t.Fatalf("Append got sequence %d, want %d", seq, want+1)
		}
	})
}
