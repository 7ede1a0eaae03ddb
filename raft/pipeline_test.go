package raft

import (
	"bufio"
	"context"
	"errors"
	"net"
	"sync"
	"testing"
	"time"
)

// oneAtATime answers each request in turn, echoing its command bytes'
// length as the index, the way a node running the older forwarding server
// does; after `limit` answers it closes the connection.
func oneAtATime(t *testing.T, conn net.Conn, limit int) {
	t.Helper()
	defer conn.Close()
	r, w := bufio.NewReader(conn), bufio.NewWriter(conn)
	for i := 0; i < limit; i++ {
		var req forwardRequest
		if err := readFrame(r, &req); err != nil {
			return
		}
		time.Sleep(time.Duration(i%3) * time.Millisecond)
		if err := writeFrame(w, &forwardResponse{Code: codeOK, Index: uint64(len(req.Command))}); err != nil {
			return
		}
	}
}

func TestPipelineMatchesAnswersInOrder(t *testing.T) {
	client, server := net.Pipe()
	go oneAtATime(t, server, 1<<30)
	p := newPipeline(client)
	defer p.fail(errors.New("test over"))
	var wg sync.WaitGroup
	for i := 1; i <= 64; i++ {
		wg.Go(func() {
			resp, sent, err := p.submit(context.Background(), &forwardRequest{Op: opSubmit, Command: make([]byte, i)})
			if err != nil || !sent {
				t.Errorf("request %d: sent=%v err=%v", i, sent, err)
				return
			}
			if resp.Index != uint64(i) {
				t.Errorf("request %d got the answer to request %d", i, resp.Index)
			}
		})
	}
	wg.Wait()
}

func TestPipelineFailsWaitingRequestsWhenTheLeaderGoes(t *testing.T) {
	client, server := net.Pipe()
	go oneAtATime(t, server, 3)
	p := newPipeline(client)
	var wg sync.WaitGroup
	var mu sync.Mutex
	answered, failed := 0, 0
	for i := 1; i <= 10; i++ {
		wg.Go(func() {
			_, sent, err := p.submit(context.Background(), &forwardRequest{Op: opSubmit, Command: make([]byte, i)})
			mu.Lock()
			defer mu.Unlock()
			if err == nil {
				answered++
				return
			}
			failed++
			if sent && !p.broken() {
				t.Errorf("request %d failed as sent on a live pipeline: %v", i, err)
			}
		})
	}
	wg.Wait()
	if answered != 3 || failed != 7 {
		t.Fatalf("answered %d, failed %d; want 3 and 7", answered, failed)
	}
	if _, sent, err := p.submit(context.Background(), &forwardRequest{Op: opSubmit}); err == nil || sent {
		t.Fatalf("submit on a broken pipeline: sent=%v err=%v; want an error before sending", sent, err)
	}
}

func TestPipelineCallerGivesUp(t *testing.T) {
	client, server := net.Pipe()
	defer server.Close()
	// The server reads the request but never answers.
	go func() {
		var req forwardRequest
		_ = readFrame(bufio.NewReader(server), &req)
	}()
	p := newPipeline(client)
	defer p.fail(errors.New("test over"))
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Millisecond)
	defer cancel()
	_, sent, err := p.submit(ctx, &forwardRequest{Op: opSubmit})
	if !errors.Is(err, context.DeadlineExceeded) || !sent {
		t.Fatalf("sent=%v err=%v; want an indeterminate deadline error", sent, err)
	}
}

// A caller that gives up closes the pipeline only when the leader has owed
// an answer for silentLeader, not because the pipeline sat idle before.
func TestPipelineIdleThenCallerGivesUp(t *testing.T) {
	defer func(d time.Duration) { silentLeader = d }(silentLeader)
	silentLeader = 200 * time.Millisecond
	// TCP rather than net.Pipe: writes must not wait for the reader.
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	client, err := net.Dial("tcp", ln.Addr().String())
	if err != nil {
		t.Fatal(err)
	}
	server, err := ln.Accept()
	if err != nil {
		t.Fatal(err)
	}
	go func() { // answers each request 50 ms after reading it
		defer server.Close()
		r, w := bufio.NewReader(server), bufio.NewWriter(server)
		for {
			var req forwardRequest
			if err := readFrame(r, &req); err != nil {
				return
			}
			time.Sleep(50 * time.Millisecond)
			if err := writeFrame(w, &forwardResponse{Code: codeOK, Index: uint64(len(req.Command))}); err != nil {
				return
			}
		}
	}()
	p := newPipeline(client)
	defer p.fail(errors.New("test over"))
	time.Sleep(300 * time.Millisecond) // idle for longer than silentLeader
	done := make(chan error, 1)
	go func() {
		_, _, err := p.submit(context.Background(), &forwardRequest{Op: opSubmit, Command: []byte("a")})
		done <- err
	}()
	time.Sleep(5 * time.Millisecond)
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Millisecond)
	defer cancel()
	if _, _, err := p.submit(ctx, &forwardRequest{Op: opSubmit, Command: []byte("b")}); !errors.Is(err, context.DeadlineExceeded) {
		t.Fatalf("short deadline: %v", err)
	}
	if err := <-done; err != nil {
		t.Fatalf("a request to a leader that answers failed because another caller gave up: %v", err)
	}
	if p.broken() {
		t.Fatalf("pipeline closed though the leader answers")
	}
}
