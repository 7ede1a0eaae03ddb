package raft

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"net"
	"sync"
	"sync/atomic"
	"time"
)

// A pipeline carries a follower's forwarded submits to one leader over one
// connection. Requests are written back to back, whoever writes first
// flushing everything queued behind it, and the leader handles them
// concurrently but answers in the order they arrived (serveForwardConn),
// so responses are matched first in, first out. Under load, many forwards
// then share each write and read instead of costing two system calls and a
// pooled connection each; on a 3-node cluster under the load benchmark the
// one-request-per-connection calls cost about as much CPU as a node's HTTP
// handling. A leader running the older one-at-a-time server answers in
// order too, so mixed versions still work.
//
// Only submits travel here: they are short. Cluster operations (joins,
// transfers) can take seconds and would hold up every answer behind them,
// so they keep their own connections (forwarder.call).
type pipeline struct {
	conn net.Conn
	w    *bufio.Writer

	mu        sync.Mutex
	waiting   []*pendingForward // sent or queued, unanswered, in order
	unwritten []*pendingForward // queued, not yet handed to the socket
	writing   bool              // a caller is flushing unwritten
	err       error             // set once the connection failed

	// lastRead is when the leader last answered, or when an answer was
	// first owed after none was (Unix nanoseconds).
	lastRead atomic.Int64
}

type pendingForward struct {
	frame []byte
	done  chan struct{}
	resp  *forwardResponse
	err   error
	// written: handed to the socket, so the leader may have it.
	written bool
}

// silentLeader is how long a pipeline with requests outstanding may hear
// nothing before a caller that gives up closes it, so that a leader that
// vanished without closing the connection does not hold later forwards.
var silentLeader = 10 * time.Second // a variable for tests

func newPipeline(conn net.Conn) *pipeline {
	p := &pipeline{conn: conn, w: bufio.NewWriter(conn)}
	p.lastRead.Store(time.Now().UnixNano())
	go p.readLoop(bufio.NewReader(conn))
	return p
}

// broken reports whether the connection has failed.
func (p *pipeline) broken() bool {
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.err != nil
}

// submit sends one request and waits for its answer. sent reports whether
// the request may have reached the leader (after which a failure is
// indeterminate).
func (p *pipeline) submit(ctx context.Context, req *forwardRequest) (resp *forwardResponse, sent bool, err error) {
	frame, err := encodeFrame(req)
	if err != nil {
		return nil, false, err
	}
	f := &pendingForward{frame: frame, done: make(chan struct{})}
	p.mu.Lock()
	if p.err != nil {
		err := p.err
		p.mu.Unlock()
		return nil, false, err
	}
	if len(p.waiting) == 0 {
		// Silence is counted from when an answer was first owed.
		p.lastRead.Store(time.Now().UnixNano())
	}
	p.waiting = append(p.waiting, f)
	p.unwritten = append(p.unwritten, f)
	flush := !p.writing
	p.writing = true
	p.mu.Unlock()
	if flush {
		p.flush()
	}
	select {
	case <-f.done:
		return f.resp, f.written, f.err
	case <-ctx.Done():
		if time.Since(time.Unix(0, p.lastRead.Load())) > silentLeader {
			p.fail(errors.New("leader silent"))
		}
		// Its answer, if one comes, is read and dropped.
		return nil, true, ctx.Err()
	}
}

// flush writes queued requests until none are left; one caller at a time
// runs it, so frames reach the socket in the order they were queued.
func (p *pipeline) flush() {
	for {
		p.mu.Lock()
		batch := p.unwritten
		p.unwritten = nil
		if len(batch) == 0 || p.err != nil {
			p.writing = false
			p.mu.Unlock()
			return
		}
		for _, f := range batch {
			f.written = true
		}
		p.mu.Unlock()
		// A leader that stops reading fails the write rather than hold
		// this caller (and everyone queued behind it) past silentLeader.
		p.conn.SetWriteDeadline(time.Now().Add(silentLeader))
		var err error
		for _, f := range batch {
			if _, err = p.w.Write(f.frame); err != nil {
				break
			}
		}
		if err == nil {
			err = p.w.Flush()
		}
		if err != nil {
			p.mu.Lock()
			p.writing = false
			p.mu.Unlock()
			p.fail(fmt.Errorf("send to leader: %w", err))
			return
		}
	}
}

func (p *pipeline) readLoop(r *bufio.Reader) {
	for {
		resp := &forwardResponse{}
		if err := readFrame(r, resp); err != nil {
			p.fail(fmt.Errorf("read from leader: %w", err))
			return
		}
		p.lastRead.Store(time.Now().UnixNano())
		p.mu.Lock()
		if len(p.waiting) == 0 || !p.waiting[0].written {
			p.mu.Unlock()
			p.fail(errors.New("answer from leader to no request"))
			return
		}
		f := p.waiting[0]
		p.waiting[0] = nil
		p.waiting = p.waiting[1:]
		p.mu.Unlock()
		f.resp = resp
		close(f.done)
	}
}

// fail closes the connection and fails every request still waiting.
func (p *pipeline) fail(err error) {
	p.mu.Lock()
	if p.err != nil {
		p.mu.Unlock()
		return
	}
	p.err = err
	waiting := p.waiting
	p.waiting, p.unwritten = nil, nil
	p.mu.Unlock()
	p.conn.Close()
	for _, f := range waiting {
		f.err = err
		close(f.done)
	}
}

// pipelineTo returns the live pipeline to addr, dialling one if needed.
func (f *forwarder) pipelineTo(addr string) (*pipeline, error) {
	f.mu.Lock()
	p := f.pipes[addr]
	f.mu.Unlock()
	if p != nil && !p.broken() {
		return p, nil
	}
	conn, err := f.stream.dial(addr, 5*time.Second, purposeForward)
	if err != nil {
		return nil, err
	}
	np := newPipeline(conn)
	f.mu.Lock()
	defer f.mu.Unlock()
	if f.closed {
		np.fail(errors.New("node shutting down"))
		return nil, errors.New("node shutting down")
	}
	if cur := f.pipes[addr]; cur != nil && cur != p && !cur.broken() {
		// Another caller dialled at the same time; keep theirs.
		np.fail(errors.New("duplicate pipeline"))
		return cur, nil
	}
	f.pipes[addr] = np
	return np, nil
}

// submit forwards one submit to the leader at addr through its pipeline.
func (f *forwarder) submit(ctx context.Context, addr string, req *forwardRequest) (*forwardResponse, bool, error) {
	p, err := f.pipelineTo(addr)
	if err != nil {
		return nil, false, fmt.Errorf("dial leader %s: %w", addr, err)
	}
	resp, sent, err := p.submit(ctx, req)
	if err != nil {
		return nil, sent, fmt.Errorf("forward to leader %s: %w", addr, err)
	}
	return resp, true, nil
}
