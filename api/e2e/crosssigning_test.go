package e2e

import (
	"errors"
	"slices"
	"testing"

	"maunium.net/go/mautrix"
	"maunium.net/go/mautrix/crypto/signatures"
	"maunium.net/go/mautrix/id"

	"chronicle/api/apitest"
)

// crossSigningKeys makes up a user's three cross-signing keys; each
// public key is "<usage>-<tag>-<localpart>".
func crossSigningKeys(cli *mautrix.Client, tag string) *mautrix.UploadCrossSigningKeysReq[any] {
	key := func(usage id.CrossSigningUsage) mautrix.CrossSigningKeys {
		pub := id.Ed25519(string(usage) + "-" + tag + "-" + cli.UserID.Localpart())
		k := mautrix.CrossSigningKeys{UserID: cli.UserID, Usage: []id.CrossSigningUsage{usage},
			Keys: map[id.KeyID]id.Ed25519{id.NewKeyID(id.KeyAlgorithmEd25519, string(pub)): pub}}
		if usage != id.XSUsageMaster {
			k.Signatures = signatures.Signatures{cli.UserID: {id.NewKeyID(id.KeyAlgorithmEd25519, "master-"+tag+"-"+cli.UserID.Localpart()): "sig"}}
		}
		return k
	}
	return &mautrix.UploadCrossSigningKeysReq[any]{Master: key(id.XSUsageMaster), SelfSigning: key(id.XSUsageSelfSigning), UserSigning: key(id.XSUsageUserSigning)}
}

func pubOf(k mautrix.CrossSigningKeys) string { return string(k.FirstKey()) }

func TestCrossSigningUploadQueryAndReset(t *testing.T) {
	srv := apitest.Start(t, "")
	alice := newUser(t, srv, "alice")
	bob := newUser(t, srv, "bob")
	joinedPair(t, alice, bob, "public_chat")
	start, err := syncOnce(t.Context(), bob, "", 0, "")
	if err != nil {
		t.Fatal(err)
	}

	// Setting up cross-signing needs no user-interactive auth, and doing it
	// again with the same keys neither.
	keys := crossSigningKeys(alice, "1")
	for range 2 {
		if err := alice.UploadCrossSigningKeys(t.Context(), keys, nil); err != nil {
			t.Fatalf("first cross-signing upload: %v", err)
		}
	}
	got := syncUntil(t, bob, start.NextBatch, func(r *mautrix.RespSync) bool { return len(r.DeviceLists.Changed) > 0 })
	if !slices.Equal(got.DeviceLists.Changed, []id.UserID{alice.UserID}) {
		t.Fatalf("bob's device_lists after alice's cross-signing keys: %+v", got.DeviceLists)
	}

	query := func(cli *mautrix.Client) *mautrix.RespQueryKeys { return queryKeys(t, cli, alice.UserID) }
	seen := query(bob)
	if pubOf(seen.MasterKeys[alice.UserID]) != pubOf(keys.Master) || pubOf(seen.SelfSigningKeys[alice.UserID]) != pubOf(keys.SelfSigning) {
		t.Fatalf("bob's view of alice's keys: %+v", seen)
	}
	if _, ok := seen.UserSigningKeys[alice.UserID]; ok {
		t.Fatal("bob sees alice's user-signing key")
	}
	if own := query(alice); pubOf(own.UserSigningKeys[alice.UserID]) != pubOf(keys.UserSigning) {
		t.Fatalf("alice does not see her own user-signing key: %+v", own.UserSigningKeys)
	}

	// Replacing the keys needs her password.
	reset := crossSigningKeys(alice, "2")
	err = alice.UploadCrossSigningKeys(t.Context(), reset, nil)
	var httpErr mautrix.HTTPError
	if !errors.As(err, &httpErr) || httpErr.Response.StatusCode != 401 {
		t.Fatalf("reset without auth: %v, want a 401 challenge", err)
	}
	wrong := func(*mautrix.RespUserInteractive) any {
		return map[string]any{"type": "m.login.password", "identifier": map[string]any{"type": "m.id.user", "user": "alice"}, "password": "wrong"}
	}
	if err := alice.UploadCrossSigningKeys(t.Context(), crossSigningKeys(alice, "2"), wrong); err == nil {
		t.Fatal("reset with a wrong password accepted")
	}
	right := func(uia *mautrix.RespUserInteractive) any {
		return map[string]any{"type": "m.login.password", "identifier": map[string]any{"type": "m.id.user", "user": "alice"},
			"password": passwordOf("alice"), "session": uia.Session}
	}
	if err := alice.UploadCrossSigningKeys(t.Context(), crossSigningKeys(alice, "2"), right); err != nil {
		t.Fatalf("reset with the password: %v", err)
	}
	if now := query(bob); pubOf(now.MasterKeys[alice.UserID]) != pubOf(reset.Master) {
		t.Fatalf("master key after the reset: %+v", now.MasterKeys)
	}
}

func TestSignaturesUpload(t *testing.T) {
	srv := apitest.Start(t, "")
	alice := newUser(t, srv, "alice")
	bob := newUser(t, srv, "bob")
	carol := newUser(t, srv, "carol")
	joinedPair(t, alice, bob, "public_chat")
	uploadKeys(t, alice, &mautrix.ReqUploadKeys{DeviceKeys: deviceKeysOf(alice, "a")})
	aliceKeys, bobKeys := crossSigningKeys(alice, "1"), crossSigningKeys(bob, "1")
	for _, u := range []struct {
		cli  *mautrix.Client
		keys *mautrix.UploadCrossSigningKeysReq[any]
	}{{alice, aliceKeys}, {bob, bobKeys}} {
		if err := u.cli.UploadCrossSigningKeys(t.Context(), u.keys, nil); err != nil {
			t.Fatal(err)
		}
	}
	bobStart, err := syncOnce(t.Context(), bob, "", 0, "")
	if err != nil {
		t.Fatal(err)
	}

	// Alice's self-signing key signs her device.
	dk := deviceKeysOf(alice, "a")
	sskSig := id.NewKeyID(id.KeyAlgorithmEd25519, pubOf(aliceKeys.SelfSigning))
	signedDevice := mautrix.ReqKeysSignatures{UserID: alice.UserID, DeviceID: alice.DeviceID, Algorithms: dk.Algorithms,
		Keys: map[id.KeyID]string{}, Signatures: signatures.Signatures{alice.UserID: {sskSig: "ssk-signature"}}}
	for k, v := range dk.Keys {
		signedDevice.Keys[id.KeyID(k)] = v
	}
	resp, err := alice.UploadSignatures(t.Context(), &mautrix.ReqUploadSignatures{alice.UserID: {string(alice.DeviceID): signedDevice}})
	if err != nil || len(resp.Failures) != 0 {
		t.Fatalf("alice signs her device: %+v %v", resp, err)
	}
	// Bob's user-signing key signs alice's master key.
	uskSig := id.NewKeyID(id.KeyAlgorithmEd25519, pubOf(bobKeys.UserSigning))
	master := aliceKeys.Master
	signedMaster := mautrix.ReqKeysSignatures{UserID: alice.UserID, Usage: master.Usage, Keys: map[id.KeyID]string{},
		Signatures: signatures.Signatures{bob.UserID: {uskSig: "usk-signature"}}}
	for k, v := range master.Keys {
		signedMaster.Keys[k] = string(v)
	}
	resp, err = bob.UploadSignatures(t.Context(), &mautrix.ReqUploadSignatures{alice.UserID: {pubOf(master): signedMaster}})
	if err != nil || len(resp.Failures) != 0 {
		t.Fatalf("bob signs alice's master key: %+v %v", resp, err)
	}
	// A signature on something the server does not hold is refused.
	bogus := signedMaster
	bogus.Keys = map[id.KeyID]string{"ed25519:other": "other"}
	resp, err = bob.UploadSignatures(t.Context(), &mautrix.ReqUploadSignatures{alice.UserID: {pubOf(master): bogus, "NOSUCHDEVICE": signedDevice}})
	if err != nil || len(resp.Failures) != 1 {
		t.Fatalf("bogus signatures: %+v %v", resp, err)
	}

	query := func(cli *mautrix.Client) *mautrix.RespQueryKeys { return queryKeys(t, cli, alice.UserID) }
	byBob := query(bob)
	if byBob.DeviceKeys[alice.UserID][alice.DeviceID].Signatures[alice.UserID][sskSig] != "ssk-signature" {
		t.Fatalf("alice's device lacks her self-signing signature: %+v", byBob.DeviceKeys[alice.UserID][alice.DeviceID].Signatures)
	}
	if byBob.MasterKeys[alice.UserID].Signatures[bob.UserID][uskSig] != "usk-signature" {
		t.Fatalf("bob does not see his signature on alice's master key: %+v", byBob.MasterKeys[alice.UserID].Signatures)
	}
	if byCarol := query(carol); byCarol.MasterKeys[alice.UserID].Signatures[bob.UserID] != nil {
		t.Fatal("carol sees bob's signature on alice's master key")
	}
	// Bob's own sync names alice as changed (his view of her changed).
	syncUntil(t, bob, bobStart.NextBatch, func(r *mautrix.RespSync) bool { return slices.Contains(r.DeviceLists.Changed, alice.UserID) })
}
