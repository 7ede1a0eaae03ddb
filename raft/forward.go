package raft

import (
	"bufio"
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"net"
	"sync"
	"time"

	"github.com/vmihailenco/msgpack/v5"

	"chronicle/raft/machine"
)

// Forwarding carries a follower's write to the leader over the
// authenticated node-to-node listener as length-prefixed msgpack frames:
// submits pipelined on one connection per leader (pipeline.go), other
// operations one request and one response on pooled connections.

const (
	opSubmit    = "submit"
	opJoin      = "join"
	opRemove    = "remove"
	opTransfer  = "transfer"
	opReadIndex = "read_index"

	maxFrame = 64 << 20
)

// Response codes: whether the follower may retry safely.
const (
	codeOK = iota
	// codeNotLeader: the command was not proposed; retry elsewhere.
	codeNotLeader
	// codeIndeterminate: it may or may not have been applied.
	codeIndeterminate
	// codeFailed: refused for another reason (bad request, config error).
	codeFailed
)

type forwardRequest struct {
	Op      string       `msgpack:"o"`
	Command []byte       `msgpack:"c,omitempty"`
	Join    *JoinRequest `msgpack:"j,omitempty"`
	NodeID  string       `msgpack:"n,omitempty"`
}

type forwardResponse struct {
	Code   int             `msgpack:"c"`
	Index  uint64          `msgpack:"i"`
	Result *machine.Result `msgpack:"r"`
	Err    string          `msgpack:"e"`
}

// encodeFrame is v as one frame: a uvarint length, then msgpack.
func encodeFrame(v any) ([]byte, error) {
	b, err := msgpack.Marshal(v)
	if err != nil {
		return nil, err
	}
	frame := binary.AppendUvarint(make([]byte, 0, len(b)+binary.MaxVarintLen64), uint64(len(b)))
	return append(frame, b...), nil
}

func writeFrame(w *bufio.Writer, v any) error {
	frame, err := encodeFrame(v)
	if err != nil {
		return err
	}
	if _, err := w.Write(frame); err != nil {
		return err
	}
	return w.Flush()
}

func readFrame(r *bufio.Reader, v any) error {
	n, err := binary.ReadUvarint(r)
	if err != nil {
		return err
	}
	if n > maxFrame {
		return fmt.Errorf("forward frame of %d bytes", n)
	}
	buf := make([]byte, n)
	if _, err := io.ReadFull(r, buf); err != nil {
		return err
	}
	return msgpack.Unmarshal(buf, v)
}

// serveForwards answers forwarded requests until the listener closes.
func (n *Node) serveForwards() {
	for {
		conn, err := n.stream.acceptForward()
		if err != nil {
			return
		}
		go n.serveForwardConn(conn)
	}
}

func (n *Node) serveForwardConn(conn net.Conn) {
	n.connMu.Lock()
	select {
	case <-n.stop:
		n.connMu.Unlock()
		conn.Close()
		return
	default:
	}
	n.conns[conn] = struct{}{}
	n.connMu.Unlock()
	defer func() {
		n.connMu.Lock()
		delete(n.conns, conn)
		n.connMu.Unlock()
		conn.Close()
	}()
	// Requests are handled concurrently (a follower pipelines its
	// submits, pipeline.go) and answered in the order they arrived; at
	// most maxInFlight wait on one connection.
	const maxInFlight = 1024
	answers := make(chan chan *forwardResponse, maxInFlight)
	written := make(chan struct{})
	go func() {
		defer close(written)
		n.writeAnswers(conn, answers)
	}()
	defer func() {
		close(answers)
		<-written
	}()
	r := bufio.NewReader(conn)
	for {
		req := &forwardRequest{}
		if err := readFrame(r, req); err != nil {
			return
		}
		answer := make(chan *forwardResponse, 1)
		answers <- answer
		go func() { answer <- n.handleForward(req) }()
	}
}

// writeAnswers writes each answer in turn, flushing whenever the next one
// is not ready yet, so answers that complete together share a write.
func (n *Node) writeAnswers(conn net.Conn, answers <-chan chan *forwardResponse) {
	w := bufio.NewWriter(conn)
	failed := false
	for answer := range answers {
		var resp *forwardResponse
		select {
		case resp = <-answer:
		default:
			if !failed && w.Flush() != nil {
				failed = true
				conn.Close()
			}
			resp = <-answer
		}
		if failed {
			continue // drain: the reader stops on the closed connection
		}
		frame, err := encodeFrame(resp)
		if err == nil {
			_, err = w.Write(frame)
		}
		if err == nil && len(answers) == 0 {
			err = w.Flush()
		}
		if err != nil {
			failed = true
			conn.Close()
		}
	}
	if !failed {
		w.Flush()
	}
}

func (n *Node) handleForward(req *forwardRequest) *forwardResponse {
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	switch req.Op {
	case opSubmit:
		// Decoded only to refuse what the state machine could not read;
		// the follower's bytes are what is proposed.
		cmd, err := machine.DecodeCommand(req.Command)
		if err != nil {
			return &forwardResponse{Code: codeFailed, Err: err.Error()}
		}
		res, index, err := n.applyLocal(ctx, cmd.Type, req.Command)
		return responseFor(res, index, err)
	case opJoin:
		if req.Join == nil {
			return &forwardResponse{Code: codeFailed, Err: "join request missing"}
		}
		return responseFor(nil, 0, n.joinLocal(ctx, req.Join))
	case opRemove:
		return responseFor(nil, 0, n.removeLocal(ctx, req.NodeID))
	case opTransfer:
		return responseFor(nil, 0, n.transferLocal(req.NodeID))
	case opReadIndex:
		if !n.IsLeader() {
			return &forwardResponse{Code: codeNotLeader, Err: "not the leader"}
		}
		return &forwardResponse{Code: codeOK, Index: n.raft.CommitIndex()}
	}
	return &forwardResponse{Code: codeFailed, Err: "unknown forward op " + req.Op}
}

func responseFor(res *machine.Result, index uint64, err error) *forwardResponse {
	var rej *machine.Rejection
	switch {
	case err == nil || errors.As(err, &rej):
		return &forwardResponse{Code: codeOK, Index: index, Result: res}
	case errors.Is(err, ErrNotLeader):
		return &forwardResponse{Code: codeNotLeader, Err: err.Error()}
	case errors.Is(err, ErrIndeterminate):
		return &forwardResponse{Code: codeIndeterminate, Err: err.Error()}
	}
	return &forwardResponse{Code: codeFailed, Err: err.Error()}
}

// forwarder keeps a pipeline (submits) and idle connections (other
// operations) to peers.
type forwarder struct {
	stream *streamLayer
	mu     sync.Mutex
	idle   map[string][]net.Conn
	pipes  map[string]*pipeline
	closed bool // closeAll ran: no new pipelines
}

const maxIdlePerPeer = 32

func (f *forwarder) get(addr string) (net.Conn, error) {
	f.mu.Lock()
	if list := f.idle[addr]; len(list) > 0 {
		c := list[len(list)-1]
		f.idle[addr] = list[:len(list)-1]
		f.mu.Unlock()
		return c, nil
	}
	f.mu.Unlock()
	return f.stream.dial(addr, 5*time.Second, purposeForward)
}

func (f *forwarder) put(addr string, c net.Conn) {
	f.mu.Lock()
	defer f.mu.Unlock()
	if len(f.idle[addr]) >= maxIdlePerPeer {
		c.Close()
		return
	}
	f.idle[addr] = append(f.idle[addr], c)
}

func (f *forwarder) closeAll() {
	f.mu.Lock()
	defer f.mu.Unlock()
	for addr, list := range f.idle {
		for _, c := range list {
			c.Close()
		}
		delete(f.idle, addr)
	}
	f.closed = true
	for addr, p := range f.pipes {
		p.fail(errors.New("node shutting down"))
		delete(f.pipes, addr)
	}
}

// call sends one request to addr. sent reports whether the request may
// have reached the peer (after which a failure is indeterminate).
func (f *forwarder) call(ctx context.Context, addr string, req *forwardRequest) (resp *forwardResponse, sent bool, err error) {
	conn, err := f.get(addr)
	if err != nil {
		return nil, false, fmt.Errorf("dial leader %s: %w", addr, err)
	}
	deadline := time.Now().Add(30 * time.Second)
	if dl, ok := ctx.Deadline(); ok && dl.Before(deadline) {
		deadline = dl
	}
	conn.SetDeadline(deadline)
	// A caller that gives up (the client went away) unblocks the read.
	stop := context.AfterFunc(ctx, func() { conn.SetDeadline(time.Now()) })
	defer stop()
	w, r := bufio.NewWriter(conn), bufio.NewReader(conn)
	if err := writeFrame(w, req); err != nil {
		conn.Close()
		// A pooled connection the peer closed fails here before the
		// request was read: nothing reached the leader.
		return nil, false, fmt.Errorf("send to leader %s: %w", addr, err)
	}
	resp = &forwardResponse{}
	if err := readFrame(r, resp); err != nil {
		conn.Close()
		return nil, true, fmt.Errorf("read from leader %s: %w", addr, err)
	}
	conn.SetDeadline(time.Time{})
	f.put(addr, conn)
	return resp, true, nil
}
