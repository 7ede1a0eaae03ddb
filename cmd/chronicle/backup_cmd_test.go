package main

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"io"
	"log"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/cockroachdb/pebble/v2"

	"chronicle/api"
	"chronicle/api/apitest"
	rlog "chronicle/log"
	"chronicle/raft"
	"chronicle/raft/machine"
)

// opBackup runs `chronicle backup` in-process against node into dir.
func opBackup(t testing.TB, node, dir string) (*backupManifest, string) {
	t.Helper()
	var out bytes.Buffer
	if err := runBackup(context.Background(), []string{"--node", node, "--secret", apitest.Secret, "--out", dir}, &out); err != nil {
		t.Fatalf("backup: %v\n%s", err, out.String())
	}
	return opReadManifest(t, dir), out.String()
}

func opReadManifest(t testing.TB, dir string) *backupManifest {
	t.Helper()
	b, err := os.ReadFile(filepath.Join(dir, manifestName))
	if err != nil {
		t.Fatal(err)
	}
	var m backupManifest
	if err := json.Unmarshal(b, &m); err != nil {
		t.Fatalf("manifest: %v", err)
	}
	return &m
}

func opWriteManifest(t testing.TB, dir string, m *backupManifest) {
	t.Helper()
	b, err := json.MarshalIndent(m, "", "  ")
	if err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(dir, manifestName), b, 0o600); err != nil {
		t.Fatal(err)
	}
}

// roomLog is what the test wrote into one room.
type roomLog struct {
	id, owner string
	bodies    []string
}

// TestBackupWhileWritingAndRestore backs up a node while a writer keeps
// sending messages and registering users, restores the backup into a new
// data directory, starts a server on it and checks that everything up to
// the backup's log position is there - as one consistent cut - and that
// the restored node, a new single-node cluster, takes new writes.
func TestBackupWhileWritingAndRestore(t *testing.T) {
	t.Setenv(secretEnv, "")
	srv := apitest.Start(t, "")

	// Accounts, a shared room, a private room each, messages.
	users := []string{"alice", "bob", "carol", "dave"}
	tokens := map[string]string{}
	for _, u := range users {
		tokens[u] = opRegister(t, srv.URL, u)
	}
	general := &roomLog{id: opCreateRoom(t, srv.URL, tokens["alice"], true), owner: "alice"}
	rooms := []*roomLog{general}
	for _, u := range users[1:] {
		opJoin(t, srv.URL, tokens[u], general.id)
	}
	for i := range 5 {
		for _, u := range users {
			text := fmt.Sprintf("%s in general #%d", u, i)
			opSend(t, srv.URL, tokens[u], general.id, fmt.Sprintf("g-%s-%d", u, i), text)
			general.bodies = append(general.bodies, text)
		}
	}
	for _, u := range users {
		r := &roomLog{id: opCreateRoom(t, srv.URL, tokens[u], false), owner: u}
		for i := range 3 {
			text := fmt.Sprintf("%s alone #%d", u, i)
			opSend(t, srv.URL, tokens[u], r.id, fmt.Sprintf("p-%d", i), text)
			r.bodies = append(r.bodies, text)
		}
		rooms = append(rooms, r)
	}

	// A writer that keeps going during the backup: numbered messages into
	// one room and, every fifth, a new account.
	writerTok := opRegister(t, srv.URL, "writer")
	busy := opCreateRoom(t, srv.URL, writerTok, false)
	var sent, lateUsers atomic.Int64
	stop := make(chan struct{})
	var wg sync.WaitGroup
	var writeErr error
	var writeFailed atomic.Bool
	wg.Add(1)
	go func() {
		defer wg.Done()
		for i := int64(1); i <= 800; i++ {
			select {
			case <-stop:
				return
			default:
			}
			if err := opSendErr(srv.URL, writerTok, busy, fmt.Sprintf("w-%d", i), fmt.Sprintf("w-%d", i)); err != nil {
				writeErr = err
				writeFailed.Store(true)
				return
			}
			sent.Store(i)
			if i%5 == 0 {
				if _, err := opRegisterErr(srv.URL, fmt.Sprintf("late%d", i/5)); err != nil {
					writeErr = err
					writeFailed.Store(true)
					return
				}
				lateUsers.Store(i / 5)
			}
		}
	}()
	for sent.Load() < 20 {
		time.Sleep(5 * time.Millisecond)
	}
	// The backup's download is held up once the node has answered (it has
	// taken its snapshot then) until the writer got 30 more writes in, so
	// they land while the backup is in flight - and must not be in it.
	sentBefore, lateBefore := sent.Load(), lateUsers.Load()
	var sentAtAnswer int64
	backupDir := filepath.Join(t.TempDir(), "backup")
	o := operatorFlags{node: srv.URL, secret: apitest.Secret}
	c, err := o.client()
	if err != nil {
		t.Fatal(err)
	}
	c.http.Transport = roundTripFunc(func(req *http.Request) (*http.Response, error) {
		resp, err := http.DefaultTransport.RoundTrip(req)
		sentAtAnswer = sent.Load()
		for err == nil && sent.Load() < sentAtAnswer+30 && !writeFailed.Load() {
			time.Sleep(2 * time.Millisecond)
		}
		return resp, err
	})
	if _, err := prepareEmptyDir(backupDir); err != nil {
		t.Fatal(err)
	}
	if _, err := downloadBackup(context.Background(), c, backupDir); err != nil {
		t.Fatalf("backup: %v", err)
	}
	m := opReadManifest(t, backupDir)
	sentAfter := sent.Load()
	close(stop)
	wg.Wait()
	if writeErr != nil {
		t.Fatalf("writer: %v", writeErr)
	}
	t.Logf("backup at log position %d; writer had sent %d when it began, %d when the node answered, %d when it ended, %d in all",
		m.LogPosition, sentBefore, sentAtAnswer, sentAfter, sent.Load())
	if sentAfter < sentAtAnswer+30 {
		t.Fatalf("the writer did not write during the backup")
	}

	// The manifest describes the file and the log position.
	if m.Format != backupFormat || m.Node != srv.URL || m.NodeID != "n1" || m.ServerName != apitest.ServerName {
		t.Errorf("manifest header: %+v", m)
	}
	if m.LogPosition == 0 || len(m.LogHash) != 64 || time.Since(m.CreatedAt) > time.Minute {
		t.Errorf("manifest position: %+v", m)
	}
	if len(m.Files) != 1 || m.Files[0].Name != stateFileName {
		t.Fatalf("manifest files: %+v", m.Files)
	}
	snapBytes, err := os.ReadFile(filepath.Join(backupDir, stateFileName))
	if err != nil {
		t.Fatal(err)
	}
	if sum := sha256.Sum256(snapBytes); int64(len(snapBytes)) != m.Files[0].Size || hex.EncodeToString(sum[:]) != m.Files[0].SHA256 {
		t.Errorf("manifest says %d bytes %s; file has %d bytes %x", m.Files[0].Size, m.Files[0].SHA256, len(snapBytes), sum)
	}
	if entries, _ := os.ReadDir(backupDir); len(entries) != 2 {
		t.Errorf("backup dir holds %d entries, want state.snap and manifest.json", len(entries))
	}
	// The source kept going past the backup.
	if head := srv.Node.Machine().Log().Head(); head.Seq <= m.LogPosition {
		t.Errorf("source head %d, backup at %d: no writes after the backup?", head.Seq, m.LogPosition)
	}
	srv.Stop()

	// Restore into a new data directory.
	dataDir := filepath.Join(t.TempDir(), "restored")
	var rout bytes.Buffer
	if err := runRestore([]string{"--from", backupDir, "--data", dataDir}, &rout); err != nil {
		t.Fatalf("restore: %v\n%s", err, rout.String())
	}
	t.Logf("restore said:\n%s", rout.String())
	for _, want := range []string{"chronicle serve --data " + dataDir + " --server-name " + apitest.ServerName, "--join", fmt.Sprintf("log position %d", m.LogPosition)} {
		if !strings.Contains(rout.String(), want) {
			t.Errorf("restore output lacks %q", want)
		}
	}
	// Before anything runs on it: the head is the manifest's and the
	// applied index starts over.
	mach, err := machine.Open(filepath.Join(dataDir, "state"), machine.Config{ServerName: apitest.ServerName, Logger: slog.New(slog.DiscardHandler)})
	if err != nil {
		t.Fatal(err)
	}
	if head := mach.Log().Head(); head.Seq != m.LogPosition || head.Hash.String() != m.LogHash {
		t.Errorf("restored head %d/%s, manifest %d/%s", head.Seq, head.Hash, m.LogPosition, m.LogHash)
	}
	if mach.AppliedIndex() != 0 {
		t.Errorf("restored applied index %d, want 0", mach.AppliedIndex())
	}
	if err := mach.Close(); err != nil {
		t.Fatal(err)
	}

	// Start a server on it: a new single-node cluster.
	rs := apitest.Start(t, dataDir)
	var st bytes.Buffer
	if err := runCluster(context.Background(), []string{"status", "--json", "--node", rs.URL, "--secret", apitest.Secret}, &st); err != nil {
		t.Fatalf("status of the restored node: %v", err)
	}
	var status raft.Status
	if err := json.Unmarshal(st.Bytes(), &status); err != nil {
		t.Fatal(err)
	}
	if status.Role != "leader" || len(status.Nodes) != 1 || status.Nodes[0].ID != "n1" {
		t.Errorf("restored node's cluster: %s", st.String())
	}

	// Every account logs in; every room holds all its messages.
	newTokens := map[string]string{}
	for _, u := range append(slices.Clone(users), "writer") {
		newTokens[u] = opLogin(t, rs.URL, u)
	}
	for _, r := range rooms {
		if got := opMessages(t, rs.URL, newTokens[r.owner], r.id); !slices.Equal(got, r.bodies) {
			t.Errorf("room %s after restore:\n got %q\nwant %q", r.id, got, r.bodies)
		}
	}
	// The busy room is one consistent cut: w-1..w-k with nothing missing,
	// everything acknowledged before the backup began, nothing after.
	got := opMessages(t, rs.URL, newTokens["writer"], busy)
	for i, body := range got {
		if body != fmt.Sprintf("w-%d", i+1) {
			t.Fatalf("busy room message %d is %q: not a prefix of what was sent (%q...)", i, body, got[:min(len(got), i+3)])
		}
	}
	// At most one write was in flight when the node took its snapshot.
	if k := int64(len(got)); k < sentBefore || k > sentAtAnswer+1 {
		t.Errorf("busy room holds w-1..w-%d; %d were acknowledged before the backup began and %d when the node answered", k, sentBefore, sentAtAnswer)
	}
	// Accounts registered while writing: a prefix too.
	var lateOK int64
	for i := int64(1); i <= lateUsers.Load(); i++ {
		if _, err := opLoginErr(rs.URL, fmt.Sprintf("late%d", i)); err != nil {
			break
		}
		lateOK = i
	}
	for i := lateOK + 1; i <= lateUsers.Load(); i++ {
		if _, err := opLoginErr(rs.URL, fmt.Sprintf("late%d", i)); err == nil {
			t.Errorf("late%d logs in but late%d does not: not one consistent cut", i, lateOK+1)
		}
	}
	if lateOK < lateBefore {
		t.Errorf("only late1..late%d restored; late1..late%d were registered before the backup", lateOK, lateBefore)
	}

	// New writes apply: the new cluster's log starts at index 1, and the
	// restored store must not skip it as already applied.
	newbie := opRegister(t, rs.URL, "newbie")
	fresh := opCreateRoom(t, rs.URL, newbie, true)
	opSend(t, rs.URL, newbie, fresh, "n1", "hello after restore")
	if got := opMessages(t, rs.URL, newbie, fresh); !slices.Equal(got, []string{"hello after restore"}) {
		t.Errorf("new room after restore: %q", got)
	}
	opSend(t, rs.URL, newTokens["alice"], general.id, "after-restore", "alice is back")
	if got := opMessages(t, rs.URL, newTokens["bob"], general.id); !slices.Equal(got, append(slices.Clone(general.bodies), "alice is back")) {
		t.Errorf("general after a new write: %q", got)
	}
	if _, err := opLoginErr(rs.URL, "newbie"); err != nil {
		t.Errorf("new account cannot log in: %v", err)
	}

	// The history is the backup's, continued: the chain verifies from
	// record 1 and the record at the backup's position has its hash.
	if err := rs.Node.Machine().View(func(r pebble.Reader) error {
		head, err := rlog.VerifyChain(r)
		if err != nil {
			return err
		}
		if head.Seq <= m.LogPosition {
			return fmt.Errorf("head %d did not move past the backup's %d", head.Seq, m.LogPosition)
		}
		return rlog.Scan(r, m.LogPosition, m.LogPosition, func(rec *rlog.Record, raw []byte) error {
			if h := sha256.Sum256(raw); hex.EncodeToString(h[:]) != m.LogHash {
				return fmt.Errorf("record %d hashes to %x, the manifest says %s", rec.Seq, h, m.LogHash)
			}
			return nil
		})
	}); err != nil {
		t.Errorf("restored log: %v", err)
	}

	// And it restarts cleanly: nothing is applied twice or lost.
	headBefore := rs.Node.Machine().Log().Head()
	rs.Restart()
	if err := waitFor(10*time.Second, func() bool { return rs.Node.IsLeader() }); err != nil {
		t.Fatal(err)
	}
	if h := rs.Node.Machine().Log().Head(); h.Seq < headBefore.Seq {
		t.Errorf("head after restart %d, before %d", h.Seq, headBefore.Seq)
	}
	if got := opMessages(t, rs.URL, opLogin(t, rs.URL, "newbie"), fresh); !slices.Equal(got, []string{"hello after restore"}) {
		t.Errorf("new room after a restart: %q", got)
	}
}

type roundTripFunc func(*http.Request) (*http.Response, error)

func (f roundTripFunc) RoundTrip(r *http.Request) (*http.Response, error) { return f(r) }

func waitFor(d time.Duration, cond func() bool) error {
	deadline := time.Now().Add(d)
	for !cond() {
		if time.Now().After(deadline) {
			return fmt.Errorf("condition not met within %s", d)
		}
		time.Sleep(20 * time.Millisecond)
	}
	return nil
}

// TestBackupNeedsTheSecret: the endpoint is for operators only, and the
// command fails without writing a backup.
func TestBackupNeedsTheSecret(t *testing.T) {
	t.Setenv(secretEnv, "")
	srv := apitest.Start(t, "")
	opRegister(t, srv.URL, "someone")

	for name, auth := range map[string]string{"no token": "", "wrong secret": "Bearer not-the-secret", "user token": "Bearer " + opLogin(t, srv.URL, "someone")} {
		req, _ := http.NewRequest(http.MethodGet, srv.URL+"/_chronicle/v1/backup", nil)
		if auth != "" {
			req.Header.Set("Authorization", auth)
		}
		resp, err := opHTTP.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		var body struct {
			Code string `json:"errcode"`
		}
		json.NewDecoder(resp.Body).Decode(&body)
		resp.Body.Close()
		if resp.StatusCode != http.StatusUnauthorized && resp.StatusCode != http.StatusForbidden {
			t.Errorf("%s: HTTP %d, want 401 or 403", name, resp.StatusCode)
		}
		if body.Code != "M_MISSING_TOKEN" && body.Code != "M_FORBIDDEN" {
			t.Errorf("%s: errcode %q", name, body.Code)
		}
	}

	// No secret anywhere: refused before asking.
	dir := filepath.Join(t.TempDir(), "b")
	var out bytes.Buffer
	err := runBackup(context.Background(), []string{"--node", srv.URL, "--out", dir}, &out)
	if err == nil || !strings.Contains(err.Error(), "no cluster secret") {
		t.Errorf("backup without a secret: %v", err)
	}
	// A wrong secret: the node's refusal, clearly.
	err = runBackup(context.Background(), []string{"--node", srv.URL, "--out", dir, "--secret", "nope"}, &out)
	if err == nil || !strings.Contains(err.Error(), "HTTP 403 M_FORBIDDEN") || !strings.Contains(err.Error(), "cluster secret") {
		t.Errorf("backup with a wrong secret: %v", err)
	}
	if _, serr := os.Stat(dir); !os.IsNotExist(serr) {
		t.Errorf("a refused backup left %s behind", dir)
	}

	// The secret from $CHRONICLE_CLUSTER_SECRET and from --data both work.
	t.Setenv(secretEnv, apitest.Secret)
	if err := runBackup(context.Background(), []string{"--node", srv.URL, "--out", filepath.Join(t.TempDir(), "env")}, &out); err != nil {
		t.Errorf("backup with the secret in the environment: %v", err)
	}
	t.Setenv(secretEnv, "")
	data := t.TempDir()
	if err := os.WriteFile(filepath.Join(data, "cluster-secret"), []byte(apitest.Secret+"\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	if err := runBackup(context.Background(), []string{"--node", srv.URL, "--data", data, "--out", filepath.Join(t.TempDir(), "file")}, &out); err != nil {
		t.Errorf("backup with the secret from --data: %v", err)
	}
}

// TestBackupRefusesNonEmptyOut: an existing backup is never overwritten.
func TestBackupRefusesNonEmptyOut(t *testing.T) {
	srv := apitest.Start(t, "")
	dir := t.TempDir()
	keep := filepath.Join(dir, "keep")
	if err := os.WriteFile(keep, []byte("mine"), 0o600); err != nil {
		t.Fatal(err)
	}
	var out bytes.Buffer
	err := runBackup(context.Background(), []string{"--node", srv.URL, "--secret", apitest.Secret, "--out", dir}, &out)
	if err == nil || !strings.Contains(err.Error(), "not empty") {
		t.Fatalf("backup into a non-empty dir: %v", err)
	}
	if b, err := os.ReadFile(keep); err != nil || string(b) != "mine" {
		t.Errorf("the existing file was touched: %q %v", b, err)
	}
	// An existing empty directory is fine.
	empty := t.TempDir()
	if err := runBackup(context.Background(), []string{"--node", srv.URL, "--secret", apitest.Secret, "--out", empty}, &out); err != nil {
		t.Errorf("backup into an empty dir: %v", err)
	}
}

// TestBackupRefusesIncompleteStreams: a stream the node cut off, or whose
// bytes are not the ones the node hashed, never becomes a backup.
func TestBackupRefusesIncompleteStreams(t *testing.T) {
	body := bytes.Repeat([]byte("chronicle"), 100000)
	good := sha256.Sum256(body)
	cases := map[string]struct {
		handler func(w http.ResponseWriter)
		want    string
	}{
		"aborted mid-stream": {func(w http.ResponseWriter) {
			w.WriteHeader(http.StatusOK)
			w.Write(body[:len(body)/2])
			w.(http.Flusher).Flush()
			panic(http.ErrAbortHandler)
		}, "download interrupted"},
		"ended without the checksum trailer": {func(w http.ResponseWriter) {
			w.WriteHeader(http.StatusOK)
			w.Write(body[:len(body)/2])
		}, "incomplete"},
		"checksum differs": {func(w http.ResponseWriter) {
			w.WriteHeader(http.StatusOK)
			w.Write(body[1:])
			w.Header().Set(api.TrailerBackupSHA256, hex.EncodeToString(good[:]))
		}, "corrupt"},
		"no log position": {func(w http.ResponseWriter) {
			w.Header().Del(api.HeaderLogPosition)
			w.WriteHeader(http.StatusOK)
		}, api.HeaderLogPosition},
		"a server error": {func(w http.ResponseWriter) {
			w.Header().Set("Content-Type", "application/json")
			w.WriteHeader(http.StatusInternalServerError)
			w.Write([]byte(`{"errcode":"M_UNKNOWN","error":"Internal server error"}`))
		}, "HTTP 500 M_UNKNOWN"},
	}
	for name, tc := range cases {
		t.Run(name, func(t *testing.T) {
			srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
				if r.URL.Path != "/_chronicle/v1/backup" || r.Header.Get("Authorization") != "Bearer s3cret" {
					w.WriteHeader(http.StatusNotFound)
					return
				}
				w.Header().Set(api.HeaderLogPosition, "7")
				w.Header().Set(api.HeaderLogHash, strings.Repeat("ab", 32))
				w.Header().Set("Trailer", api.TrailerBackupSHA256)
				tc.handler(w)
			}))
			defer srv.Close()
			srv.Config.ErrorLog = log.New(io.Discard, "", 0)
			dir := filepath.Join(t.TempDir(), "b")
			var out bytes.Buffer
			err := runBackup(context.Background(), []string{"--node", srv.URL, "--secret", "s3cret", "--out", dir}, &out)
			if err == nil || !strings.Contains(err.Error(), tc.want) {
				t.Fatalf("got %v, want an error mentioning %q", err, tc.want)
			}
			if _, serr := os.Stat(dir); !os.IsNotExist(serr) {
				t.Errorf("a failed backup left %s behind", dir)
			}
		})
	}
}
