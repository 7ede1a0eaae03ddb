package main

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"os"
	"path/filepath"
	"strconv"
	"time"

	"chronicle/api"
)

const (
	// backupFormat names the layout of a backup directory: manifest.json
	// and the files it lists.
	backupFormat = "chronicle-backup-1"
	manifestName = "manifest.json"
	// stateFileName holds the state store in machine.WriteSnapshot's format.
	stateFileName = "state.snap"
)

// backupManifest is a backup directory's manifest.json.
type backupManifest struct {
	Format    string    `json:"format"`
	CreatedAt time.Time `json:"created_at"`
	// Node is the URL the backup was taken from; NodeID its Raft ID.
	Node       string `json:"node"`
	NodeID     string `json:"node_id,omitempty"`
	ServerName string `json:"server_name,omitempty"`
	// LogPosition and LogHash are the record log's head in the backup.
	LogPosition uint64         `json:"log_position"`
	LogHash     string         `json:"log_hash"`
	Files       []manifestFile `json:"files"`
}

type manifestFile struct {
	Name   string `json:"name"`
	Size   int64  `json:"size"`
	SHA256 string `json:"sha256"`
}

const backupUsage = "chronicle backup --out DIR [--node URL] [--secret S | --data DIR] [--timeout D]"

// backupCmd is `chronicle backup`.
func backupCmd(args []string) error {
	return runBackup(context.Background(), args, os.Stdout)
}

// runBackup takes an online backup of a running node into a new directory:
// the state store as of one log position (state.snap) and manifest.json.
func runBackup(ctx context.Context, args []string, out io.Writer) error {
	fs := newFlagSet("backup", backupUsage+`

Takes an online, consistent backup of a running node: the whole state store
(record log and projections) as of one log position, while the node keeps
serving. Writes DIR/state.snap and DIR/manifest.json; DIR must be missing
or empty. Restore it with: chronicle restore --from DIR --data NEWDATA`, out)
	var o operatorFlags
	o.register(fs)
	dir := fs.String("out", "", "directory to write the backup to (must be missing or empty)")
	pos, err := parseArgs(fs, args)
	if err != nil {
		return helpOK(err)
	}
	if len(pos) > 0 {
		fs.Usage()
		return fmt.Errorf("backup: unexpected argument %q", pos[0])
	}
	if *dir == "" {
		fs.Usage()
		return errors.New("backup: --out DIR is required")
	}
	c, err := o.client()
	if err != nil {
		return err
	}
	created, err := prepareEmptyDir(*dir)
	if err != nil {
		return fmt.Errorf("backup: %w", err)
	}
	m, err := downloadBackup(ctx, c, *dir)
	if err != nil {
		for _, name := range []string{stateFileName + ".partial", stateFileName, manifestName + ".partial", manifestName} {
			os.Remove(filepath.Join(*dir, name))
		}
		if created {
			os.Remove(*dir)
		}
		return fmt.Errorf("backup: %w", err)
	}
	f := m.Files[0]
	fmt.Fprintf(out, "backup of %s at log position %d (head %s)\n", m.Node, m.LogPosition, m.LogHash)
	fmt.Fprintf(out, "  %s  %d bytes  sha256 %s\n", filepath.Join(*dir, f.Name), f.Size, f.SHA256)
	fmt.Fprintf(out, "  %s\n", filepath.Join(*dir, manifestName))
	fmt.Fprintf(out, "restore with: chronicle restore --from %s --data NEWDATA\n", *dir)
	return nil
}

// prepareEmptyDir creates dir, or accepts it if it exists and is empty;
// created says whether it was made here.
func prepareEmptyDir(dir string) (created bool, err error) {
	entries, err := os.ReadDir(dir)
	switch {
	case errors.Is(err, os.ErrNotExist):
		if err := os.MkdirAll(dir, 0o700); err != nil {
			return false, err
		}
		return true, nil
	case err != nil:
		return false, err
	case len(entries) > 0:
		return false, fmt.Errorf("%s is not empty: refusing to overwrite it", dir)
	}
	return false, nil
}

// downloadBackup streams GET /_chronicle/v1/backup into dir/state.snap,
// hashing it on the way, checks it against the node's checksum trailer,
// and writes the manifest.
func downloadBackup(ctx context.Context, c *opClient, dir string) (*backupManifest, error) {
	// --timeout bounds the wait for the node's answer, not the download,
	// which takes as long as the state store is large.
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	var timer *time.Timer
	if c.timeout > 0 {
		timer = time.AfterFunc(c.timeout, cancel)
	}
	resp, err := c.request(ctx, http.MethodGet, "/backup", nil)
	if timer != nil && !timer.Stop() && err != nil {
		return nil, fmt.Errorf("no answer from %s within %s: %w", c.base, c.timeout, err)
	}
	if err != nil {
		return nil, err
	}
	defer resp.Body.Close()
	m := &backupManifest{
		Format: backupFormat, CreatedAt: time.Now().UTC().Truncate(time.Second), Node: c.base,
		NodeID: resp.Header.Get(api.HeaderNodeID), ServerName: resp.Header.Get(api.HeaderServerName),
		LogHash: resp.Header.Get(api.HeaderLogHash),
	}
	if m.LogPosition, err = strconv.ParseUint(resp.Header.Get(api.HeaderLogPosition), 10, 64); err != nil {
		return nil, fmt.Errorf("the node sent no valid %s header: is it a Chronicle node?", api.HeaderLogPosition)
	}
	if b, err := hex.DecodeString(m.LogHash); err != nil || len(b) != sha256.Size {
		return nil, fmt.Errorf("the node sent no valid %s header", api.HeaderLogHash)
	}

	partial := filepath.Join(dir, stateFileName+".partial")
	f, err := os.OpenFile(partial, os.O_WRONLY|os.O_CREATE|os.O_EXCL, 0o600)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	h := sha256.New()
	size, err := io.Copy(io.MultiWriter(f, h), resp.Body)
	if err != nil {
		return nil, fmt.Errorf("download interrupted after %d bytes: %w", size, err)
	}
	sum := hex.EncodeToString(h.Sum(nil))
	switch want := resp.Trailer.Get(api.TrailerBackupSHA256); {
	case want == "":
		return nil, fmt.Errorf("the node did not finish the backup stream (%d bytes, no checksum trailer): the backup is incomplete", size)
	case want != sum:
		return nil, fmt.Errorf("the download's SHA-256 %s differs from the node's %s: the backup is corrupt", sum, want)
	}
	if err := f.Sync(); err != nil {
		return nil, err
	}
	if err := f.Close(); err != nil {
		return nil, err
	}
	if err := os.Rename(partial, filepath.Join(dir, stateFileName)); err != nil {
		return nil, err
	}
	m.Files = []manifestFile{{Name: stateFileName, Size: size, SHA256: sum}}
	if err := writeManifest(dir, m); err != nil {
		return nil, err
	}
	return m, nil
}

// writeManifest writes manifest.json last and atomically, so a directory
// with a manifest holds a finished backup.
func writeManifest(dir string, m *backupManifest) error {
	b, err := json.MarshalIndent(m, "", "  ")
	if err != nil {
		return err
	}
	tmp := filepath.Join(dir, manifestName+".partial")
	if err := writeFileSync(tmp, append(b, '\n')); err != nil {
		return err
	}
	if err := os.Rename(tmp, filepath.Join(dir, manifestName)); err != nil {
		return err
	}
	return syncDir(dir)
}

func writeFileSync(path string, data []byte) error {
	f, err := os.OpenFile(path, os.O_WRONLY|os.O_CREATE|os.O_TRUNC, 0o600)
	if err != nil {
		return err
	}
	if _, err := f.Write(data); err != nil {
		f.Close()
		return err
	}
	if err := f.Sync(); err != nil {
		f.Close()
		return err
	}
	return f.Close()
}

func syncDir(dir string) error {
	d, err := os.Open(dir)
	if err != nil {
		return err
	}
	defer d.Close()
	return d.Sync()
}
