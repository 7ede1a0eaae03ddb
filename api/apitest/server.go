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

// Secret is the cluster secret of every test server.
const Secret = "test-cluster-secret"

// Server is one running homeserver node.
type Server struct {
	t        testing.TB
	ID       string
	Dir      string
	URL      string
	RaftAddr string // fixed across restarts once chosen
	Node     *raft.Node
	API      *api.Server
	listener net.Listener
	done     chan error
	join     bool
	// CheckpointEvery is the node's checkpoint interval (0: none); set it
	// through StartCheckpointing.
	CheckpointEvery uint64
}

// Start runs a single-node server on dir (t.TempDir() if empty). It is
// stopped at the end of the test unless stopped before.
func Start(t testing.TB, dir string) *Server {
	t.Helper()
	if dir == "" {
		dir = t.TempDir()
	}
	s := &Server{t: t, ID: "n1", Dir: dir, RaftAddr: "127.0.0.1:0"}
	s.start()
	if err := waitLeader(s.Node, 10*time.Second); err != nil {
		t.Fatalf("wait for leader: %v", err)
	}
	t.Cleanup(func() { s.Stop() })
	return s
}

func testLogger() *slog.Logger {
	if testing.Verbose() {
		return slog.Default()
	}
	return slog.New(slog.NewTextHandler(io.Discard, nil))
}

func waitLeader(n *raft.Node, d time.Duration) error {
	ctx, cancel := context.WithTimeout(context.Background(), d)
	defer cancel()
	return n.WaitLeader(ctx)
}

// start opens the node and the HTTP API. The client listener is opened
// first so the node can announce its URL; a restart reuses the same
// addresses, as a real node would.
func (s *Server) start() {
	s.t.Helper()
	logger := testLogger()
	addr := "127.0.0.1:0"
	if s.URL != "" {
		addr = s.URL[len("http://"):]
	}
	var l net.Listener
	var err error
	for i := 0; i < 50; i++ { // the old socket may linger briefly after a stop
		if l, err = net.Listen("tcp", addr); err == nil {
			break
		}
		time.Sleep(20 * time.Millisecond)
	}
	if err != nil {
		s.t.Fatalf("listen: %v", err)
	}
	s.listener = l
	s.URL = "http://" + l.Addr().String()
	node, err := raft.Open(raft.Config{
		NodeID: s.ID, DataDir: s.Dir, RaftAddr: s.RaftAddr, URL: s.URL, ServerName: ServerName,
		ClusterSecret: []byte(Secret), Join: s.join, Logger: logger, Fast: true, SnapshotThreshold: 1024,
		CheckpointEvery: s.CheckpointEvery,
	})
	if err != nil {
		l.Close()
		s.t.Fatalf("open node %s: %v", s.ID, err)
	}
	s.RaftAddr = node.RaftAddr()
	s.Node = node
	s.API = api.New(api.Config{
		ServerName: ServerName, PublicBaseURL: s.URL, Logger: logger,
		Cluster: node, ClusterSecret: []byte(Secret), Metrics: node.Metrics().Registry,
	}, node, node.Machine())
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
		s.t.Errorf("close node %s: %v", s.ID, err)
	}
	s.Node = nil
}

// Restart stops the server and starts it again on the same data directory
// and the same addresses.
func (s *Server) Restart() {
	s.t.Helper()
	s.Stop()
	s.start()
}

// Running reports whether the node is up.
func (s *Server) Running() bool { return s.Node != nil }
