// Package spool is the Kafka bridge's bounded on-disk queue: an
// append-only log of opaque records, split into segment files, read back
// in the order they were written and deleted segment by segment once the
// reader has acknowledged them.
//
// # Format
//
// A spool directory holds segment files named after the sequence number of
// their first record (`00000000000000000042.seg`) and a `cursor` file.
// A segment is a run of frames:
//
//	offset  size  field
//	0       4     body length n, big endian (8 <= n <= MaxFrame)
//	4       4     CRC-32C (Castagnoli) of the body
//	8       8     sequence number, big endian (the body starts here)
//	16      n-8   the record, as given to Append
//
// Sequence numbers increase by one from frame to frame and across
// segments. The cursor file holds the first sequence number not yet
// acknowledged (8 bytes, big endian) and its CRC-32C (4 bytes). Open and
// Close replace it durably (write, sync, rename); Ack overwrites its 12
// bytes in place without a sync, so after a machine crash it may be older
// than the last Ack (records are sent again, never lost).
//
// # Recovery
//
// Open scans the last segment and truncates it after its last intact
// frame: a torn write from a crash (or a corrupt tail) is cut off. Frames
// the writer had committed with Commit(true) are whole and survive. A
// corrupt frame inside an older segment is found by the reader, logged,
// counted (Stats.Corrupt) and the rest of that segment is skipped.
//
// # Bounds
//
// MaxBytes bounds the bytes of all segment files together. Append returns
// ErrFull when one more frame would pass it; the writer waits on Space
// for the reader's acknowledgements to free whole segments. A record whose
// frame is larger than SegmentBytes is refused with ErrTooLarge.
//
// # Concurrency
//
// One writer goroutine calls Append and Commit; one reader goroutine calls
// Read and Ack; Stats and Space are safe from any goroutine; Close is
// called once both have stopped. The writer and the reader share only the
// segment list, the visible end of the log and the counters, under mu (a
// leaf lock: nothing else is locked and no I/O is done while holding it).
package spool
