package main

import (
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"
)

const secretEnv = "CHRONICLE_CLUSTER_SECRET"

// clusterSecret resolves the secret: config or flag, then the environment,
// then <data>/cluster-secret, else a new one written there and printed
// once (to stderr, never into the log files or the record log).
func clusterSecret(cfg *Config) ([]byte, error) {
	if cfg.ClusterSecret != "" {
		return []byte(cfg.ClusterSecret), nil
	}
	if s := os.Getenv(secretEnv); s != "" {
		return []byte(s), nil
	}
	path := filepath.Join(cfg.Data, "cluster-secret")
	b, err := os.ReadFile(path)
	if err == nil {
		return []byte(strings.TrimSpace(string(b))), nil
	}
	if !errors.Is(err, os.ErrNotExist) {
		return nil, fmt.Errorf("read cluster secret: %w", err)
	}
	raw := make([]byte, 32)
	if _, err := rand.Read(raw); err != nil {
		return nil, fmt.Errorf("generate cluster secret: %w", err)
	}
	secret := hex.EncodeToString(raw)
	if err := os.WriteFile(path, []byte(secret+"\n"), 0o600); err != nil {
		return nil, fmt.Errorf("write cluster secret: %w", err)
	}
	fmt.Fprintf(os.Stderr, "\nGenerated the cluster secret (stored in %s; shown only now):\n\n    %s\n\n"+
		"Give it to other nodes with --cluster-secret or $%s, and to operators as their bearer token.\n\n", path, secret, secretEnv)
	return []byte(secret), nil
}
