package apitest

import (
	"context"
	"io"
	"log/slog"
	"net"
	"testing"
	"time"

	"chronicle/api"
	"chronicle/raft"
)

// ServerName is the homeserver name test servers use.
const ServerName = "localhost"

// Server is one running homeserver.
type Server struct {
	t    testing.TB
	Dir  string
	URL  string
	Node *raft.Node
	API  *api.Server
	done chan error
}

// Start runs a single-node server on dir (t.TempDir() if empty). It is
// stopped at the end of the test unless stopped before.
func Start(t testing.TB, dir string) *Server {
	t.Helper()
	if dir == "" {
		dir = t.TempDir()
	}
	s := &Server{t: t, Dir: dir}
	s.start()
	t.Cleanup(func() { s.Stop() })
	return s
}

func (s *Server) start() {
	s.t.Helper()
	logger := slog.New(slog.NewTextHandler(io.Discard, nil))
	if testing.Verbose() {
		logger = slog.Default()
	}
	node, err := raft.Open(raft.Config{NodeID: "n1", DataDir: s.Dir, RaftAddr: "127.0.0.1:0", ServerName: ServerName, Logger: logger, Fast: true})
	if err != nil {
		s.t.Fatalf("open node: %v", err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	if err := node.WaitLeader(ctx); err != nil {
		node.Close()
		s.t.Fatalf("wait for leader: %v", err)
	}
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		node.Close()
		s.t.Fatalf("listen: %v", err)
	}
	s.URL = "http://" + l.Addr().String()
	s.Node = node
	s.API = api.New(api.Config{ServerName: ServerName, PublicBaseURL: s.URL, Logger: logger}, node, node.Machine())
	s.done = make(chan error, 1)
	go func() { s.done <- s.API.Serve(l) }()
}

// Stop shuts the server down (idempotent).
func (s *Server) Stop() {
	if s.Node == nil {
		return
	}
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	_ = s.API.Shutdown(ctx)
	<-s.done
	if err := s.Node.Close(); err != nil {
		s.t.Errorf("close node: %v", err)
	}
	s.Node = nil
}

// Restart stops the server and starts it again on the same data directory
// (on a new port; URL changes).
func (s *Server) Restart() {
	s.t.Helper()
	s.Stop()
	s.start()
}
