package e2e

import (
	"encoding/json"
	"errors"
	"net/http"
	"testing"

	"maunium.net/go/mautrix"
	"maunium.net/go/mautrix/crypto/backup"
	"maunium.net/go/mautrix/id"

	"chronicle/api/apitest"
)

const (
	backupRoom    = id.RoomID("!backedup:localhost")
	backupSession = id.SessionID("abc/def+ghi") // megolm session IDs are base64: '/' and '+'
)

// backupKey is a KeyBackupData whose session_data names where it came from,
// so a test can tell which of two uploads the server kept.
func backupKey(from string, firstIndex, forwarded int, verified bool) mautrix.ReqKeyBackupData {
	data, _ := json.Marshal(map[string]string{"ciphertext": from, "ephemeral": "e", "mac": "m"})
	return mautrix.ReqKeyBackupData{FirstMessageIndex: firstIndex, ForwardedCount: forwarded, IsVerified: verified, SessionData: data}
}

// backedUpKey is what GET /room_keys/keys/{room}/{session} returns.
type backedUpKey struct {
	FirstMessageIndex int  `json:"first_message_index"`
	IsVerified        bool `json:"is_verified"`
	SessionData       struct {
		Ciphertext string `json:"ciphertext"`
	} `json:"session_data"`
}

func getBackedUpKey(t *testing.T, cli *mautrix.Client, version id.KeyBackupVersion) (*backedUpKey, error) {
	t.Helper()
	var out backedUpKey
	url := cli.BuildURLWithQuery(mautrix.ClientURLPath{"v3", "room_keys", "keys", backupRoom, backupSession}, map[string]string{"version": string(version)})
	_, err := cli.MakeRequest(t.Context(), http.MethodGet, url, nil, &out)
	return &out, err
}

func newBackupVersion(t *testing.T, cli *mautrix.Client, publicKey string) id.KeyBackupVersion {
	t.Helper()
	resp, err := cli.CreateKeyBackupVersion(t.Context(), &mautrix.ReqRoomKeysVersionCreate[backup.MegolmAuthData]{
		Algorithm: id.KeyBackupAlgorithmMegolmBackupV1, AuthData: backup.MegolmAuthData{PublicKey: id.Ed25519(publicKey)},
	})
	if err != nil {
		t.Fatalf("create backup version: %v", err)
	}
	return resp.Version
}

// TestKeyBackupKeepsTheBetterKeyAndOnlyTheCurrentVersionTakesKeys walks a
// backup's life: none at first, a version, keys replaced only by better
// ones (verified, then lower first index), writes to a superseded version
// refused with the current one named, and deletion.
func TestKeyBackupKeepsTheBetterKeyAndOnlyTheCurrentVersionTakesKeys(t *testing.T) {
	srv := apitest.Start(t, "")
	alice := newUser(t, srv, "alice")
	bob := newUser(t, srv, "bob")

	_, err := alice.GetKeyBackupLatestVersion(t.Context())
	wantMatrixError(t, err, mautrix.MNotFound, http.StatusNotFound)

	v1 := newBackupVersion(t, alice, "pub1")
	put := func(version id.KeyBackupVersion, k mautrix.ReqKeyBackupData) (*mautrix.RespRoomKeysUpdate, error) {
		return alice.PutKeysInBackupForRoomAndSession(t.Context(), version, backupRoom, backupSession, &k)
	}
	first, err := put(v1, backupKey("first", 5, 0, false))
	if err != nil || first.Count != 1 {
		t.Fatalf("first key: %+v, %v", first, err)
	}
	// A worse key (later first index) and a retry change nothing, not even
	// the etag; a verified key wins over an unverified one with a lower
	// index.
	for _, k := range []mautrix.ReqKeyBackupData{backupKey("worse", 9, 0, false), backupKey("first", 5, 0, false)} {
		if got, err := put(v1, k); err != nil || got.ETag != first.ETag || got.Count != 1 {
			t.Fatalf("worse key: %+v, %v (etag before %s)", got, err, first.ETag)
		}
	}
	verified, err := put(v1, backupKey("verified", 7, 0, true))
	if err != nil || verified.ETag == first.ETag || verified.Count != 1 {
		t.Fatalf("verified key: %+v, %v", verified, err)
	}
	if _, err := put(v1, backupKey("unverified-lower", 0, 0, false)); err != nil {
		t.Fatal(err)
	}
	if got, err := getBackedUpKey(t, alice, v1); err != nil || got.SessionData.Ciphertext != "verified" || !got.IsVerified {
		t.Fatalf("kept key: %+v, %v; want the verified one", got, err)
	}

	info, err := alice.GetKeyBackupLatestVersion(t.Context())
	if err != nil || info.Version != v1 || info.Count != 1 || info.ETag != verified.ETag || info.AuthData.PublicKey != "pub1" {
		t.Fatalf("current version: %+v, %v", info, err)
	}
	// Backups are per user.
	_, err = bob.GetKeyBackupVersion(t.Context(), v1)
	wantMatrixError(t, err, mautrix.MNotFound, http.StatusNotFound)

	// A new version supersedes the old one: writes to the old one are
	// refused with the current version, and the new one starts empty.
	v2 := newBackupVersion(t, alice, "pub2")
	_, err = put(v1, backupKey("late", 0, 0, true))
	wantMatrixError(t, err, mautrix.RespError{ErrCode: "M_WRONG_ROOM_KEYS_VERSION"}, http.StatusForbidden)
	var respErr mautrix.RespError
	if !errors.As(err, &respErr) || respErr.ExtraData["current_version"] != string(v2) {
		t.Fatalf("wrong version error %v does not name current_version %s", err, v2)
	}
	_, err = getBackedUpKey(t, alice, v2)
	wantMatrixError(t, err, mautrix.MNotFound, http.StatusNotFound)

	// auth_data may change, the algorithm may not. (mautrix's
	// UpdateKeyBackupVersion sends no body, hence the raw requests.)
	update := func(algorithm id.KeyBackupAlgorithm, publicKey string) error {
		_, err := alice.MakeRequest(t.Context(), http.MethodPut, alice.BuildClientURL("v3", "room_keys", "version", v2),
			&mautrix.ReqRoomKeysVersionUpdate[backup.MegolmAuthData]{Algorithm: algorithm, AuthData: backup.MegolmAuthData{PublicKey: id.Ed25519(publicKey)}}, nil)
		return err
	}
	if err := update(id.KeyBackupAlgorithmMegolmBackupV1, "pub2-signed"); err != nil {
		t.Fatal(err)
	}
	wantMatrixError(t, update("m.other", "pub3"), mautrix.MInvalidParam, http.StatusBadRequest)
	if info, err := alice.GetKeyBackupVersion(t.Context(), v2); err != nil || info.AuthData.PublicKey != "pub2-signed" {
		t.Fatalf("updated version: %+v, %v", info, err)
	}

	// Deleting keys and versions.
	if _, err := put(v2, backupKey("new", 0, 0, false)); err != nil {
		t.Fatal(err)
	}
	if got, err := alice.DeleteKeysFromBackupForRoom(t.Context(), v2, backupRoom); err != nil || got.Count != 0 {
		t.Fatalf("delete the room's keys: %+v, %v", got, err)
	}
	for range 2 { // deleting a deleted version succeeds
		if err := alice.DeleteKeyBackupVersion(t.Context(), v1); err != nil {
			t.Fatalf("delete version %s: %v", v1, err)
		}
	}
	wantMatrixError(t, alice.DeleteKeyBackupVersion(t.Context(), "99"), mautrix.MNotFound, http.StatusNotFound)
	_, err = getBackedUpKey(t, alice, v1)
	wantMatrixError(t, err, mautrix.MNotFound, http.StatusNotFound)
	if info, err := alice.GetKeyBackupLatestVersion(t.Context()); err != nil || info.Version != v2 {
		t.Fatalf("current version after deleting %s: %+v, %v", v1, info, err)
	}
}
