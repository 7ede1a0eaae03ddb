package main

import (
	_ "embed"
	"fmt"
	"os"

	"go.yaml.in/yaml/v3"
)

//go:embed default.yaml
var defaultConfig []byte

// Config is the server configuration (YAML).
type Config struct {
	ServerName    string `yaml:"server_name"`
	Listen        string `yaml:"listen"`
	PublicBaseURL string `yaml:"public_base_url"`
	Data          string `yaml:"data"`
	NodeID        string `yaml:"node_id"`
	RaftAddr      string `yaml:"raft_addr"`
	LogLevel      string `yaml:"log_level"`
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
	dec := yaml.NewDecoder(bytesReader(b))
	dec.KnownFields(true)
	if err := dec.Decode(&cfg); err != nil {
		return nil, fmt.Errorf("parse config %s: %w", path, err)
	}
	return &cfg, nil
}
