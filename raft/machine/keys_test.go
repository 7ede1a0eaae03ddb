package machine

import (
	"encoding/json"
	"fmt"
	"slices"
	"testing"

	"github.com/cockroachdb/pebble/v2"

	"chronicle/projections/e2ekeys"
)

// identity returns a DeviceKeys object (canonical JSON, as the API sends
// it) for a device, with a key and a signature made up from the tags.
func identity(user, device, keyTag, sigTag string) json.RawMessage {
	return json.RawMessage(fmt.Sprintf(`{"algorithms":["m.olm.v1.curve25519-aes-sha2"],"device_id":%q,"keys":{"curve25519:%s":"c-%s","ed25519:%s":"e-%s"},"signatures":{%q:{"ed25519:%s":"sig-%s"}},"user_id":%q}`,
		device, device, keyTag, device, keyTag, user, device, sigTag, user))
}

func otk(keyID, key string) UploadedKey {
	return UploadedKey{Algorithm: "signed_curve25519", KeyID: keyID, Key: json.RawMessage(fmt.Sprintf(`{"key":%q,"signatures":{"@x:localhost":{"ed25519:X":"s"}}}`, key))}
}

func claimOne(w *workload, claimer, user, device string) *ClaimedKey {
	w.t.Helper()
	res := w.ok(CmdClaimKeys, claimer, "", &ClaimKeys{Claims: []KeyClaim{{UserID: user, DeviceID: device, Algorithm: "signed_curve25519"}}})
	if len(res.Claimed) == 0 {
		return nil
	}
	return &res.Claimed[0]
}

func counts(t *testing.T, m *Machine, user, device string) map[string]int {
	t.Helper()
	var out map[string]int
	view(t, m, func(r pebble.Reader) {
		var err error
		if out, err = e2ekeys.OneTimeKeyCounts(r, user, device); err != nil {
			t.Fatal(err)
		}
	})
	return out
}

func TestClaimGivesKeysOutInUploadOrder(t *testing.T) {
	m, w, _ := userDataFixture(t)
	alice, bob := uid("alice"), uid("bob")
	w.ok(CmdUploadKeys, alice, "Dalice", &UploadKeys{OneTimeKeys: []UploadedKey{otk("BBB", "b"), otk("AAA", "a")}})
	w.ok(CmdUploadKeys, alice, "Dalice", &UploadKeys{OneTimeKeys: []UploadedKey{otk("000", "z")}})
	if c := counts(t, m, alice, "Dalice"); c["signed_curve25519"] != 3 {
		t.Fatalf("counts after upload: %v", c)
	}
	var got []string
	for range 3 {
		k := claimOne(w, bob, alice, "Dalice")
		if k == nil {
			t.Fatal("a claim found no key while some were left")
		}
		got = append(got, k.KeyID)
	}
	// The first upload's keys (smallest ID first), then the second's.
	if !slices.Equal(got, []string{"AAA", "BBB", "000"}) {
		t.Fatalf("claimed %v", got)
	}
	if k := claimOne(w, bob, alice, "Dalice"); k != nil {
		t.Fatalf("claim from an empty pool gave %+v", k)
	}
	if c := counts(t, m, alice, "Dalice"); len(c) != 0 {
		t.Fatalf("counts after claiming all: %v", c)
	}
	// A claimed key ID may be uploaded again (it left the pool).
	w.ok(CmdUploadKeys, alice, "Dalice", &UploadKeys{OneTimeKeys: []UploadedKey{otk("AAA", "a2")}})
	if k := claimOne(w, bob, alice, "Dalice"); k == nil || k.KeyID != "AAA" || !json.Valid(k.Key) {
		t.Fatalf("claim of the re-uploaded key: %+v", k)
	}
}

func TestUploadKeepsIdentityKeysAndKeyIDs(t *testing.T) {
	m, w, _ := userDataFixture(t)
	alice := uid("alice")
	w.ok(CmdUploadKeys, alice, "Dalice", &UploadKeys{DeviceKeys: identity(alice, "Dalice", "1", "1"), OneTimeKeys: []UploadedKey{otk("K1", "one")}})

	head := w.head()
	w.ok(CmdUploadKeys, alice, "Dalice", &UploadKeys{DeviceKeys: identity(alice, "Dalice", "1", "1"), OneTimeKeys: []UploadedKey{otk("K1", "one")}})
	if w.head() != head {
		t.Fatal("an identical re-upload wrote records")
	}
	// Other keys for the same device: refused, nothing written.
	w.rej(KindInvalidParam, CmdUploadKeys, alice, "Dalice", &UploadKeys{DeviceKeys: identity(alice, "Dalice", "2", "1")})
	// A key ID already in the pool with other content: refused, and the
	// whole upload with it.
	w.rej(KindInvalidParam, CmdUploadKeys, alice, "Dalice", &UploadKeys{OneTimeKeys: []UploadedKey{otk("K2", "two"), otk("K1", "other")}})
	if c := counts(t, m, alice, "Dalice"); c["signed_curve25519"] != 1 {
		t.Fatalf("a refused upload changed the pool: %v", c)
	}
	// The same keys signed anew: accepted, a device list change.
	w.ok(CmdUploadKeys, alice, "Dalice", &UploadKeys{DeviceKeys: identity(alice, "Dalice", "1", "2")})
	if w.head().Seq != head.Seq+1 {
		t.Fatalf("re-signed keys wrote %d records", w.head().Seq-head.Seq)
	}
	// Keys for another user or device, or from a device that is gone.
	w.rej(KindBadJSON, CmdUploadKeys, alice, "Dalice", &UploadKeys{DeviceKeys: identity(uid("bob"), "Dalice", "1", "1")})
	w.rej(KindBadJSON, CmdUploadKeys, alice, "Dalice", &UploadKeys{DeviceKeys: identity(alice, "OTHER", "1", "1")})
	w.rej(KindUnknownToken, CmdUploadKeys, alice, "GONE", &UploadKeys{OneTimeKeys: []UploadedKey{otk("K9", "x")}})
	w.rej(KindInvalidParam, CmdUploadKeys, alice, "Dalice", &UploadKeys{FallbackKeys: []UploadedKey{otk("F1", "f"), otk("F2", "g")}})
}

func TestFallbackKeyIsMarkedUsedNotConsumed(t *testing.T) {
	m, w, _ := userDataFixture(t)
	alice, bob := uid("alice"), uid("bob")
	unused := func() []string {
		var out []string
		view(t, m, func(r pebble.Reader) { out, _ = e2ekeys.UnusedFallbackKeyTypes(r, alice, "Dalice") })
		return out
	}
	w.ok(CmdUploadKeys, alice, "Dalice", &UploadKeys{OneTimeKeys: []UploadedKey{otk("O1", "o")}, FallbackKeys: []UploadedKey{otk("F1", "f")}})
	if got := unused(); !slices.Equal(got, []string{"signed_curve25519"}) {
		t.Fatalf("unused fallback types %v", got)
	}
	if k := claimOne(w, bob, alice, "Dalice"); k == nil || k.KeyID != "O1" {
		t.Fatalf("first claim %+v, want the one-time key", k)
	}
	for i := range 2 {
		head := w.head()
		k := claimOne(w, bob, alice, "Dalice")
		if k == nil || k.KeyID != "F1" {
			t.Fatalf("claim %d on an empty pool gave %+v, want the fallback key", i, k)
		}
		if wrote := w.head().Seq - head.Seq; wrote != uint64(1-i) {
			t.Fatalf("claim %d of the fallback key wrote %d records", i, wrote)
		}
	}
	if got := unused(); len(got) != 0 {
		t.Fatalf("unused fallback types after use %v", got)
	}
	// The same key again does not make it look unused; a new one does.
	w.ok(CmdUploadKeys, alice, "Dalice", &UploadKeys{FallbackKeys: []UploadedKey{otk("F1", "f")}})
	if got := unused(); len(got) != 0 {
		t.Fatalf("re-uploading the used key made it unused: %v", got)
	}
	w.ok(CmdUploadKeys, alice, "Dalice", &UploadKeys{FallbackKeys: []UploadedKey{otk("F2", "g")}})
	if got := unused(); !slices.Equal(got, []string{"signed_curve25519"}) {
		t.Fatalf("unused fallback types after a new key %v", got)
	}
}

func TestLogoutDropsTheDevicesKeys(t *testing.T) {
	m, w, _ := userDataFixture(t)
	alice := uid("alice")
	w.ok(CmdLogin, alice, "", &Login{DeviceID: "LAPTOP", TokenHash: tokenHash(alice, "LAPTOP")})
	w.ok(CmdUploadKeys, alice, "LAPTOP", &UploadKeys{DeviceKeys: identity(alice, "LAPTOP", "1", "1"),
		OneTimeKeys: []UploadedKey{otk("O1", "o")}, FallbackKeys: []UploadedKey{otk("F1", "f")}})
	before := w.head()
	w.ok(CmdLogout, alice, "LAPTOP", &Logout{})
	view(t, m, func(r pebble.Reader) {
		if has, err := e2ekeys.HasKeys(r, alice, "LAPTOP"); err != nil || has {
			t.Fatalf("keys left after logout: %v %v", has, err)
		}
		changes, _, err := e2ekeys.DeviceListChanges(r, before.Seq, w.head().Seq, 0)
		if err != nil || len(changes) != 1 || changes[0].User != alice {
			t.Fatalf("device list changes of the logout: %+v %v", changes, err)
		}
	})
	// A device without keys logs out without a key record.
	w.ok(CmdLogin, alice, "", &Login{DeviceID: "PHONE", TokenHash: tokenHash(alice, "PHONE")})
	before = w.head()
	w.ok(CmdLogout, alice, "PHONE", &Logout{})
	if w.head().Seq != before.Seq+1 {
		t.Fatalf("logout of a device without keys wrote %d records", w.head().Seq-before.Seq)
	}
}

// buildKeysWorkload adds key uploads, claims and a refused upload to the
// determinism workload; bob's BDEV2 logs out afterwards, dropping its keys.
// Every accepted command writes a record (the checkpoint test expects it):
// three claims take alice's one-time keys, the fourth her fallback key.
func buildKeysWorkload(w *workload, alice, bob string) {
	w.ok(CmdUploadKeys, alice, "ADEV", &UploadKeys{DeviceKeys: identity(alice, "ADEV", "a", "a"),
		OneTimeKeys: []UploadedKey{otk("A2", "a2"), otk("A1", "a1"), otk("A3", "a3")}, FallbackKeys: []UploadedKey{otk("AF", "af")}})
	w.ok(CmdUploadKeys, bob, "BDEV2", &UploadKeys{DeviceKeys: identity(bob, "BDEV2", "b", "b"), OneTimeKeys: []UploadedKey{otk("B1", "b1")}})
	w.rej(KindInvalidParam, CmdUploadKeys, alice, "ADEV", &UploadKeys{DeviceKeys: identity(alice, "ADEV", "changed", "a")})
	for range 4 {
		w.ok(CmdClaimKeys, bob, "BDEV", &ClaimKeys{Claims: []KeyClaim{
			{UserID: alice, DeviceID: "ADEV", Algorithm: "signed_curve25519"},
			{UserID: bob, DeviceID: "BDEV2", Algorithm: "signed_curve25519"},
			{UserID: alice, DeviceID: "NOSUCH", Algorithm: "signed_curve25519"},
		}})
	}
	// Cross-signing: set up, a refused reset, signatures of both kinds.
	w.ok(CmdUploadCrossSigningKeys, alice, "ADEV", &UploadCrossSigningKeys{Master: crossKey(alice, "master", "AM"),
		SelfSigning: crossKey(alice, "self_signing", "AS"), UserSigning: crossKey(alice, "user_signing", "AU")})
	w.rej(KindAuthRequired, CmdUploadCrossSigningKeys, alice, "ADEV", &UploadCrossSigningKeys{Master: crossKey(alice, "master", "AM2")})
	w.ok(CmdUploadCrossSigningKeys, bob, "BDEV", &UploadCrossSigningKeys{Master: crossKey(bob, "master", "BM"), UserSigning: crossKey(bob, "user_signing", "BU")})
	w.ok(CmdUploadSignatures, alice, "ADEV", &UploadSignatures{Keys: []SignedKey{
		{UserID: alice, KeyID: "ADEV", Object: signed(identity(alice, "ADEV", "a", "a"), alice, "AS")},
		{UserID: alice, KeyID: "AM", Object: signed(crossKey(alice, "master", "AM"), alice, "ADEV")},
	}})
	w.ok(CmdUploadSignatures, bob, "BDEV", &UploadSignatures{Keys: []SignedKey{{UserID: alice, KeyID: "AM", Object: signed(crossKey(alice, "master", "AM"), bob, "BU")}}})
}

// crossKey is a made-up cross-signing key of user with public key pub.
func crossKey(user, usage, pub string) json.RawMessage {
	return json.RawMessage(fmt.Sprintf(`{"keys":{"ed25519:%s":%q},"usage":[%q],"user_id":%q}`, pub, pub, usage, user))
}

// signed is obj (a JSON object) with signatures by signer's key.
func signed(obj json.RawMessage, signer, signerKey string) json.RawMessage {
	var m map[string]any
	_ = json.Unmarshal(obj, &m)
	m["signatures"] = map[string]any{signer: map[string]string{"ed25519:" + signerKey: "sig-by-" + signerKey}}
	b, _ := json.Marshal(m)
	return b
}

func TestCrossSigningKeysAndSignatures(t *testing.T) {
	m, w, _ := userDataFixture(t)
	alice, bob := uid("alice"), uid("bob")
	aliceKeys := &UploadCrossSigningKeys{Master: crossKey(alice, "master", "AM"), SelfSigning: crossKey(alice, "self_signing", "AS"), UserSigning: crossKey(alice, "user_signing", "AU")}
	w.rej(KindMissingParam, CmdUploadCrossSigningKeys, alice, "Dalice", &UploadCrossSigningKeys{SelfSigning: aliceKeys.SelfSigning})
	w.rej(KindInvalidParam, CmdUploadCrossSigningKeys, alice, "Dalice", &UploadCrossSigningKeys{Master: crossKey(bob, "master", "BM")})
	w.rej(KindInvalidParam, CmdUploadCrossSigningKeys, alice, "Dalice", &UploadCrossSigningKeys{Master: crossKey(alice, "self_signing", "AM")})
	w.ok(CmdUploadCrossSigningKeys, alice, "Dalice", aliceKeys) // first setup: no auth needed
	head := w.head()
	w.ok(CmdUploadCrossSigningKeys, alice, "Dalice", aliceKeys)
	if w.head() != head {
		t.Fatal("uploading the same keys again wrote records")
	}
	reset := &UploadCrossSigningKeys{Master: crossKey(alice, "master", "AM2")}
	w.rej(KindAuthRequired, CmdUploadCrossSigningKeys, alice, "Dalice", reset)
	reset.Authenticated = true
	w.ok(CmdUploadCrossSigningKeys, alice, "Dalice", reset)

	w.ok(CmdUploadKeys, alice, "Dalice", &UploadKeys{DeviceKeys: identity(alice, "Dalice", "1", "1")})
	w.ok(CmdUploadCrossSigningKeys, bob, "Dbob", &UploadCrossSigningKeys{Master: crossKey(bob, "master", "BM"), UserSigning: crossKey(bob, "user_signing", "BU")})
	res := w.ok(CmdUploadSignatures, bob, "Dbob", &UploadSignatures{Keys: []SignedKey{
		{UserID: alice, KeyID: "AM2", Object: signed(crossKey(alice, "master", "AM2"), bob, "BU")},       // by bob's user-signing key: kept
		{UserID: alice, KeyID: "AM", Object: signed(crossKey(alice, "master", "AM"), bob, "BU")},         // not her master key any more
		{UserID: alice, KeyID: "AM2", Object: signed(crossKey(alice, "master", "XX"), bob, "BU")},        // another object
		{UserID: alice, KeyID: "Dalice", Object: signed(identity(alice, "Dalice", "1", "1"), bob, "BU")}, // bob cannot sign her devices
	}})
	if len(res.SignatureFailures) != 3 {
		t.Fatalf("failures %+v", res.SignatureFailures)
	}
	res = w.ok(CmdUploadSignatures, alice, "Dalice", &UploadSignatures{Keys: []SignedKey{
		{UserID: alice, KeyID: "Dalice", Object: signed(identity(alice, "Dalice", "1", "1"), alice, "AS")}, // her self-signing key
		{UserID: alice, KeyID: "AM2", Object: signed(crossKey(alice, "master", "AM2"), alice, "Dalice")},   // her device vouches
	}})
	if len(res.SignatureFailures) != 0 {
		t.Fatalf("failures %+v", res.SignatureFailures)
	}
	view(t, m, func(r pebble.Reader) {
		for _, c := range []struct{ keyID, signer, signerKey string }{{"AM2", bob, "ed25519:BU"}, {"Dalice", alice, "ed25519:AS"}, {"AM2", alice, "ed25519:Dalice"}} {
			sigs, err := e2ekeys.Signatures(r, alice, c.keyID)
			if err != nil || !slices.ContainsFunc(sigs, func(s e2ekeys.Signature) bool { return s.Signer == c.signer && s.SignerKeyID == c.signerKey }) {
				t.Errorf("signature on %s by %s %s: %+v %v", c.keyID, c.signer, c.signerKey, sigs, err)
			}
		}
		changes, _, _ := e2ekeys.DeviceListChanges(r, 0, w.head().Seq, 0)
		var bobsSignature *e2ekeys.DeviceListChange
		for i, c := range changes {
			if c.OnlyFor == bob {
				bobsSignature = &changes[i]
			}
		}
		if bobsSignature == nil || bobsSignature.User != alice {
			t.Errorf("bob's signature on alice's key is not a change for bob alone: %+v", changes)
		}
	})
}
