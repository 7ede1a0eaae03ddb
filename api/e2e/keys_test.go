package e2e

import (
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"slices"
	"testing"
	"time"

	"maunium.net/go/mautrix"
	"maunium.net/go/mautrix/crypto/signatures"
	"maunium.net/go/mautrix/id"

	"chronicle/api/apitest"
)

// Made-up keys: the server stores and serves keys without checking their
// cryptography, so the tests need no real crypto.

func deviceKeysOf(cli *mautrix.Client, tag string) *mautrix.DeviceKeys {
	dev := cli.DeviceID
	return &mautrix.DeviceKeys{
		UserID: cli.UserID, DeviceID: dev,
		Algorithms: []id.Algorithm{id.AlgorithmOlmV1, id.AlgorithmMegolmV1},
		Keys: mautrix.KeyMap{
			id.NewDeviceKeyID(id.KeyAlgorithmCurve25519, dev): "curve-" + tag,
			id.NewDeviceKeyID(id.KeyAlgorithmEd25519, dev):    "ed-" + tag,
		},
		Signatures: signatures.Signatures{cli.UserID: {id.NewKeyID(id.KeyAlgorithmEd25519, string(dev)): "sig-" + tag}},
	}
}

// oneTimeKeys returns n signed_curve25519 keys with IDs prefix0, prefix1...
func oneTimeKeys(cli *mautrix.Client, prefix string, n int) map[id.KeyID]mautrix.OneTimeKey {
	out := map[id.KeyID]mautrix.OneTimeKey{}
	for i := range n {
		keyID := fmt.Sprintf("%s%d", prefix, i)
		out[id.NewKeyID(id.KeyAlgorithmSignedCurve25519, keyID)] = mautrix.OneTimeKey{
			Key:        id.Curve25519("otk-" + keyID),
			Signatures: signatures.Signatures{cli.UserID: {id.NewKeyID(id.KeyAlgorithmEd25519, string(cli.DeviceID)): "sig"}},
		}
	}
	return out
}

func uploadKeys(t *testing.T, cli *mautrix.Client, req *mautrix.ReqUploadKeys) *mautrix.RespUploadKeys {
	t.Helper()
	resp, err := cli.UploadKeys(t.Context(), req)
	if err != nil {
		t.Fatalf("%s/%s uploads keys: %v", cli.UserID, cli.DeviceID, err)
	}
	return resp
}

// uploadFallbackKey uploads one fallback key (mautrix's request type has
// no fallback_keys).
func uploadFallbackKey(t *testing.T, cli *mautrix.Client, keyID string) {
	t.Helper()
	body := map[string]any{"fallback_keys": map[string]any{
		"signed_curve25519:" + keyID: map[string]any{"key": "fallback-" + keyID, "fallback": true,
			"signatures": map[string]any{string(cli.UserID): map[string]string{"ed25519:" + string(cli.DeviceID): "sig"}}},
	}}
	if _, err := cli.MakeRequest(t.Context(), http.MethodPost, cli.BuildClientURL("v3", "keys", "upload"), body, nil); err != nil {
		t.Fatalf("upload fallback key: %v", err)
	}
}

func claimOne(t *testing.T, claimer, owner *mautrix.Client) (id.KeyID, bool) {
	t.Helper()
	resp, err := claimer.ClaimKeys(t.Context(), &mautrix.ReqClaimKeys{OneTimeKeys: mautrix.OneTimeKeysRequest{
		owner.UserID: {owner.DeviceID: id.KeyAlgorithmSignedCurve25519},
	}})
	if err != nil {
		t.Fatalf("claim: %v", err)
	}
	for keyID := range resp.OneTimeKeys[owner.UserID][owner.DeviceID] {
		return keyID, true
	}
	return "", false
}

// rawKeysSync is one /sync answered as raw JSON fields, to check which fields
// are present.
// queryKeys is cli's /keys/query for all of user's devices.
func queryKeys(t *testing.T, cli *mautrix.Client, user id.UserID) *mautrix.RespQueryKeys {
	t.Helper()
	resp, err := cli.QueryKeys(t.Context(), &mautrix.ReqQueryKeys{DeviceKeys: mautrix.DeviceKeysRequest{user: {}}})
	if err != nil {
		t.Fatal(err)
	}
	return resp
}

func rawKeysSync(t *testing.T, cli *mautrix.Client, since string) map[string]json.RawMessage {
	t.Helper()
	q := map[string]string{"timeout": "0"}
	if since != "" {
		q["since"] = since
	}
	var out map[string]json.RawMessage
	if _, err := cli.MakeRequest(t.Context(), http.MethodGet, cli.BuildURLWithQuery(mautrix.ClientURLPath{"v3", "sync"}, q), nil, &out); err != nil {
		t.Fatalf("sync: %v", err)
	}
	return out
}

func TestUploadedKeyCountsInResponseAndSync(t *testing.T) {
	srv := apitest.Start(t, "")
	alice := newUser(t, srv, "alice")

	// Before any upload: the count is there, at zero, and so is the list
	// of unused fallback key types.
	first := rawKeysSync(t, alice, "")
	if string(first["device_one_time_keys_count"]) != `{"signed_curve25519":0}` || string(first["device_unused_fallback_key_types"]) != `[]` {
		t.Fatalf("initial sync: counts %s, fallback types %s", first["device_one_time_keys_count"], first["device_unused_fallback_key_types"])
	}
	start, err := syncOnce(t.Context(), alice, "", 0, "")
	if err != nil {
		t.Fatal(err)
	}
	resp := uploadKeys(t, alice, &mautrix.ReqUploadKeys{DeviceKeys: deviceKeysOf(alice, "1"), OneTimeKeys: oneTimeKeys(alice, "AAA", 5)})
	if resp.OneTimeKeyCounts.SignedCurve25519 != 5 {
		t.Fatalf("upload answered counts %+v", resp.OneTimeKeyCounts)
	}
	got := syncUntil(t, alice, start.NextBatch, func(r *mautrix.RespSync) bool { return r.DeviceOTKCount.SignedCurve25519 == 5 })
	// The device's own identity keys are a change of its user's device list.
	if !slices.Contains(got.DeviceLists.Changed, alice.UserID) {
		t.Fatalf("own key upload not in device_lists.changed: %+v", got.DeviceLists)
	}

	// Retrying the same upload changes nothing; more keys add up.
	if resp := uploadKeys(t, alice, &mautrix.ReqUploadKeys{DeviceKeys: deviceKeysOf(alice, "1"), OneTimeKeys: oneTimeKeys(alice, "AAA", 5)}); resp.OneTimeKeyCounts.SignedCurve25519 != 5 {
		t.Fatalf("retried upload answered %+v", resp.OneTimeKeyCounts)
	}
	if resp := uploadKeys(t, alice, &mautrix.ReqUploadKeys{OneTimeKeys: oneTimeKeys(alice, "BBB", 2)}); resp.OneTimeKeyCounts.SignedCurve25519 != 7 {
		t.Fatalf("second upload answered %+v", resp.OneTimeKeyCounts)
	}
	// A key ID already uploaded, with another key: refused.
	clash := oneTimeKeys(alice, "AAA", 1)
	k := clash["signed_curve25519:AAA0"]
	k.Key = "something else"
	clash["signed_curve25519:AAA0"] = k
	_, err = alice.UploadKeys(t.Context(), &mautrix.ReqUploadKeys{OneTimeKeys: clash})
	wantMatrixError(t, err, mautrix.MInvalidParam, 400)
	// Other identity keys for the same device: refused; the same keys
	// signed anew: accepted.
	_, err = alice.UploadKeys(t.Context(), &mautrix.ReqUploadKeys{DeviceKeys: deviceKeysOf(alice, "2")})
	wantMatrixError(t, err, mautrix.MInvalidParam, 400)
	resigned := deviceKeysOf(alice, "1")
	resigned.Signatures[alice.UserID]["ed25519:master"] = "cross-signed"
	uploadKeys(t, alice, &mautrix.ReqUploadKeys{DeviceKeys: resigned})
}

func TestClaimConsumesOneKeyThenTheFallbackKey(t *testing.T) {
	srv := apitest.Start(t, "")
	alice := newUser(t, srv, "alice")
	bob := newUser(t, srv, "bob")
	uploadKeys(t, alice, &mautrix.ReqUploadKeys{DeviceKeys: deviceKeysOf(alice, "1"), OneTimeKeys: oneTimeKeys(alice, "K", 2)})

	k1, ok1 := claimOne(t, bob, alice)
	k2, ok2 := claimOne(t, bob, alice)
	if !ok1 || !ok2 || k1 == k2 {
		t.Fatalf("two claims got %q (%v) and %q (%v)", k1, ok1, k2, ok2)
	}
	if k1 != "signed_curve25519:K0" {
		t.Fatalf("first claim got %s, want the smallest key ID of the upload", k1)
	}
	if k, ok := claimOne(t, bob, alice); ok {
		t.Fatalf("claim on an empty pool without a fallback key got %s", k)
	}
	sync := rawKeysSync(t, alice, "")
	if string(sync["device_one_time_keys_count"]) != `{"signed_curve25519":0}` {
		t.Fatalf("count after claiming both: %s", sync["device_one_time_keys_count"])
	}

	uploadFallbackKey(t, alice, "FB")
	before, err := syncOnce(t.Context(), alice, "", 0, "")
	if err != nil {
		t.Fatal(err)
	}
	if !slices.Equal(before.FallbackKeys, []id.KeyAlgorithm{id.KeyAlgorithmSignedCurve25519}) {
		t.Fatalf("unused fallback key types before a claim: %v", before.FallbackKeys)
	}
	for i := range 2 { // not consumed: every claim gets it
		if k, ok := claimOne(t, bob, alice); !ok || k != "signed_curve25519:FB" {
			t.Fatalf("claim %d with only a fallback key got %q", i, k)
		}
	}
	after := syncUntil(t, alice, before.NextBatch, func(r *mautrix.RespSync) bool { return r.FallbackKeys != nil })
	if len(after.FallbackKeys) != 0 {
		t.Fatalf("used fallback key still listed as unused: %v", after.FallbackKeys)
	}
	// New one-time keys go out before the fallback key again.
	uploadKeys(t, alice, &mautrix.ReqUploadKeys{OneTimeKeys: oneTimeKeys(alice, "N", 1)})
	if k, _ := claimOne(t, bob, alice); k != "signed_curve25519:N0" {
		t.Fatalf("claim after a new upload got %s", k)
	}
}

func TestQueryReturnsDevicesWithDisplayNames(t *testing.T) {
	srv := apitest.Start(t, "")
	alice := newUser(t, srv, "alice")
	laptop := anonClient(t, srv)
	if _, err := laptop.Login(t.Context(), &mautrix.ReqLogin{
		Type: mautrix.AuthTypePassword, Identifier: mautrix.UserIdentifier{Type: mautrix.IdentifierTypeUser, User: "alice"},
		Password: passwordOf("alice"), InitialDeviceDisplayName: "Alice's laptop", StoreCredentials: true,
	}); err != nil {
		t.Fatal(err)
	}
	bob := newUser(t, srv, "bob")
	uploadKeys(t, alice, &mautrix.ReqUploadKeys{DeviceKeys: deviceKeysOf(alice, "phone")})
	uploadKeys(t, laptop, &mautrix.ReqUploadKeys{DeviceKeys: deviceKeysOf(laptop, "laptop")})

	resp, err := bob.QueryKeys(t.Context(), &mautrix.ReqQueryKeys{DeviceKeys: mautrix.DeviceKeysRequest{
		alice.UserID: {}, userID("nobody"): {}, "@someone:elsewhere.example": {},
	}})
	if err != nil {
		t.Fatal(err)
	}
	devs := resp.DeviceKeys[alice.UserID]
	if len(devs) != 2 {
		t.Fatalf("alice's devices: %+v", devs)
	}
	got := devs[alice.DeviceID]
	if got.Keys.GetEd25519(alice.DeviceID) != "ed-phone" || got.UserID != alice.UserID || got.Signatures[alice.UserID] == nil {
		t.Fatalf("alice's phone: %+v", got)
	}
	if devs[laptop.DeviceID].Keys.GetEd25519(laptop.DeviceID) != "ed-laptop" {
		t.Fatalf("alice's laptop: %+v", devs[laptop.DeviceID])
	}
	if _, ok := resp.DeviceKeys[userID("nobody")]; !ok {
		t.Fatal("a local user without keys is missing from device_keys")
	}
	if _, ok := resp.Failures["elsewhere.example"]; !ok {
		t.Fatalf("no failure for a server this one cannot reach: %v", resp.Failures)
	}

	// Only the devices asked for, with the display name in unsigned.
	if name := devs[laptop.DeviceID].Unsigned["device_display_name"]; name != "Alice's laptop" {
		t.Fatalf("laptop's unsigned.device_display_name = %v", name)
	}
	var raw struct {
		DeviceKeys map[string]map[string]struct {
			Unsigned map[string]any `json:"unsigned"`
		} `json:"device_keys"`
		Failures map[string]any `json:"failures"`
	}
	if _, err := bob.MakeRequest(t.Context(), http.MethodPost, bob.BuildClientURL("v3", "keys", "query"),
		map[string]any{"device_keys": map[string]any{string(alice.UserID): []string{string(alice.DeviceID)}}}, &raw); err != nil {
		t.Fatal(err)
	}
	only := raw.DeviceKeys[string(alice.UserID)]
	if len(only) != 1 || only[string(alice.DeviceID)].Unsigned == nil || raw.Failures == nil {
		t.Fatalf("query for one device: %+v", raw)
	}
}

func TestDeviceListsFollowSharedRooms(t *testing.T) {
	srv := apitest.Start(t, "")
	alice := newUser(t, srv, "alice")
	bob := newUser(t, srv, "bob")
	carol := newUser(t, srv, "carol")
	room := joinedPair(t, alice, bob, "public_chat")
	start, err := syncOnce(t.Context(), bob, "", 0, "")
	if err != nil {
		t.Fatal(err)
	}

	// A room-mate's new keys reach bob; a stranger's do not.
	uploadKeys(t, carol, &mautrix.ReqUploadKeys{DeviceKeys: deviceKeysOf(carol, "c")})
	uploadKeys(t, alice, &mautrix.ReqUploadKeys{DeviceKeys: deviceKeysOf(alice, "a")})
	changed := syncUntil(t, bob, start.NextBatch, func(r *mautrix.RespSync) bool { return len(r.DeviceLists.Changed) > 0 })
	if !slices.Equal(changed.DeviceLists.Changed, []id.UserID{alice.UserID}) {
		t.Fatalf("device_lists.changed = %v, want only alice", changed.DeviceLists.Changed)
	}
	keyChanges, err := bob.GetKeyChanges(t.Context(), start.NextBatch, changed.NextBatch)
	if err != nil || !slices.Equal(keyChanges.Changed, []id.UserID{alice.UserID}) || len(keyChanges.Left) != 0 {
		t.Fatalf("/keys/changes = %+v, %v", keyChanges, err)
	}

	// Carol now joins: she shares a room with bob, so her devices are news
	// to him although her keys did not change.
	if _, err := carol.JoinRoomByID(t.Context(), room); err != nil {
		t.Fatal(err)
	}
	joined := syncUntil(t, bob, changed.NextBatch, func(r *mautrix.RespSync) bool { return len(r.DeviceLists.Changed) > 0 })
	if !slices.Equal(joined.DeviceLists.Changed, []id.UserID{carol.UserID}) {
		t.Fatalf("after carol joined: changed %v", joined.DeviceLists.Changed)
	}

	// Alice leaves the only room she shares with bob.
	if _, err := alice.LeaveRoom(t.Context(), room); err != nil {
		t.Fatal(err)
	}
	left := syncUntil(t, bob, joined.NextBatch, func(r *mautrix.RespSync) bool { return len(r.DeviceLists.Left) > 0 })
	if !slices.Equal(left.DeviceLists.Left, []id.UserID{alice.UserID}) || slices.Contains(left.DeviceLists.Changed, alice.UserID) {
		t.Fatalf("after alice left: %+v", left.DeviceLists)
	}
	keyChanges, err = bob.GetKeyChanges(t.Context(), start.NextBatch, left.NextBatch)
	if err != nil || !slices.Equal(keyChanges.Left, []id.UserID{alice.UserID}) || !slices.Equal(keyChanges.Changed, []id.UserID{carol.UserID}) {
		t.Fatalf("/keys/changes over the whole run = %+v, %v", keyChanges, err)
	}
	// Now alice's key changes are none of bob's business.
	laptop := login(t, srv, "alice")
	uploadKeys(t, laptop, &mautrix.ReqUploadKeys{DeviceKeys: deviceKeysOf(laptop, "l")})
	quiet, err := syncOnce(t.Context(), bob, left.NextBatch, 0, "")
	if err != nil || len(quiet.DeviceLists.Changed) != 0 || len(quiet.DeviceLists.Left) != 0 {
		t.Fatalf("after alice, gone, changed keys: %+v %v", quiet.DeviceLists, err)
	}
}

func TestLongPollWakesOnRoommateKeyChange(t *testing.T) {
	srv := apitest.Start(t, "")
	alice := newUser(t, srv, "alice")
	bob := newUser(t, srv, "bob")
	carol := newUser(t, srv, "carol")
	joinedPair(t, alice, bob, "public_chat")
	start, err := syncOnce(t.Context(), bob, "", 0, "")
	if err != nil {
		t.Fatal(err)
	}
	type result struct {
		resp *mautrix.RespSync
		err  error
		took time.Duration
	}
	done := make(chan result, 1)
	began := time.Now()
	go func() {
		resp, err := syncOnce(t.Context(), bob, start.NextBatch, 30*time.Second, "")
		done <- result{resp, err, time.Since(began)}
	}()
	time.Sleep(300 * time.Millisecond) // let it park
	// A stranger's keys do not answer it (it would come back empty).
	uploadKeys(t, carol, &mautrix.ReqUploadKeys{DeviceKeys: deviceKeysOf(carol, "c")})
	uploadKeys(t, alice, &mautrix.ReqUploadKeys{DeviceKeys: deviceKeysOf(alice, "a")})
	select {
	case r := <-done:
		if r.err != nil {
			t.Fatal(r.err)
		}
		if !slices.Equal(r.resp.DeviceLists.Changed, []id.UserID{alice.UserID}) {
			t.Fatalf("woken long-poll answered device_lists %+v", r.resp.DeviceLists)
		}
	case <-time.After(15 * time.Second):
		t.Fatal("the long-poll did not wake for a room-mate's key change")
	}
}

// TestLongPollWakesWhenTheDevicesKeyIsClaimed: a claim changes the
// device's device_one_time_keys_count, so the device's parked sync answers
// with the new count (and another device's does not).
func TestLongPollWakesWhenTheDevicesKeyIsClaimed(t *testing.T) {
	srv := apitest.Start(t, "")
	alice := newUser(t, srv, "alice")
	bob := newUser(t, srv, "bob")
	uploadKeys(t, alice, &mautrix.ReqUploadKeys{DeviceKeys: deviceKeysOf(alice, "a"), OneTimeKeys: oneTimeKeys(alice, "K", 3)})
	start, err := syncOnce(t.Context(), alice, "", 0, "")
	if err != nil {
		t.Fatal(err)
	}
	if start.DeviceOTKCount.SignedCurve25519 != 3 {
		t.Fatalf("initial count %+v", start.DeviceOTKCount)
	}
	done := make(chan *mautrix.RespSync, 1)
	go func() {
		resp, err := syncOnce(t.Context(), alice, start.NextBatch, 30*time.Second, "")
		if err != nil {
			t.Error(err)
		}
		done <- resp
	}()
	time.Sleep(300 * time.Millisecond)
	claimOne(t, bob, alice)
	select {
	case resp := <-done:
		if resp == nil || resp.DeviceOTKCount.SignedCurve25519 != 2 {
			t.Fatalf("woken sync: %+v", resp)
		}
	case <-time.After(15 * time.Second):
		t.Fatal("the long-poll did not wake when its device's key was claimed")
	}
}

func TestLogoutDropsTheDeviceKeys(t *testing.T) {
	srv := apitest.Start(t, "")
	alice := newUser(t, srv, "alice")
	bob := newUser(t, srv, "bob")
	joinedPair(t, alice, bob, "public_chat")
	laptop := login(t, srv, "alice")
	uploadKeys(t, alice, &mautrix.ReqUploadKeys{DeviceKeys: deviceKeysOf(alice, "phone")})
	uploadKeys(t, laptop, &mautrix.ReqUploadKeys{DeviceKeys: deviceKeysOf(laptop, "laptop"), OneTimeKeys: oneTimeKeys(laptop, "L", 3)})
	start, err := syncOnce(t.Context(), bob, "", 0, "")
	if err != nil {
		t.Fatal(err)
	}
	own, err := syncOnce(t.Context(), alice, "", 0, "")
	if err != nil {
		t.Fatal(err)
	}
	if _, err := laptop.Logout(t.Context()); err != nil {
		t.Fatal(err)
	}
	got := syncUntil(t, bob, start.NextBatch, func(r *mautrix.RespSync) bool { return len(r.DeviceLists.Changed) > 0 })
	if !slices.Equal(got.DeviceLists.Changed, []id.UserID{alice.UserID}) {
		t.Fatalf("bob's device_lists after alice's logout: %+v", got.DeviceLists)
	}
	// Alice's remaining device hears of its sibling's removal too.
	syncUntil(t, alice, own.NextBatch, func(r *mautrix.RespSync) bool { return slices.Contains(r.DeviceLists.Changed, alice.UserID) })
	resp := queryKeys(t, bob, alice.UserID)
	if devs := resp.DeviceKeys[alice.UserID]; len(devs) != 1 || devs[alice.DeviceID].DeviceID != alice.DeviceID {
		t.Fatalf("alice's devices after the logout: %+v", devs)
	}
	if _, ok := claimOne(t, bob, laptop); ok {
		t.Fatal("claimed a one-time key of a logged-out device")
	}
}

func TestKeysBadInput(t *testing.T) {
	srv := apitest.Start(t, "")
	alice := newUser(t, srv, "alice")
	bob := newUser(t, srv, "bob")

	// Device keys of someone else, or of another device.
	dk := deviceKeysOf(alice, "x")
	dk.UserID = bob.UserID
	_, err := alice.UploadKeys(t.Context(), &mautrix.ReqUploadKeys{DeviceKeys: dk})
	wantMatrixError(t, err, mautrix.MBadJSON, 400)
	dk = deviceKeysOf(alice, "x")
	dk.DeviceID = "OTHERDEVICE"
	_, err = alice.UploadKeys(t.Context(), &mautrix.ReqUploadKeys{DeviceKeys: dk})
	wantMatrixError(t, err, mautrix.MBadJSON, 400)

	post := func(path string, body any) error {
		_, err := alice.MakeRequest(t.Context(), http.MethodPost, alice.BuildClientURL("v3", "keys", path), body, nil)
		return err
	}
	for _, tc := range []struct {
		path string
		body any
		want mautrix.RespError
	}{
		{"upload", []int{1}, mautrix.MBadJSON},
		{"upload", "keys", mautrix.MBadJSON},
		{"upload", map[string]any{"device_keys": "nope"}, mautrix.MBadJSON},
		{"upload", map[string]any{"device_keys": nil}, mautrix.MBadJSON},
		{"upload", map[string]any{"device_keys": map[string]any{"user_id": alice.UserID, "device_id": alice.DeviceID}}, mautrix.MBadJSON},
		{"upload", map[string]any{"one_time_keys": map[string]any{"nocolon": "k"}}, mautrix.MBadJSON},
		{"upload", map[string]any{"one_time_keys": map[string]any{"signed_curve25519:A": 5}}, mautrix.MBadJSON},
		{"upload", map[string]any{"one_time_keys": map[string]any{"signed_curve25519:A": map[string]any{"signatures": map[string]any{}}}}, mautrix.MBadJSON},
		{"upload", map[string]any{"fallback_keys": map[string]any{"signed_curve25519:A": "a", "signed_curve25519:B": "b"}}, mautrix.MInvalidParam},
		{"query", []int{1}, mautrix.MBadJSON},
		{"query", map[string]any{}, mautrix.MBadJSON},
		{"query", map[string]any{"device_keys": map[string]any{string(alice.UserID): "all"}}, mautrix.MBadJSON},
		{"query", map[string]any{"device_keys": map[string]any{"not a user": []string{}}}, mautrix.MInvalidParam},
		{"claim", "claim", mautrix.MBadJSON},
		{"claim", map[string]any{"one_time_keys": map[string]any{string(alice.UserID): []string{"x"}}}, mautrix.MBadJSON},
		{"claim", map[string]any{"one_time_keys": map[string]any{"bob": map[string]string{"D": "signed_curve25519"}}}, mautrix.MInvalidParam},
	} {
		err := post(tc.path, tc.body)
		var httpErr mautrix.HTTPError
		if err == nil || !errors.As(err, &httpErr) || httpErr.Response.StatusCode != 400 || httpErr.RespError == nil || httpErr.RespError.ErrCode != tc.want.ErrCode {
			t.Errorf("POST /keys/%s %v: %v, want 400 %s", tc.path, tc.body, err, tc.want.ErrCode)
		}
	}
	for _, q := range []string{"", "?from=garbage", "?from=s1&to=garbage"} {
		_, err := alice.MakeRequest(t.Context(), http.MethodGet, alice.BuildClientURL("v3", "keys", "changes")+q, nil, nil)
		var httpErr mautrix.HTTPError
		if err == nil || !errors.As(err, &httpErr) || httpErr.Response.StatusCode != 400 {
			t.Errorf("GET /keys/changes%s: %v, want 400", q, err)
		}
	}
}
