// Command chronicle runs and operates a Chronicle homeserver.
package main

import (
	"bytes"
	"context"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"net"
	"os"
	"os/signal"
	"strings"
	"syscall"
	"time"

	"chronicle/api"
	"chronicle/raft"
)

func bytesReader(b []byte) io.Reader { return bytes.NewReader(b) }

func main() {
	if len(os.Args) < 2 {
		usage()
		os.Exit(2)
	}
	var err error
	switch os.Args[1] {
	case "serve":
		err = serve(os.Args[2:])
	case "help", "-h", "--help":
		usage()
		return
	default:
		fmt.Fprintf(os.Stderr, "chronicle: unknown command %q\n", os.Args[1])
		usage()
		os.Exit(2)
	}
	if err != nil {
		fmt.Fprintln(os.Stderr, "chronicle:", err)
		os.Exit(1)
	}
}

func usage() {
	fmt.Fprintln(os.Stderr, `usage: chronicle <command> [flags]

commands:
  serve   run a homeserver (single node on 127.0.0.1:8008 with data in ./data by default)`)
}

func serve(args []string) error {
	fs := flag.NewFlagSet("serve", flag.ContinueOnError)
	configPath := fs.String("config", "", "YAML config file (overrides the embedded default)")
	data := fs.String("data", "", "data directory")
	listen := fs.String("listen", "", "client API listen address")
	serverName := fs.String("server-name", "", "the homeserver's name (the part after : in user IDs)")
	raftAddr := fs.String("raft-addr", "", "Raft listen address")
	nodeID := fs.String("node-id", "", "this node's Raft ID")
	if err := fs.Parse(args); err != nil {
		return err
	}
	cfg, err := loadConfig(*configPath)
	if err != nil {
		return err
	}
	for flagVal, field := range map[*string]*string{data: &cfg.Data, listen: &cfg.Listen, serverName: &cfg.ServerName, raftAddr: &cfg.RaftAddr, nodeID: &cfg.NodeID} {
		if *flagVal != "" {
			*field = *flagVal
		}
	}
	if cfg.PublicBaseURL == "" {
		cfg.PublicBaseURL = "http://" + cfg.Listen
	}
	logger := newLogger(cfg.LogLevel)

	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	node, err := raft.Open(raft.Config{NodeID: cfg.NodeID, DataDir: cfg.Data, RaftAddr: cfg.RaftAddr, ServerName: cfg.ServerName, Logger: logger})
	if err != nil {
		return err
	}
	defer node.Close()
	waitCtx, cancel := context.WithTimeout(ctx, 30*time.Second)
	err = node.WaitLeader(waitCtx)
	cancel()
	if err != nil {
		return err
	}
	l, err := net.Listen("tcp", cfg.Listen)
	if err != nil {
		return fmt.Errorf("listen on %s: %w", cfg.Listen, err)
	}
	srv := api.New(api.Config{ServerName: cfg.ServerName, PublicBaseURL: cfg.PublicBaseURL, Logger: logger}, node, node.Machine())
	logger.Info("chronicle serving", "listen", l.Addr().String(), "server_name", cfg.ServerName, "data", cfg.Data)
	errc := make(chan error, 1)
	go func() { errc <- srv.Serve(l) }()
	select {
	case err := <-errc:
		return err
	case <-ctx.Done():
	}
	logger.Info("shutting down")
	shutCtx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	return srv.Shutdown(shutCtx)
}

func newLogger(level string) *slog.Logger {
	var lv slog.Level
	switch strings.ToLower(level) {
	case "debug":
		lv = slog.LevelDebug
	case "warn":
		lv = slog.LevelWarn
	case "error":
		lv = slog.LevelError
	default:
		lv = slog.LevelInfo
	}
	return slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: lv}))
}
