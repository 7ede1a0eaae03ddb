package e2e

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"testing"
	"time"

	"chronicle/api/apitest"
)

// jssdkDir holds the matrix-js-sdk scenario (jssdk/README.md).
const jssdkDir = "jssdk"

// installStamp, inside node_modules, holds the hash of the package-lock.json
// the modules were installed from, so that an unchanged lock file skips
// the install.
const installStamp = "node_modules/.chronicle-lock-sha256"

// TestJSSDKEndToEndEncryption runs real matrix-js-sdk clients with Rust
// crypto against a real server: alice and bob exchange megolm-encrypted
// messages in an encrypted room (room keys travel as olm-encrypted
// to-device messages after a one-time key claim), a second device of bob's
// logs in later and decrypts what is sent after it appeared (it learns of
// it through /sync device_lists), and alice bootstraps cross-signing.
func TestJSSDKEndToEndEncryption(t *testing.T) {
	node, errNode := exec.LookPath("node")
	npm, errNPM := exec.LookPath("npm")
	if err := errors.Join(errNode, errNPM); err != nil {
		t.Skipf("matrix-js-sdk test needs node (20+) and npm on PATH: %v", err)
	}
	if err := npmInstall(t, npm); err != nil {
		t.Fatal(err)
	}
	srv := apitest.Start(t, "")

	// Well above the scenario's few seconds; the script has its own
	// deadline too, this one catches a wedged process.
	ctx, cancel := context.WithTimeout(t.Context(), 2*time.Minute)
	defer cancel()
	cmd := exec.CommandContext(ctx, node, "e2ee.mjs", srv.URL)
	cmd.Dir = jssdkDir
	cmd.WaitDelay = 5 * time.Second
	start := time.Now()
	out, err := cmd.CombinedOutput()
	if err != nil {
		t.Fatalf("node e2ee.mjs %s: %v (after %s)\n%s", srv.URL, err, time.Since(start).Round(time.Millisecond), out)
	}
	t.Logf("matrix-js-sdk scenario passed in %s:\n%s", time.Since(start).Round(time.Millisecond), out)
}

// npmInstall runs `npm ci` in jssdkDir unless node_modules was already
// installed from the current package-lock.json.
func npmInstall(t *testing.T, npm string) error {
	lock, err := os.ReadFile(filepath.Join(jssdkDir, "package-lock.json"))
	if err != nil {
		return fmt.Errorf("read lock file: %w", err)
	}
	sum := sha256.Sum256(lock)
	want := []byte(hex.EncodeToString(sum[:]))
	stamp := filepath.Join(jssdkDir, installStamp)
	if got, err := os.ReadFile(stamp); err == nil && bytes.Equal(got, want) {
		return nil
	}
	ctx, cancel := context.WithTimeout(t.Context(), 5*time.Minute)
	defer cancel()
	cmd := exec.CommandContext(ctx, npm, "ci", "--no-audit", "--no-fund", "--loglevel=error")
	cmd.Dir = jssdkDir
	cmd.Env = append(os.Environ(), "npm_config_update_notifier=false")
	start := time.Now()
	if out, err := cmd.CombinedOutput(); err != nil {
		return fmt.Errorf("npm ci in %s: %w\n%s", jssdkDir, err, out)
	}
	t.Logf("npm ci took %s", time.Since(start).Round(time.Millisecond))
	if err := os.WriteFile(stamp, want, 0o644); err != nil {
		return fmt.Errorf("write install stamp: %w", err)
	}
	return nil
}
