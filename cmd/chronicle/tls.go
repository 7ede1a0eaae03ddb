package main

import (
	"crypto/tls"
	"errors"

	"chronicle/raft"
)

// loadTLS reads the config's node-to-node TLS files, if any.
func loadTLS(c TLSConfig) (server, client *tls.Config, err error) {
	if c.CAFile == "" && c.CertFile == "" && c.KeyFile == "" {
		return nil, nil, nil
	}
	if c.CAFile == "" || c.CertFile == "" || c.KeyFile == "" {
		return nil, nil, errors.New("tls needs ca_file, cert_file and key_file together")
	}
	return raft.LoadTLS(c.CAFile, c.CertFile, c.KeyFile)
}
