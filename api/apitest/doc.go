// Package apitest starts real Chronicle servers for tests: a Raft node on
// Pebble in a temp dir and the HTTP API on 127.0.0.1:0. Nothing is mocked.
package apitest
