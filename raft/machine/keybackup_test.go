package machine

import (
	"encoding/json"
	"fmt"
	"testing"

	"github.com/cockroachdb/pebble/v2"

	"chronicle/projections/facts"
	"chronicle/projections/keybackup"
)

func roomKey(room, session string, firstIndex int64, verified bool) facts.BackedUpRoomKey {
	return facts.BackedUpRoomKey{RoomID: room, SessionID: session, FirstMessageIndex: firstIndex, IsVerified: verified,
		SessionData: json.RawMessage(fmt.Sprintf(`{"ciphertext":"%s-%d"}`, session, firstIndex))}
}

func createBackup(w *workload, user, pub string) uint64 {
	w.t.Helper()
	res := w.ok(CmdCreateKeyBackup, user, "", &KeyBackupVersion{Algorithm: "m.megolm_backup.v1.curve25519-aes-sha2",
		AuthData: json.RawMessage(fmt.Sprintf(`{"public_key":%q}`, pub))})
	return res.KeyBackup.Version
}

// buildKeyBackupWorkload exercises every key backup command, accepted and
// refused, for the determinism and replay tests (workload_test.go).
func buildKeyBackupWorkload(w *workload, alice, bob string) {
	v1 := createBackup(w, alice, "pub1")
	w.ok(CmdPutRoomKeys, alice, "", &PutRoomKeys{Version: v1, Keys: []facts.BackedUpRoomKey{
		roomKey("!r1:localhost", "s2", 3, false), roomKey("!r1:localhost", "s1", 5, false), roomKey("!r2:localhost", "s1", 0, true)}})
	w.ok(CmdPutRoomKeys, alice, "", &PutRoomKeys{Version: v1, Keys: []facts.BackedUpRoomKey{roomKey("!r1:localhost", "s1", 1, false)}})
	w.ok(CmdUpdateKeyBackup, alice, "", &KeyBackupVersion{Version: v1, Algorithm: "m.megolm_backup.v1.curve25519-aes-sha2", AuthData: json.RawMessage(`{"public_key":"pub1","signatures":{}}`)})
	w.ok(CmdDeleteRoomKeys, alice, "", &DeleteRoomKeys{Version: v1, RoomID: "!r1:localhost", SessionID: "s2"})
	v2 := createBackup(w, alice, "pub2")
	w.rej(KindWrongRoomKeysVersion, CmdPutRoomKeys, alice, "", &PutRoomKeys{Version: v1, Keys: []facts.BackedUpRoomKey{roomKey("!r1:localhost", "s9", 0, true)}})
	w.ok(CmdPutRoomKeys, alice, "", &PutRoomKeys{Version: v2, Keys: []facts.BackedUpRoomKey{roomKey("!r3:localhost", "s1", 0, false)}})
	w.ok(CmdDeleteKeyBackup, alice, "", &KeyBackupVersion{Version: v1})
	w.rej(KindNotFound, CmdPutRoomKeys, bob, "", &PutRoomKeys{Version: v2, Keys: []facts.BackedUpRoomKey{roomKey("!r1:localhost", "s1", 0, true)}})
	createBackup(w, bob, "bobpub")
}

func backupOf(t *testing.T, m *Machine, user string, version uint64) *keybackup.Backup {
	t.Helper()
	var b *keybackup.Backup
	view(t, m, func(r pebble.Reader) {
		var err error
		if b, err = keybackup.GetVersion(r, user, version); err != nil {
			t.Fatal(err)
		}
	})
	return b
}

// TestKeyBackupCountsFollowEveryChange checks the count kept beside each
// version against what is stored, through replacements, deletions by
// session and by room (a room whose ID extends another's must not be
// touched), and that deleting a version leaves the next one's keys.
func TestKeyBackupCountsFollowEveryChange(t *testing.T) {
	m, w, _ := userDataFixture(t)
	alice := uid("alice")
	v1 := createBackup(w, alice, "p1")
	put := func(version uint64, keys ...facts.BackedUpRoomKey) *KeyBackupState {
		return w.ok(CmdPutRoomKeys, alice, "", &PutRoomKeys{Version: version, Keys: keys}).KeyBackup
	}
	got := put(v1, roomKey("!a:x", "s1", 0, false), roomKey("!a:x", "s2", 0, false), roomKey("!ab:x", "s1", 0, false))
	if got.Count != 3 || got.Etag != 1 {
		t.Fatalf("after three keys: %+v", got)
	}
	if got = put(v1, roomKey("!a:x", "s1", 0, true)); got.Count != 3 || got.Etag != 2 {
		t.Fatalf("after replacing one: %+v", got)
	}
	w.rej(KindBadJSON, CmdPutRoomKeys, alice, "", &PutRoomKeys{Version: v1, Keys: []facts.BackedUpRoomKey{roomKey("!a:x", "s3", 0, true), roomKey("!a:x", "s3", 1, true)}})

	del := func(room, session string) *KeyBackupState {
		return w.ok(CmdDeleteRoomKeys, alice, "", &DeleteRoomKeys{Version: v1, RoomID: room, SessionID: session}).KeyBackup
	}
	if got = del("!a:x", "nosuch"); got.Count != 3 || got.Etag != 2 {
		t.Fatalf("deleting nothing changed the backup: %+v", got)
	}
	if got = del("!a:x", ""); got.Count != 1 {
		t.Fatalf("after deleting room !a:x: %+v, want !ab:x's key left", got)
	}
	if b := backupOf(t, m, alice, v1); b.Count != 1 || b.Etag != got.Etag {
		t.Fatalf("stored version %+v, command answered %+v", b, got)
	}

	v2 := createBackup(w, alice, "p2")
	put(v2, roomKey("!a:x", "s1", 0, false))
	w.ok(CmdDeleteKeyBackup, alice, "", &KeyBackupVersion{Version: v1})
	w.ok(CmdDeleteKeyBackup, alice, "", &KeyBackupVersion{Version: v1}) // deleted before: still fine
	w.rej(KindNotFound, CmdDeleteKeyBackup, alice, "", &KeyBackupVersion{Version: v2 + 1})
	view(t, m, func(r pebble.Reader) {
		for v, want := range map[uint64]int{v1: 0, v2: 1} {
			keys, err := keybackup.Keys(r, alice, v, "")
			if err != nil || len(keys) != want {
				t.Fatalf("version %d holds %d keys (%v), want %d", v, len(keys), err, want)
			}
		}
	})
	// Versions are never reused, even after the latest is deleted.
	w.ok(CmdDeleteKeyBackup, alice, "", &KeyBackupVersion{Version: v2})
	if v3 := createBackup(w, alice, "p3"); v3 != v2+1 {
		t.Fatalf("version after deleting %d is %d", v2, v3)
	}
}
