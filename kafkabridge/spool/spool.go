package spool

import (
	"bufio"
	"encoding/binary"
	"errors"
	"fmt"
	"hash/crc32"
	"os"
	"path/filepath"
	"sort"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"

	"github.com/rs/zerolog"
)

// Errors returned by Append and Open.
var (
	// ErrFull: one more frame would pass Options.MaxBytes. Wait on Space
	// and try again.
	ErrFull = errors.New("spool: full")
	// ErrTooLarge: the record's frame is larger than a segment; it can
	// never be appended.
	ErrTooLarge = errors.New("spool: record larger than a segment")
	// ErrClosed: the spool was closed.
	ErrClosed = errors.New("spool: closed")
)

const (
	headerSize = 8 // body length + CRC
	seqSize    = 8
	// MaxFrame is the largest frame body Open and Read accept; a longer
	// length prefix is corruption.
	MaxFrame = 64 << 20

	// DefaultMaxBytes is Options.MaxBytes when zero: 1 GiB.
	DefaultMaxBytes = 1 << 30
	// DefaultSegmentBytes is Options.SegmentBytes when zero (16 MiB, or a
	// quarter of MaxBytes when that is smaller).
	DefaultSegmentBytes = 16 << 20

	cursorName = "cursor"
	segSuffix  = ".seg"
	bufSize    = 256 << 10
	readChunk  = 256 << 10
)

var crcTable = crc32.MakeTable(crc32.Castagnoli)

// Options configure a Spool.
type Options struct {
	// Dir is the spool directory, created when missing. Required.
	Dir string
	// MaxBytes bounds the size of all segment files together, in bytes.
	// Default DefaultMaxBytes (1 GiB).
	MaxBytes int64
	// SegmentBytes is the size at which the writer starts a new segment
	// file, in bytes; it is also the largest frame. At most MaxBytes/2.
	// Default 16 MiB (MaxBytes/4 when that is smaller).
	SegmentBytes int64
	// Log receives corruption and recovery reports. Zero value: discard.
	Log zerolog.Logger
}

func (o *Options) setDefaults() {
	if o.MaxBytes == 0 {
		o.MaxBytes = DefaultMaxBytes
	}
	if o.SegmentBytes == 0 {
		o.SegmentBytes = min(DefaultSegmentBytes, o.MaxBytes/4)
	}
}

// Validate reports the first invalid option, naming it.
func (o *Options) Validate() error {
	c := *o
	c.setDefaults()
	switch {
	case c.Dir == "":
		return errors.New("spool: dir is required")
	case c.MaxBytes < 0:
		return fmt.Errorf("spool: max bytes %d must not be negative", c.MaxBytes)
	case c.SegmentBytes < 64:
		return fmt.Errorf("spool: segment bytes %d: want at least 64", c.SegmentBytes)
	case c.SegmentBytes > c.MaxBytes/2:
		return fmt.Errorf("spool: segment bytes %d: want at most half of max bytes (%d)", c.SegmentBytes, c.MaxBytes)
	}
	return nil
}

// Entry is one record read back.
type Entry struct {
	Seq  uint64
	Data []byte // the caller's: never reused by the spool
}

// Stats describe the spool at one moment.
type Stats struct {
	Bytes    int64  // size of all segment files, in bytes
	Backlog  uint64 // records appended but not acknowledged
	Next     uint64 // sequence number of the next Append
	Acked    uint64 // first sequence number not acknowledged
	Segments int    // segment files
	Corrupt  uint64 // records lost to corrupt frames since Open
}

type segment struct {
	base uint64 // sequence number of its first frame
	path string
	size int64 // bytes visible to the reader (whole frames); final once sealed
}

// Spool is an append-only, bounded, on-disk record log. See the package
// documentation for the format and the concurrency rules.
type Spool struct {
	opts Options
	log  zerolog.Logger

	bytes   atomic.Int64  // all segment files, including the writer's buffer
	corrupt atomic.Uint64 // records skipped as corrupt

	mu struct {
		sync.Mutex
		segs    []*segment // by base; the last is the writer's
		visible uint64     // records with seq < visible are readable
		acked   uint64     // records with seq < acked are done
		closed  bool
	}
	dataCh  chan struct{} // cap 1: records became visible, or closed
	spaceCh chan struct{} // cap 1: segments were deleted

	w struct { // writer goroutine only
		f     *os.File
		buf   *bufio.Writer
		seg   *segment
		size  int64 // bytes of seg, buffered ones included
		next  uint64
		dirty bool // written since the last fsync
		hdr   [headerSize + seqSize]byte
	}
	r struct { // reader goroutine only
		f      *os.File
		seg    *segment
		off    int64
		next   uint64
		cursor *os.File // the cursor file, rewritten in place by Ack
	}
}

// Open opens or creates the spool in o.Dir, recovering what a previous
// process left: the last segment is truncated after its last intact
// frame and reading resumes at the saved cursor.
func Open(o Options) (*Spool, error) {
	if err := o.Validate(); err != nil {
		return nil, err
	}
	o.setDefaults()
	if err := os.MkdirAll(o.Dir, 0o750); err != nil {
		return nil, fmt.Errorf("spool: creating dir: %w", err)
	}
	s := &Spool{
		opts:    o,
		log:     o.Log,
		dataCh:  make(chan struct{}, 1),
		spaceCh: make(chan struct{}, 1),
	}
	cursor, err := readCursor(o.Dir)
	if err != nil {
		s.log.Warn().Err(err).Str("dir", o.Dir).Msg("spool cursor unreadable: replaying the whole spool")
		cursor = 0
	}
	segs, err := listSegments(o.Dir)
	if err != nil {
		return nil, err
	}
	next := max(cursor, 1)
	appendToLast := false
	if len(segs) > 0 {
		last := segs[len(segs)-1]
		n, end, err := s.recoverSegment(last)
		if err != nil {
			return nil, err
		}
		last.size = end
		next = last.base + n
		for _, sg := range segs {
			s.bytes.Add(sg.size)
		}
		appendToLast = true
		if cursor > next {
			// The cursor is ahead of the data (segments removed by hand):
			// numbering goes on after the cursor, in a new segment.
			next, appendToLast = cursor, false
		}
	}
	if cursor < 1 {
		cursor = next
		if len(segs) > 0 {
			cursor = segs[0].base
		}
	}
	if len(segs) > 0 && cursor < segs[0].base {
		cursor = segs[0].base // older records are gone
	}
	s.mu.segs = segs
	s.mu.acked = cursor
	s.mu.visible = next
	s.w.next = next
	s.w.buf = bufio.NewWriterSize(nil, bufSize)
	if appendToLast {
		last := segs[len(segs)-1]
		f, err := os.OpenFile(last.path, os.O_WRONLY, 0)
		if err != nil {
			return nil, fmt.Errorf("spool: opening segment: %w", err)
		}
		if _, err := f.Seek(last.size, 0); err != nil {
			f.Close()
			return nil, fmt.Errorf("spool: opening segment: %w", err)
		}
		s.w.f, s.w.seg, s.w.size = f, last, last.size
		s.w.buf.Reset(f)
	} else if err := s.newSegment(); err != nil {
		return nil, err
	}
	s.gc()
	s.r.next = cursor
	// Save the cursor durably once (write and rename): Ack then only
	// rewrites its 12 bytes in place.
	if err := writeCursor(o.Dir, cursor); err != nil {
		s.w.f.Close()
		return nil, err
	}
	if s.r.cursor, err = os.OpenFile(filepath.Join(o.Dir, cursorName), os.O_WRONLY, 0); err != nil {
		s.w.f.Close()
		return nil, fmt.Errorf("spool: opening cursor: %w", err)
	}
	return s, nil
}

// recoverSegment scans sg, truncates it after its last intact frame and
// returns how many frames it holds and its intact length.
func (s *Spool) recoverSegment(sg *segment) (n uint64, end int64, err error) {
	data, err := os.ReadFile(sg.path)
	if err != nil {
		return 0, 0, fmt.Errorf("spool: reading segment: %w", err)
	}
	for {
		seq, _, size, ferr := ParseFrame(data[end:])
		if ferr != nil || seq != sg.base+n {
			break
		}
		end += int64(size)
		n++
	}
	if end < int64(len(data)) {
		s.log.Warn().Str("segment", sg.path).Int64("offset", end).Int("cut", len(data)-int(end)).
			Msg("spool: truncating a torn or corrupt segment tail")
		if err := os.Truncate(sg.path, end); err != nil {
			return 0, 0, fmt.Errorf("spool: truncating segment: %w", err)
		}
	}
	return n, end, nil
}

func listSegments(dir string) ([]*segment, error) {
	ents, err := os.ReadDir(dir)
	if err != nil {
		return nil, fmt.Errorf("spool: listing dir: %w", err)
	}
	var segs []*segment
	for _, e := range ents {
		name := e.Name()
		if e.IsDir() || !strings.HasSuffix(name, segSuffix) {
			continue
		}
		base, err := strconv.ParseUint(strings.TrimSuffix(name, segSuffix), 10, 64)
		if err != nil {
			continue
		}
		info, err := e.Info()
		if err != nil {
			return nil, fmt.Errorf("spool: stat segment: %w", err)
		}
		segs = append(segs, &segment{base: base, path: filepath.Join(dir, name), size: info.Size()})
	}
	sort.Slice(segs, func(i, j int) bool { return segs[i].base < segs[j].base })
	return segs, nil
}

func segmentName(base uint64) string { return fmt.Sprintf("%020d%s", base, segSuffix) }

// ParseFrame decodes the frame at the start of b: its sequence number,
// its record (aliasing b) and its total size. It returns ErrIncomplete
// when b holds only part of a frame that may be valid, and
// ErrCorrupt for a bad length or checksum.
func ParseFrame(b []byte) (seq uint64, data []byte, size int, err error) {
	if len(b) < headerSize {
		return 0, nil, 0, ErrIncomplete
	}
	n := binary.BigEndian.Uint32(b)
	if n < seqSize || n > MaxFrame {
		return 0, nil, 0, fmt.Errorf("%w: body length %d", ErrCorrupt, n)
	}
	size = headerSize + int(n)
	if len(b) < size {
		return 0, nil, size, ErrIncomplete
	}
	body := b[headerSize:size]
	if crc32.Checksum(body, crcTable) != binary.BigEndian.Uint32(b[4:]) {
		return 0, nil, 0, fmt.Errorf("%w: checksum mismatch", ErrCorrupt)
	}
	return binary.BigEndian.Uint64(body), body[seqSize:], size, nil
}

// Frame errors.
var (
	ErrIncomplete = errors.New("spool: incomplete frame")
	ErrCorrupt    = errors.New("spool: corrupt frame")
)

// AppendFrame appends the frame of record data with sequence number seq
// to dst.
func AppendFrame(dst []byte, seq uint64, data []byte) []byte {
	var h [headerSize + seqSize]byte
	putHeader(&h, seq, data)
	dst = append(dst, h[:]...)
	return append(dst, data...)
}

func putHeader(h *[headerSize + seqSize]byte, seq uint64, data []byte) {
	binary.BigEndian.PutUint32(h[0:], uint32(seqSize+len(data)))
	binary.BigEndian.PutUint64(h[headerSize:], seq)
	crc := crc32.Update(crc32.Checksum(h[headerSize:], crcTable), crcTable, data)
	binary.BigEndian.PutUint32(h[4:], crc)
}

// Append adds a record to the writer's buffer and returns its sequence
// number. The record is neither readable nor durable until Commit. It
// returns ErrFull when the spool has no room for it now and ErrTooLarge
// when it can never fit. Writer goroutine only.
func (s *Spool) Append(data []byte) (uint64, error) {
	if s.w.f == nil {
		return 0, ErrClosed
	}
	frame := int64(headerSize + seqSize + len(data))
	if frame > s.opts.SegmentBytes || len(data) > MaxFrame-seqSize {
		return 0, ErrTooLarge
	}
	if s.bytes.Load()+frame > s.opts.MaxBytes {
		return 0, ErrFull
	}
	if s.w.size > 0 && s.w.size+frame > s.opts.SegmentBytes {
		if err := s.roll(); err != nil {
			return 0, err
		}
	}
	seq := s.w.next
	putHeader(&s.w.hdr, seq, data)
	if _, err := s.w.buf.Write(s.w.hdr[:]); err != nil {
		return 0, fmt.Errorf("spool: writing: %w", err)
	}
	if _, err := s.w.buf.Write(data); err != nil {
		return 0, fmt.Errorf("spool: writing: %w", err)
	}
	s.w.next++
	s.w.size += frame
	s.w.dirty = true
	s.bytes.Add(frame)
	return seq, nil
}

// Commit writes the buffered records to the segment file, syncs it to
// stable storage when sync is set, and makes them readable. Writer
// goroutine only.
func (s *Spool) Commit(sync bool) error {
	if s.w.f == nil {
		return ErrClosed
	}
	if err := s.w.buf.Flush(); err != nil {
		return fmt.Errorf("spool: writing: %w", err)
	}
	if sync && s.w.dirty {
		if err := s.w.f.Sync(); err != nil {
			return fmt.Errorf("spool: syncing: %w", err)
		}
		s.w.dirty = false
	}
	s.publish()
	return nil
}

// Dirty reports whether records were written since the last sync.
// Writer goroutine only.
func (s *Spool) Dirty() bool { return s.w.dirty }

// publish makes everything written so far readable.
func (s *Spool) publish() {
	s.mu.Lock()
	changed := s.mu.visible != s.w.next
	s.w.seg.size = s.w.size
	s.mu.visible = s.w.next
	s.mu.Unlock()
	if changed {
		signal(s.dataCh)
	}
}

// roll seals the writer's segment (written, synced, readable) and starts
// a new one.
func (s *Spool) roll() error {
	if err := s.w.buf.Flush(); err != nil {
		return fmt.Errorf("spool: writing: %w", err)
	}
	if err := s.w.f.Sync(); err != nil {
		return fmt.Errorf("spool: syncing: %w", err)
	}
	s.w.dirty = false
	s.publish()
	if err := s.w.f.Close(); err != nil {
		return fmt.Errorf("spool: closing segment: %w", err)
	}
	s.w.f = nil
	if err := s.newSegment(); err != nil {
		return err
	}
	s.gc()
	return nil
}

// newSegment creates the writer's next segment, starting at w.next.
func (s *Spool) newSegment() error {
	sg := &segment{base: s.w.next, path: filepath.Join(s.opts.Dir, segmentName(s.w.next))}
	f, err := os.OpenFile(sg.path, os.O_WRONLY|os.O_CREATE|os.O_TRUNC, 0o640)
	if err != nil {
		return fmt.Errorf("spool: creating segment: %w", err)
	}
	if err := syncDir(s.opts.Dir); err != nil {
		f.Close()
		return err
	}
	s.mu.Lock()
	s.mu.segs = append(s.mu.segs, sg)
	s.mu.Unlock()
	s.w.f, s.w.seg, s.w.size = f, sg, 0
	s.w.buf.Reset(f)
	return nil
}

// Read returns the next records in order: at least one, at most
// maxRecords, and stopping after the first that reaches maxBytes in
// total. It blocks until a record is readable, done is closed (then it
// returns ErrClosed) or the spool is closed. Reader goroutine only.
func (s *Spool) Read(done <-chan struct{}, maxRecords, maxBytes int) ([]Entry, error) {
	for {
		ents, err := s.readSome(maxRecords, maxBytes)
		if err != nil || len(ents) > 0 {
			return ents, err
		}
		select {
		case <-s.dataCh:
		case <-done:
			return nil, ErrClosed
		}
	}
}

// Poll is Read without waiting: it returns what is readable now, possibly
// nothing. Wait on Ready for more. Reader goroutine only.
func (s *Spool) Poll(maxRecords, maxBytes int) ([]Entry, error) {
	return s.readSome(maxRecords, maxBytes)
}

// Ready is signalled when records became readable (or the spool closed)
// since the last signal; a reader that got nothing from Poll waits on it
// and polls again. A signal may be stale: Poll may then return nothing.
func (s *Spool) Ready() <-chan struct{} { return s.dataCh }

// readSome returns what is readable now (possibly nothing).
func (s *Spool) readSome(maxRecords, maxBytes int) ([]Entry, error) {
	for {
		s.mu.Lock()
		if s.mu.closed {
			s.mu.Unlock()
			return nil, ErrClosed
		}
		visible := s.mu.visible
		segs := s.mu.segs
		// Find the segment holding r.next: the last one whose base is
		// not past it.
		idx := sort.Search(len(segs), func(i int) bool { return segs[i].base > s.r.next }) - 1
		if idx < 0 && len(segs) > 0 {
			// r.next was deleted under us (cannot happen while only the
			// reader acknowledges); resume at the oldest record.
			idx, s.r.next = 0, segs[0].base
		}
		var sg *segment
		var size int64
		var nextBase uint64
		hasNext := false
		if idx >= 0 {
			sg, size = segs[idx], segs[idx].size
			if idx+1 < len(segs) {
				hasNext, nextBase = true, segs[idx+1].base
			}
		}
		s.mu.Unlock()

		if sg == nil || s.r.next >= visible {
			return nil, nil
		}
		if s.r.seg != sg {
			if err := s.openForRead(sg); err != nil {
				return nil, err
			}
		}
		if s.r.off >= size {
			if !hasNext {
				return nil, nil
			}
			if s.r.next < nextBase {
				s.lost(sg, s.r.off, nextBase-s.r.next, "segment ends before its last record")
				s.r.next = nextBase
			}
			continue
		}
		ents, err := s.readFrom(sg, size, maxRecords, maxBytes)
		if err == nil {
			if len(ents) > 0 {
				return ents, nil
			}
			continue
		}
		if !errors.Is(err, ErrCorrupt) {
			return nil, err
		}
		// Skip the rest of a corrupt segment; in the writer's own
		// segment, everything readable now.
		to := visible
		if hasNext {
			to = nextBase
		}
		if to > s.r.next {
			s.lost(sg, s.r.off, to-s.r.next, err.Error())
			s.r.next = to
		}
		s.r.off = size
	}
}

func (s *Spool) lost(sg *segment, off int64, n uint64, why string) {
	s.corrupt.Add(n)
	s.log.Error().Str("segment", sg.path).Int64("offset", off).Uint64("records", n).Str("reason", why).
		Msg("spool: corrupt segment, records lost")
}

func (s *Spool) openForRead(sg *segment) error {
	if s.r.f != nil {
		s.r.f.Close()
		s.r.f = nil
	}
	f, err := os.Open(sg.path)
	if err != nil {
		return fmt.Errorf("spool: opening segment for reading: %w", err)
	}
	s.r.f, s.r.seg, s.r.off = f, sg, 0
	return nil
}

// readFrom parses frames of sg from r.off up to size.
func (s *Spool) readFrom(sg *segment, size int64, maxRecords, maxBytes int) ([]Entry, error) {
	want := min(size-s.r.off, readChunk)
	buf := make([]byte, want)
	if _, err := s.r.f.ReadAt(buf, s.r.off); err != nil {
		return nil, fmt.Errorf("spool: reading segment: %w", err)
	}
	var ents []Entry
	total := 0
	pos := 0
	for pos < len(buf) && len(ents) < maxRecords && total < maxBytes {
		seq, data, n, err := ParseFrame(buf[pos:])
		if errors.Is(err, ErrIncomplete) {
			if pos > 0 {
				break // the rest comes with the next chunk
			}
			// One frame larger than the chunk: read it whole.
			if n == 0 || int64(n) > size-s.r.off {
				return ents, fmt.Errorf("%w: frame passes the end of the segment", ErrCorrupt)
			}
			buf = make([]byte, n)
			if _, err := s.r.f.ReadAt(buf, s.r.off); err != nil {
				return nil, fmt.Errorf("spool: reading segment: %w", err)
			}
			continue
		}
		if err != nil {
			if len(ents) > 0 {
				return ents, nil // hand out the good ones first
			}
			return nil, err
		}
		if seq > s.r.next {
			if len(ents) > 0 {
				return ents, nil
			}
			return nil, fmt.Errorf("%w: sequence %d where %d was due", ErrCorrupt, seq, s.r.next)
		}
		if seq == s.r.next { // lower: before the cursor, already acknowledged
			ents = append(ents, Entry{Seq: seq, Data: data})
			total += len(data)
			s.r.next++
		}
		pos += n
		s.r.off += int64(n)
	}
	return ents, nil
}

// Ack marks every record with a sequence number below next as done:
// segments holding only such records are deleted and the cursor is saved.
// Reader goroutine only.
func (s *Spool) Ack(next uint64) error {
	s.mu.Lock()
	if next <= s.mu.acked {
		s.mu.Unlock()
		return nil
	}
	if next > s.mu.visible {
		next = s.mu.visible
	}
	s.mu.acked = next
	s.mu.Unlock()
	s.gc()
	return s.saveCursor(next)
}

// saveCursor overwrites the cursor file in place, without syncing: one
// write system call per Ack, where replacing the file took five. A crash
// of the process keeps what was written; a crash of the machine may bring
// back an older cursor (records are then sent again, never lost) or, if
// the 12 bytes are torn, an unreadable one (the whole spool is sent
// again). Reader goroutine only.
func (s *Spool) saveCursor(next uint64) error {
	b := cursorBytes(next)
	if _, err := s.r.cursor.WriteAt(b[:], 0); err != nil {
		return fmt.Errorf("spool: writing cursor: %w", err)
	}
	return nil
}

// gc deletes the segments whose records are all acknowledged (never the
// writer's).
func (s *Spool) gc() {
	s.mu.Lock()
	n := 0
	for n+1 < len(s.mu.segs) && s.mu.segs[n+1].base <= s.mu.acked {
		n++
	}
	del := append([]*segment(nil), s.mu.segs[:n]...)
	s.mu.segs = s.mu.segs[n:]
	s.mu.Unlock()
	for _, sg := range del {
		if err := os.Remove(sg.path); err != nil && !errors.Is(err, os.ErrNotExist) {
			s.log.Error().Err(err).Str("segment", sg.path).Msg("spool: removing an acknowledged segment")
		}
		s.bytes.Add(-sg.size)
	}
	if len(del) > 0 {
		signal(s.spaceCh)
	}
}

// Space is signalled when acknowledged segments were deleted: a writer
// that got ErrFull waits on it. Safe from any goroutine.
func (s *Spool) Space() <-chan struct{} { return s.spaceCh }

// Stats returns the spool's counters. Safe from any goroutine.
func (s *Spool) Stats() Stats {
	s.mu.Lock()
	st := Stats{
		Next:     s.mu.visible,
		Acked:    s.mu.acked,
		Segments: len(s.mu.segs),
	}
	s.mu.Unlock()
	st.Backlog = st.Next - min(st.Acked, st.Next)
	st.Bytes = s.bytes.Load()
	st.Corrupt = s.corrupt.Load()
	return st
}

// Close writes and syncs what is buffered, saves the cursor and closes
// the files. Call it once the writer and the reader have stopped.
func (s *Spool) Close() error {
	s.mu.Lock()
	if s.mu.closed {
		s.mu.Unlock()
		return nil
	}
	s.mu.closed = true
	acked := s.mu.acked
	s.mu.Unlock()
	signal(s.dataCh)
	var errs []error
	if s.w.f != nil {
		if err := s.w.buf.Flush(); err != nil {
			errs = append(errs, fmt.Errorf("spool: writing: %w", err))
		}
		if err := s.w.f.Sync(); err != nil {
			errs = append(errs, fmt.Errorf("spool: syncing: %w", err))
		}
		errs = append(errs, s.w.f.Close())
		s.w.f = nil
	}
	if s.r.f != nil {
		s.r.f.Close()
		s.r.f = nil
	}
	if s.r.cursor != nil {
		s.r.cursor.Close()
		s.r.cursor = nil
	}
	errs = append(errs, writeCursor(s.opts.Dir, acked))
	return errors.Join(errs...)
}

func signal(ch chan struct{}) {
	select {
	case ch <- struct{}{}:
	default:
	}
}

func readCursor(dir string) (uint64, error) {
	b, err := os.ReadFile(filepath.Join(dir, cursorName))
	if errors.Is(err, os.ErrNotExist) {
		return 0, nil
	}
	if err != nil {
		return 0, fmt.Errorf("spool: reading cursor: %w", err)
	}
	if len(b) != 12 || crc32.Checksum(b[:8], crcTable) != binary.BigEndian.Uint32(b[8:]) {
		return 0, fmt.Errorf("spool: cursor file: %w", ErrCorrupt)
	}
	return binary.BigEndian.Uint64(b), nil
}

func cursorBytes(next uint64) (b [12]byte) {
	binary.BigEndian.PutUint64(b[:], next)
	binary.BigEndian.PutUint32(b[8:], crc32.Checksum(b[:8], crcTable))
	return b
}

// writeCursor replaces the cursor file durably: write, sync, rename,
// sync the directory.
func writeCursor(dir string, next uint64) error {
	b := cursorBytes(next)
	tmp := filepath.Join(dir, cursorName+".tmp")
	f, err := os.OpenFile(tmp, os.O_WRONLY|os.O_CREATE|os.O_TRUNC, 0o640)
	if err != nil {
		return fmt.Errorf("spool: writing cursor: %w", err)
	}
	_, err = f.Write(b[:])
	if err == nil {
		err = f.Sync()
	}
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	if err == nil {
		err = os.Rename(tmp, filepath.Join(dir, cursorName))
	}
	if err == nil {
		err = syncDir(dir)
	}
	if err != nil {
		return fmt.Errorf("spool: writing cursor: %w", err)
	}
	return nil
}

func syncDir(dir string) error {
	d, err := os.Open(dir)
	if err != nil {
		return fmt.Errorf("spool: syncing dir: %w", err)
	}
	defer d.Close()
	if err := d.Sync(); err != nil {
		return fmt.Errorf("spool: syncing dir: %w", err)
	}
	return nil
}
