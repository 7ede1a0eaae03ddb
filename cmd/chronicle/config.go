package main

import (
	"bytes"
	_ "embed"
	"fmt"
	"os"

	"go.yaml.in/yaml/v3"
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
