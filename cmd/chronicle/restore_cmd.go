package main

import (
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strings"

	"chronicle/raft/machine"
)

const restoreUsage = "chronicle restore --from BACKUPDIR --data DATADIR"

// restoreCmd is `chronicle restore`.
func restoreCmd(args []string) error {
	return runRestore(args, os.Stdout)
}

// runRestore prepares a new data directory from a backup: it verifies the
// manifest and every file it lists, loads the state store, verifies the
// record log's hash chain and that its head is the manifest's, and says how
// to start the result as a new cluster.
func runRestore(args []string, out io.Writer) error {
	fs := newFlagSet("restore", restoreUsage+`

Prepares DATADIR (missing or empty) from a backup taken with chronicle backup.
The restored data starts a NEW single-node cluster (chronicle serve --data
DATADIR); further nodes then join it with --join.`, out)
	from := fs.String("from", "", "backup directory (holding manifest.json)")
	data := fs.String("data", "", "data directory to create (must be missing or empty)")
	pos, err := parseArgs(fs, args)
	if err != nil {
		return helpOK(err)
	}
	if len(pos) > 0 {
		fs.Usage()
		return fmt.Errorf("restore: unexpected argument %q", pos[0])
	}
	if *from == "" || *data == "" {
		fs.Usage()
		return errors.New("restore: --from and --data are required")
	}
	m, err := readManifest(*from)
	if err != nil {
		return fmt.Errorf("restore: %w", err)
	}
	if err := verifyBackupFiles(*from, m); err != nil {
		return fmt.Errorf("restore: %w", err)
	}
	created, err := prepareEmptyDir(*data)
	if err != nil {
		return fmt.Errorf("restore: data directory %w", err)
	}
	stateDir := filepath.Join(*data, "state")
	records, err := restoreState(filepath.Join(*from, stateFileName), stateDir, m)
	if err != nil {
		os.RemoveAll(stateDir)
		if created {
			os.Remove(*data)
		}
		return fmt.Errorf("restore: %w", err)
	}

	fmt.Fprintf(out, "restored %s into %s\n", *from, stateDir)
	fmt.Fprintf(out, "  log position %d, head %s: matches the manifest; hash chain verified over %d records\n", m.LogPosition, m.LogHash, records)
	fmt.Fprintf(out, "  backup taken %s from %s\n\n", m.CreatedAt.Format("2006-01-02 15:04:05 MST"), m.Node)
	serveCmd := "chronicle serve --data " + *data
	if m.ServerName != "" {
		serveCmd += " --server-name " + m.ServerName
	}
	fmt.Fprintf(out, `Start it as a new single-node cluster:

    %s

It holds every account, room and message of the backup, under a new Raft log.
  - The server name must stay the backup's (%s).
  - Give it the cluster secret with --cluster-secret or $%s;
    without one, serve generates a new one in %s.
  - Then add nodes by starting them on fresh data directories with
    --join <this node's URL>. Never start the old cluster's data
    directories against it.
`, serveCmd, orDash(m.ServerName), secretEnv, filepath.Join(*data, "cluster-secret"))
	return nil
}

// readManifest reads and checks dir/manifest.json.
func readManifest(dir string) (*backupManifest, error) {
	path := filepath.Join(dir, manifestName)
	b, err := os.ReadFile(path)
	if errors.Is(err, os.ErrNotExist) {
		return nil, fmt.Errorf("%s has no %s: not a Chronicle backup, or an unfinished one", dir, manifestName)
	}
	if err != nil {
		return nil, err
	}
	var m backupManifest
	if err := json.Unmarshal(b, &m); err != nil {
		return nil, fmt.Errorf("%s: %w", path, err)
	}
	if m.Format != backupFormat {
		return nil, fmt.Errorf("%s: format %q, this chronicle reads %q", path, m.Format, backupFormat)
	}
	if h, err := hex.DecodeString(m.LogHash); err != nil || len(h) != sha256.Size {
		return nil, fmt.Errorf("%s: log_hash %q is not a SHA-256", path, m.LogHash)
	}
	seen := map[string]bool{}
	for _, f := range m.Files {
		// Names are plain file names inside the backup: nothing may point
		// outside it.
		if f.Name == "" || f.Name != filepath.Base(f.Name) || !filepath.IsLocal(f.Name) || strings.ContainsAny(f.Name, `/\`) {
			return nil, fmt.Errorf("%s: bad file name %q", path, f.Name)
		}
		if seen[f.Name] {
			return nil, fmt.Errorf("%s: %s is listed twice", path, f.Name)
		}
		seen[f.Name] = true
		if h, err := hex.DecodeString(f.SHA256); err != nil || len(h) != sha256.Size {
			return nil, fmt.Errorf("%s: %s has no valid sha256", path, f.Name)
		}
		if f.Size < 0 {
			return nil, fmt.Errorf("%s: %s has a negative size", path, f.Name)
		}
	}
	if !seen[stateFileName] {
		return nil, fmt.Errorf("%s lists no %s", path, stateFileName)
	}
	return &m, nil
}

// verifyBackupFiles checks the size and SHA-256 of every file the
// manifest lists.
func verifyBackupFiles(dir string, m *backupManifest) error {
	for _, mf := range m.Files {
		path := filepath.Join(dir, mf.Name)
		f, err := os.Open(path)
		if errors.Is(err, os.ErrNotExist) {
			return fmt.Errorf("%s, listed in the manifest, is missing", path)
		}
		if err != nil {
			return err
		}
		h := sha256.New()
		n, err := io.Copy(h, f)
		f.Close()
		if err != nil {
			return fmt.Errorf("read %s: %w", path, err)
		}
		if n != mf.Size {
			return fmt.Errorf("%s is %d bytes, the manifest says %d: the backup is truncated or damaged", path, n, mf.Size)
		}
		if sum := hex.EncodeToString(h.Sum(nil)); !strings.EqualFold(sum, mf.SHA256) {
			return fmt.Errorf("%s has SHA-256 %s, the manifest says %s: the backup is corrupt", path, sum, mf.SHA256)
		}
	}
	return nil
}

// restoreState loads the state snapshot into stateDir and checks that the
// verified log head is the manifest's. It returns the number of records.
func restoreState(snapPath, stateDir string, m *backupManifest) (uint64, error) {
	f, err := os.Open(snapPath)
	if err != nil {
		return 0, err
	}
	defer f.Close()
	head, err := machine.RestoreBackup(stateDir, f)
	if err != nil {
		return 0, err
	}
	if head.Seq != m.LogPosition || !strings.EqualFold(head.Hash.String(), m.LogHash) {
		return 0, fmt.Errorf("the restored log ends at %d (%s), the manifest says %d (%s)", head.Seq, head.Hash, m.LogPosition, m.LogHash)
	}
	return head.Seq, nil
}
