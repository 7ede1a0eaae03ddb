package main

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"strings"
	"time"

	"chronicle/raft"
)

// joinCluster asks the members at urls (any of them; followers pass it to
// the leader) to add this node, retrying until one accepts or ctx ends.
func joinCluster(ctx context.Context, urls []string, secret []byte, req *raft.JoinRequest, logger *slog.Logger) error {
	body, err := json.Marshal(req)
	if err != nil {
		return err
	}
	client := &http.Client{Timeout: 30 * time.Second}
	for attempt := 0; ; attempt++ {
		for _, u := range urls {
			err := postJoin(ctx, client, strings.TrimRight(u, "/"), secret, body)
			if err == nil {
				logger.Info("joined cluster", "via", u, "node_id", req.NodeID)
				return nil
			}
			logger.Warn("join failed, retrying", "via", u, "err", err)
		}
		select {
		case <-ctx.Done():
			return fmt.Errorf("join cluster: %w", ctx.Err())
		case <-time.After(min(time.Duration(attempt+1)*500*time.Millisecond, 5*time.Second)):
		}
	}
}

func postJoin(ctx context.Context, client *http.Client, base string, secret, body []byte) error {
	hreq, err := http.NewRequestWithContext(ctx, http.MethodPost, base+"/_chronicle/v1/cluster/nodes", bytes.NewReader(body))
	if err != nil {
		return err
	}
	hreq.Header.Set("Authorization", "Bearer "+string(secret))
	hreq.Header.Set("Content-Type", "application/json")
	resp, err := client.Do(hreq)
	if err != nil {
		return err
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		msg, _ := io.ReadAll(io.LimitReader(resp.Body, 4096))
		return fmt.Errorf("%s: %s", resp.Status, bytes.TrimSpace(msg))
	}
	return nil
}
