package spool

import (
	"fmt"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

func open(t *testing.T, o Options) *Spool {
	t.Helper()
	s, err := Open(o)
	require.NoError(t, err)
	return s
}

func rec(i int) []byte { return fmt.Appendf(nil, "record-%05d", i) }

// appendN appends records from..to-1 and commits them.
func appendN(t *testing.T, s *Spool, from, to int) {
	t.Helper()
	for i := from; i < to; i++ {
		_, err := s.Append(rec(i))
		require.NoError(t, err)
	}
	require.NoError(t, s.Commit(true))
}

// readAll reads until n records came back, failing after a second.
func readAll(t *testing.T, s *Spool, n int) []Entry {
	t.Helper()
	var out []Entry
	stop := make(chan struct{})
	timer := time.AfterFunc(time.Second, func() { close(stop) })
	defer timer.Stop()
	for len(out) < n {
		ents, err := s.Read(stop, 1000, 1<<20)
		require.NoError(t, err, "after %d of %d records", len(out), n)
		out = append(out, ents...)
	}
	return out
}

func requireRecords(t *testing.T, ents []Entry, from int) {
	t.Helper()
	for i, e := range ents {
		require.Equal(t, string(rec(from+i)), string(e.Data), "entry %d", i)
		if i > 0 {
			require.Equal(t, ents[i-1].Seq+1, e.Seq, "entry %d", i)
		}
	}
}

func TestAppendReadAck(t *testing.T) {
	dir := t.TempDir()
	s := open(t, Options{Dir: dir, MaxBytes: 1 << 20, SegmentBytes: 1 << 10})
	defer s.Close()

	seq, err := s.Append(rec(0))
	require.NoError(t, err)
	assert.Equal(t, uint64(1), seq, "the first sequence number")

	// Not readable before Commit.
	none := make(chan struct{})
	close(none)
	ents, err := s.Read(none, 10, 1<<20)
	assert.ErrorIs(t, err, ErrClosed, "Read with a closed done channel and nothing readable")
	assert.Empty(t, ents)

	require.NoError(t, s.Commit(true))
	appendN(t, s, 1, 200) // crosses several 1 KiB segments
	ents = readAll(t, s, 200)
	requireRecords(t, ents, 0)
	assert.Equal(t, uint64(1), ents[0].Seq)

	st := s.Stats()
	assert.Equal(t, uint64(200), st.Backlog)
	assert.Greater(t, st.Segments, 3, "records spread over segments")
	before := st.Bytes

	require.NoError(t, s.Ack(ents[150].Seq))
	st = s.Stats()
	assert.Equal(t, uint64(50), st.Backlog)
	assert.Less(t, st.Bytes, before, "acknowledged segments deleted")
	files, err := filepath.Glob(filepath.Join(dir, "*.seg"))
	require.NoError(t, err)
	assert.Len(t, files, st.Segments, "segment files on disk")
}

func TestReadLimits(t *testing.T) {
	s := open(t, Options{Dir: t.TempDir()})
	defer s.Close()
	appendN(t, s, 0, 100)
	stop := make(chan struct{})
	ents, err := s.Read(stop, 10, 1<<20)
	require.NoError(t, err)
	assert.Len(t, ents, 10, "maxRecords")
	ents, err = s.Read(stop, 1000, 30)
	require.NoError(t, err)
	assert.Len(t, ents, 3, "maxBytes: stops after the record that reaches it")
	requireRecords(t, ents, 10)
}

func TestReadWaitsForCommit(t *testing.T) {
	s := open(t, Options{Dir: t.TempDir()})
	defer s.Close()
	got := make(chan []Entry, 1)
	stop := make(chan struct{})
	defer close(stop)
	go func() {
		ents, _ := s.Read(stop, 10, 1<<20)
		got <- ents
	}()
	_, err := s.Append(rec(7))
	require.NoError(t, err)
	select {
	case <-got:
		t.Fatal("Read returned a record before Commit")
	case <-time.After(50 * time.Millisecond):
	}
	require.NoError(t, s.Commit(false))
	select {
	case ents := <-got:
		requireRecords(t, ents, 7)
	case <-time.After(time.Second):
		t.Fatal("Read did not return after Commit")
	}
}

func TestRestartResumesAtCursor(t *testing.T) {
	dir := t.TempDir()
	o := Options{Dir: dir, MaxBytes: 1 << 20, SegmentBytes: 512}
	s := open(t, o)
	appendN(t, s, 0, 100)
	ents := readAll(t, s, 100)
	require.NoError(t, s.Ack(ents[40].Seq)) // records 0..39 done
	require.NoError(t, s.Close())

	s = open(t, o)
	st := s.Stats()
	assert.Equal(t, uint64(60), st.Backlog, "backlog after restart")
	ents = readAll(t, s, 60)
	requireRecords(t, ents, 40)

	// Numbering continues after the recovered records.
	seq, err := s.Append(rec(100))
	require.NoError(t, err)
	assert.Equal(t, ents[len(ents)-1].Seq+1, seq)
	require.NoError(t, s.Commit(true))
	requireRecords(t, readAll(t, s, 1), 100)
	require.NoError(t, s.Close())
}

// TestAckCursorWithoutClose: the cursor Ack saves (in place, no sync) is
// what a process that died without Close restarts from.
func TestAckCursorWithoutClose(t *testing.T) {
	dir := t.TempDir()
	o := Options{Dir: dir, MaxBytes: 1 << 20, SegmentBytes: 512}
	s := open(t, o)
	appendN(t, s, 0, 50)
	ents := readAll(t, s, 50)
	require.NoError(t, s.Ack(ents[10].Seq))
	require.NoError(t, s.Ack(ents[30].Seq)) // records 0..29 done

	crashed := open(t, o) // s never closes: as after kill -9
	assert.Equal(t, uint64(20), crashed.Stats().Backlog, "backlog after the restart")
	requireRecords(t, readAll(t, crashed, 20), 30)
	require.NoError(t, crashed.Close())
	s.Close()
}

func TestRestartAfterEverythingAcked(t *testing.T) {
	dir := t.TempDir()
	o := Options{Dir: dir, SegmentBytes: 256, MaxBytes: 1 << 20}
	s := open(t, o)
	appendN(t, s, 0, 30)
	ents := readAll(t, s, 30)
	require.NoError(t, s.Ack(ents[29].Seq+1))
	require.NoError(t, s.Close())

	s = open(t, o)
	defer s.Close()
	assert.Equal(t, uint64(0), s.Stats().Backlog)
	seq, err := s.Append(rec(30))
	require.NoError(t, err)
	assert.Equal(t, uint64(31), seq, "numbering goes on")
}

func TestCorruptTailTruncated(t *testing.T) {
	tests := []struct {
		name    string
		damage  func(b []byte) []byte
		keep    int
		comment string
	}{
		{"torn header", func(b []byte) []byte { return append(b, 0, 0, 0) }, 10, "three bytes of a next header"},
		{"torn body", func(b []byte) []byte {
			return AppendFrame(b, 11, []byte("a longer record"))[:len(b)+20]
		}, 10, "a frame cut in its body"},
		{"bad checksum", func(b []byte) []byte { b[len(b)-1] ^= 0xff; return b }, 9, "the last record's last byte flipped"},
		{"garbage", func(b []byte) []byte { return append(b, []byte("\xff\xff\xff\xffxxxxxxxx")...) }, 10, "a huge length prefix"},
		{"wrong sequence", func(b []byte) []byte { return AppendFrame(b, 42, []byte("x")) }, 10, "a frame out of sequence"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			dir := t.TempDir()
			o := Options{Dir: dir}
			s := open(t, o)
			appendN(t, s, 0, 10)
			require.NoError(t, s.Close())

			files, err := filepath.Glob(filepath.Join(dir, "*.seg"))
			require.NoError(t, err)
			require.Len(t, files, 1)
			b, err := os.ReadFile(files[0])
			require.NoError(t, err)
			require.NoError(t, os.WriteFile(files[0], tt.damage(b), 0o640))

			s = open(t, o)
			defer s.Close()
			assert.Equal(t, uint64(tt.keep), s.Stats().Backlog, tt.comment)
			ents := readAll(t, s, tt.keep)
			requireRecords(t, ents, 0)
			// The writer goes on right after the last intact record.
			appendN(t, s, 100, 101)
			last := readAll(t, s, 1)
			assert.Equal(t, uint64(tt.keep+1), last[0].Seq)
			assert.Equal(t, string(rec(100)), string(last[0].Data))
		})
	}
}

func TestCorruptMiddleSegmentSkipped(t *testing.T) {
	dir := t.TempDir()
	o := Options{Dir: dir, SegmentBytes: 256, MaxBytes: 1 << 20}
	s := open(t, o)
	appendN(t, s, 0, 40)
	require.NoError(t, s.Close())

	files, err := filepath.Glob(filepath.Join(dir, "*.seg"))
	require.NoError(t, err)
	require.Greater(t, len(files), 2)
	// Damage the second record of the first segment.
	b, err := os.ReadFile(files[0])
	require.NoError(t, err)
	_, _, n, err := ParseFrame(b)
	require.NoError(t, err)
	b[n+headerSize+seqSize] ^= 0x55
	require.NoError(t, os.WriteFile(files[0], b, 0o640))

	s = open(t, o)
	defer s.Close()
	var first []Entry
	stop := make(chan struct{})
	first, err = s.Read(stop, 1000, 1<<20)
	require.NoError(t, err)
	require.Len(t, first, 1, "the record before the damage")
	requireRecords(t, first, 0)
	rest, err := s.Read(stop, 1000, 1<<20)
	require.NoError(t, err)
	require.NotEmpty(t, rest)
	st := s.Stats()
	assert.Equal(t, rest[0].Seq-2, st.Corrupt, "records lost: the rest of the first segment")
	requireRecords(t, rest, int(rest[0].Seq-1))
}

func TestFull(t *testing.T) {
	dir := t.TempDir()
	o := Options{Dir: dir, MaxBytes: 1024, SegmentBytes: 256}
	s := open(t, o)
	defer s.Close()

	big := make([]byte, 300)
	_, err := s.Append(big)
	assert.ErrorIs(t, err, ErrTooLarge, "a record larger than a segment")

	n := 0
	for ; ; n++ {
		_, err := s.Append(rec(n))
		if err != nil {
			require.ErrorIs(t, err, ErrFull)
			break
		}
		require.Less(t, n, 1000, "the spool never filled")
	}
	require.NoError(t, s.Commit(true))
	assert.LessOrEqual(t, s.Stats().Bytes, int64(1024), "bytes within the bound")
	select {
	case <-s.Space():
		t.Fatal("space signalled before anything was acknowledged")
	default:
	}

	ents := readAll(t, s, n)
	requireRecords(t, ents, 0)
	// Acknowledging the first few records frees nothing: segments go whole.
	require.NoError(t, s.Ack(ents[1].Seq))
	_, err = s.Append(rec(n))
	assert.ErrorIs(t, err, ErrFull)

	require.NoError(t, s.Ack(ents[len(ents)-1].Seq))
	select {
	case <-s.Space():
	default:
		t.Fatal("no space signal after segments were freed")
	}
	_, err = s.Append(rec(n))
	require.NoError(t, err, "room again")
	require.NoError(t, s.Commit(true))
	requireRecords(t, readAll(t, s, 1), n)
}

func TestCursorCorruptReplays(t *testing.T) {
	dir := t.TempDir()
	o := Options{Dir: dir}
	s := open(t, o)
	appendN(t, s, 0, 5)
	ents := readAll(t, s, 5)
	require.NoError(t, s.Ack(ents[4].Seq))
	require.NoError(t, s.Close())
	require.NoError(t, os.WriteFile(filepath.Join(dir, cursorName), []byte("junk"), 0o640))

	s = open(t, o)
	defer s.Close()
	assert.Equal(t, uint64(5), s.Stats().Backlog, "an unreadable cursor replays (at least once, never lost)")
}

func TestOptionsValidate(t *testing.T) {
	tests := []struct {
		name string
		o    Options
		ok   bool
	}{
		{"defaults", Options{Dir: "x"}, true},
		{"no dir", Options{}, false},
		{"negative max", Options{Dir: "x", MaxBytes: -1}, false},
		{"segment over half", Options{Dir: "x", MaxBytes: 1000, SegmentBytes: 600}, false},
		{"tiny segment", Options{Dir: "x", SegmentBytes: 10}, false},
		{"small max gets small segments", Options{Dir: "x", MaxBytes: 4096}, true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			err := tt.o.Validate()
			if tt.ok {
				assert.NoError(t, err)
			} else {
				assert.Error(t, err)
			}
		})
	}
}

func TestParseFrame(t *testing.T) {
	// A frame of record "hi", sequence 5, byte by byte.
	f := AppendFrame(nil, 5, []byte("hi"))
	require.Len(t, f, 18)
	assert.Equal(t, []byte{0, 0, 0, 10}, f[0:4], "body length: 8 (sequence) + 2")
	assert.Equal(t, []byte{0, 0, 0, 0, 0, 0, 0, 5}, f[8:16], "sequence number")
	assert.Equal(t, "hi", string(f[16:]), "record")

	seq, data, n, err := ParseFrame(f)
	require.NoError(t, err)
	assert.Equal(t, uint64(5), seq)
	assert.Equal(t, "hi", string(data))
	assert.Equal(t, 18, n)

	for i := range len(f) {
		_, _, _, err := ParseFrame(f[:i])
		assert.ErrorIs(t, err, ErrIncomplete, "prefix of %d bytes", i)
	}
	bad := append([]byte(nil), f...)
	bad[17] = 'o'
	_, _, _, err = ParseFrame(bad)
	assert.ErrorIs(t, err, ErrCorrupt, "checksum")
	_, _, _, err = ParseFrame([]byte{0, 0, 0, 7, 0, 0, 0, 0})
	assert.ErrorIs(t, err, ErrCorrupt, "body shorter than a sequence number")
}
