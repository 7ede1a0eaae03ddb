package main

import (
	"bytes"
	_ "embed"
	"fmt"
	"os"
	"strings"
	"time"

	"go.yaml.in/yaml/v3"

	"chronicle/api"
)

//go:embed default.yaml
var defaultConfig []byte

// Config is the server configuration (YAML).
type Config struct {
	ServerName        string    `yaml:"server_name"`
	Listen            string    `yaml:"listen"`
	PublicBaseURL     string    `yaml:"public_base_url"`
	Data              string    `yaml:"data"`
	NodeID            string    `yaml:"node_id"`
	RaftAddr          string    `yaml:"raft_addr"`
	RaftAdvertise     string    `yaml:"raft_advertise"`
	Join              []string  `yaml:"join"`
	ClusterSecret     string    `yaml:"cluster_secret"`
	Admins            []string  `yaml:"admins"`
	TLS               TLSConfig `yaml:"tls"`
	SnapshotThreshold uint64    `yaml:"snapshot_threshold"`
	CheckpointEvery   uint64    `yaml:"checkpoint_every"`
	LogLevel          string    `yaml:"log_level"`
	TURN              TURN      `yaml:"turn"`
}

// TURN names the TURN servers /voip/turnServer hands credentials for.
type TURN struct {
	URIs         []string `yaml:"uris"`
	SharedSecret string   `yaml:"shared_secret"`
	// UserLifetime is how long credentials stay valid ("1h").
	UserLifetime string `yaml:"user_lifetime"`
}

// TLSConfig names the files for node-to-node TLS.
type TLSConfig struct {
	CAFile   string `yaml:"ca_file"`
	CertFile string `yaml:"cert_file"`
	KeyFile  string `yaml:"key_file"`
}

// loadConfig reads the embedded default, then the file at path (if any).
func loadConfig(path string) (*Config, error) {
	var cfg Config
	if err := yaml.Unmarshal(defaultConfig, &cfg); err != nil {
		return nil, fmt.Errorf("embedded default config: %w", err)
	}
	if path == "" {
		return &cfg, nil
	}
	b, err := os.ReadFile(path)
	if err != nil {
		return nil, fmt.Errorf("read config: %w", err)
	}
	dec := yaml.NewDecoder(bytes.NewReader(b))
	dec.KnownFields(true)
	if err := dec.Decode(&cfg); err != nil {
		return nil, fmt.Errorf("parse config %s: %w", path, err)
	}
	return &cfg, nil
}

// apiConfig checks the TURN settings and converts them for the API.
func (t TURN) apiConfig() (api.TURNConfig, error) {
	out := api.TURNConfig{URIs: t.URIs, SharedSecret: t.SharedSecret}
	if t.UserLifetime != "" {
		d, err := time.ParseDuration(t.UserLifetime)
		if err != nil || d <= 0 {
			return out, fmt.Errorf("turn.user_lifetime %q is not a positive duration", t.UserLifetime)
		}
		out.UserLifetime = d
	}
	for _, u := range t.URIs {
		if !strings.HasPrefix(u, "turn:") && !strings.HasPrefix(u, "turns:") {
			return out, fmt.Errorf("turn.uris: %q is not a turn: or turns: URI", u)
		}
	}
	return out, nil
}
