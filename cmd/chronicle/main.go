// Command chronicle runs and operates a Chronicle homeserver.
package main

import (
	"fmt"
	"log/slog"
	"os"
	"strings"
)

// commands maps each subcommand to its entry point.
var commands = map[string]func(args []string) error{
	"serve":   serve,
	"cluster": clusterCmd,
	"backup":  backupCmd,
	"restore": restoreCmd,
	// Auditing (audit_cmd.go, log_cmd.go, at_cmd.go).
	"verify":  verifyCmd,
	"rebuild": rebuildCmd,
	"log":     logCmd,
	"at":      atCmd,
	"trail":   trailCmd,
}

func main() {
	if len(os.Args) < 2 {
		usage()
		os.Exit(2)
	}
	name := os.Args[1]
	if name == "help" || name == "-h" || name == "--help" {
		usage()
		return
	}
	run, ok := commands[name]
	if !ok {
		fmt.Fprintf(os.Stderr, "chronicle: unknown command %q\n", name)
		usage()
		os.Exit(2)
	}
	if err := run(os.Args[2:]); err != nil {
		fmt.Fprintln(os.Stderr, "chronicle:", err)
		os.Exit(1)
	}
}

func usage() {
	fmt.Fprintln(os.Stderr, `usage: chronicle <command> [flags]

commands:
  serve     run a homeserver node (single node on 127.0.0.1:8008 with data in ./data by default)
  cluster   status|join|remove|transfer|snapshot --node URL: see and change a cluster
  backup    --node URL --out DIR: an online, consistent backup
  restore   --from DIR --data DIR: prepare a data directory from a backup

auditing (offline with --data DIR on a stopped node, online with --node URL):
  verify    check the hash chain and every projection against a replay of the log
  log       head|show|tail|export: the log head to publish, records as a table or JSON lines
  at        POSITION|TIME room ROOM_ID state|members|timeline, or user USER_ID rooms|devices|...
  trail     user USER_ID | room ROOM_ID: everything one user did, or that touched a room
  rebuild   --data DIR [--projection NAME]: rebuild projections in place (server stopped)`)
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
