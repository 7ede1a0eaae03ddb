package log

import (
	"errors"
	"fmt"
	"sync"

	"github.com/cockroachdb/pebble/v2"
	"github.com/vmihailenco/msgpack/v5"
)

// Log appends records and tracks the head. See the package doc for which
// goroutine may call what.
type Log struct {
	pending   Position // head including appends whose batch is not committed
	committed Position // head of the last committed batch, not yet published

	mu        sync.Mutex
	published Position
	wake      chan struct{} // closed and replaced on every Publish
}

// Open loads the head from r (a DB or snapshot).
func Open(r pebble.Reader) (*Log, error) {
	head, err := ReadHead(r)
	if err != nil {
		return nil, err
	}
	return &Log{pending: head, committed: head, published: head, wake: make(chan struct{})}, nil
}

// ReadHead reads the committed head from r; an empty log has seq 0.
func ReadHead(r pebble.Reader) (Position, error) {
	var p Position
	v, closer, err := r.Get(headKey)
	if errors.Is(err, pebble.ErrNotFound) {
		return p, nil
	}
	if err != nil {
		return p, fmt.Errorf("read log head: %w", err)
	}
	defer closer.Close()
	if err := msgpack.Unmarshal(v, &p); err != nil {
		return p, fmt.Errorf("decode log head: %w", err)
	}
	return p, nil
}

// Append assigns rec its Seq and PrevHash, writes it into b and advances the
// pending head. The caller calls Committed after committing b (then Publish
// to wake readers), or Abort if b is dropped.
func (l *Log) Append(b *pebble.Batch, rec *Record) (Position, error) {
	rec.Seq = l.pending.Seq + 1
	rec.PrevHash = l.pending.Hash
	enc, err := rec.Encode()
	if err != nil {
		return Position{}, err
	}
	head := Position{Seq: rec.Seq, Hash: hashBytes(enc)}
	// The stored value is the encoding followed by its own hash, so a
	// verifier can name the exact record a flipped byte landed in.
	if err := b.Set(recordKey(rec.Seq), append(enc, head.Hash[:]...), nil); err != nil {
		return Position{}, fmt.Errorf("append record %d: %w", rec.Seq, err)
	}
	hb, err := msgpack.Marshal(&head)
	if err != nil {
		return Position{}, fmt.Errorf("encode head: %w", err)
	}
	if err := b.Set(headKey, hb, nil); err != nil {
		return Position{}, fmt.Errorf("write head: %w", err)
	}
	l.pending = head
	return head, nil
}

// Pending is the head including uncommitted appends (apply goroutine only).
func (l *Log) Pending() Position { return l.pending }

// Committed records that the batch holding the pending appends has
// committed. It does not wake waiters: the FSM commits once per command but
// publishes once per Raft batch, so long-polls wake once per batch.
func (l *Log) Committed() { l.committed = l.pending }

// Abort drops appends whose batch will not be committed.
func (l *Log) Abort() { l.pending = l.committed }

// Publish makes the committed head visible and wakes every waiter.
func (l *Log) Publish() {
	l.mu.Lock()
	defer l.mu.Unlock()
	if l.published == l.committed {
		return
	}
	l.published = l.committed
	close(l.wake)
	l.wake = make(chan struct{})
}

// Reset reloads the head from r after the store was replaced (snapshot
// restore) and wakes waiters so they re-read.
func (l *Log) Reset(r pebble.Reader) error {
	head, err := ReadHead(r)
	if err != nil {
		return err
	}
	l.mu.Lock()
	l.pending, l.committed, l.published = head, head, head
	close(l.wake)
	l.wake = make(chan struct{})
	l.mu.Unlock()
	return nil
}

// Head is the last committed position.
func (l *Log) Head() Position {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.published
}

// Changed returns the current head and a channel closed at the next Publish.
// Waiters select on it together with their own deadline, so a long-poll
// costs one parked goroutine and no polling.
func (l *Log) Changed() (Position, <-chan struct{}) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.published, l.wake
}
