package machine

import (
	"bytes"
	"encoding/json"
	"fmt"
	"reflect"
	"slices"
	"strings"

	"chronicle/projections/e2ekeys"
	"chronicle/projections/facts"
)

// Cross-signing: /keys/device_signing/upload and /keys/signatures/upload.
// Signatures are stored as given (the server does not verify them); the
// machine checks only that a signature is by the key the spec says signs
// that target, and that the signed object is the key the server holds.
const (
	CmdUploadCrossSigningKeys = "upload_cross_signing_keys"
	CmdUploadSignatures       = "upload_signatures"
)

// UploadCrossSigningKeys sets the actor's cross-signing keys (canonical
// JSON; nil for a key not uploaded). Authenticated says the API node
// completed user-interactive authentication for it.
type UploadCrossSigningKeys struct {
	Master        json.RawMessage `msgpack:"m"`
	SelfSigning   json.RawMessage `msgpack:"s"`
	UserSigning   json.RawMessage `msgpack:"u"`
	Authenticated bool            `msgpack:"a"`
}

// SignedKey is one key with the signatures the actor adds to it: UserID's
// device KeyID, or UserID's master key (KeyID its public key).
type SignedKey struct {
	UserID string          `msgpack:"u"`
	KeyID  string          `msgpack:"k"`
	Object json.RawMessage `msgpack:"o"`
}

// UploadSignatures adds the actor's signatures to keys.
type UploadSignatures struct {
	Keys []SignedKey `msgpack:"k"`
}

// SignatureFailure is a key whose signatures were not stored.
type SignatureFailure struct {
	UserID  string `msgpack:"u"`
	KeyID   string `msgpack:"k"`
	Errcode string `msgpack:"c"`
	Error   string `msgpack:"e"`
}

// decideCrossSigning handles the commands above; ok is false for other
// types.
func (x *applyCtx) decideCrossSigning() (res *Result, ok bool, err error) {
	switch x.cmd.Type {
	case CmdUploadCrossSigningKeys:
		res, err = x.uploadCrossSigningKeys()
	case CmdUploadSignatures:
		res, err = x.uploadSignatures()
	default:
		return nil, false, nil
	}
	return res, true, err
}

// uploadCrossSigningKeys stores the keys uploaded. As the spec (v1.11) and
// Synapse have it, setting up cross-signing needs no user-interactive
// auth; replacing any key does, while uploading exactly the keys already
// held is a no-op either way (a retry after a lost response).
func (x *applyCtx) uploadCrossSigningKeys() (*Result, error) {
	var p UploadCrossSigningKeys
	if rej := x.payload(&p); rej != nil {
		return &Result{Err: rej}, nil
	}
	user := x.cmd.Actor
	uploads := []struct {
		usage string
		key   json.RawMessage
	}{{e2ekeys.UsageMaster, p.Master}, {e2ekeys.UsageSelfSigning, p.SelfSigning}, {e2ekeys.UsageUserSigning, p.UserSigning}}
	master, err := e2ekeys.GetCrossSigningKey(x.b, user, e2ekeys.UsageMaster)
	if err != nil {
		return nil, err
	}
	if p.Master == nil && master == nil && (p.SelfSigning != nil || p.UserSigning != nil) {
		return &Result{Err: reject(KindMissingParam, "No master key available")}, nil
	}
	var changed []int
	for i, u := range uploads {
		if u.key == nil {
			continue
		}
		if rej := checkCrossSigningKey(u.key, user, u.usage); rej != nil {
			return &Result{Err: rej}, nil
		}
		cur, err := e2ekeys.GetCrossSigningKey(x.b, user, u.usage)
		if err != nil {
			return nil, err
		}
		if cur == nil || !bytes.Equal(cur.Key, u.key) {
			changed = append(changed, i)
		}
	}
	if len(changed) == 0 {
		return &Result{}, nil
	}
	if master != nil && !p.Authenticated {
		return &Result{Err: reject(KindAuthRequired, "replacing cross-signing keys needs user-interactive authentication")}, nil
	}
	for _, i := range changed {
		if err := x.emit(facts.TypeCrossSigningKeySet, &facts.CrossSigningKeySet{UserID: user, Usage: uploads[i].usage, Key: uploads[i].key}); err != nil {
			return nil, err
		}
	}
	return &Result{}, nil
}

// checkCrossSigningKey checks what Synapse checks of an uploaded key short
// of its signatures: it is the user's, for the usage, with one ed25519
// key.
func checkCrossSigningKey(raw json.RawMessage, user, usage string) *Rejection {
	var k struct {
		UserID string            `json:"user_id"`
		Usage  []string          `json:"usage"`
		Keys   map[string]string `json:"keys"`
	}
	if err := json.Unmarshal(raw, &k); err != nil {
		return reject(KindBadJSON, "invalid %s key: %v", usage, err)
	}
	if k.UserID != user || !slices.Contains(k.Usage, usage) {
		return reject(KindInvalidParam, "Invalid %s key: it must be %s's, with usage %s", usage, user, usage)
	}
	if len(k.Keys) != 1 || e2ekeys.PublicKey(raw) == "" {
		return reject(KindInvalidParam, "Invalid %s key: it must hold exactly one ed25519 key", usage)
	}
	return nil
}

// uploadSignatures stores each key's signatures by the actor that the
// spec's scheme allows: on the actor's own devices, by their self-signing
// key; on their own master key, by their devices; on another user's
// master key, by their user-signing key. Keys that fail are reported, the
// others stored.
func (x *applyCtx) uploadSignatures() (*Result, error) {
	var p UploadSignatures
	if rej := x.payload(&p); rej != nil {
		return &Result{Err: rej}, nil
	}
	keys := slices.SortedFunc(slices.Values(p.Keys), func(a, b SignedKey) int {
		if c := strings.Compare(a.UserID, b.UserID); c != 0 {
			return c
		}
		return strings.Compare(a.KeyID, b.KeyID)
	})
	res := &Result{}
	for _, k := range keys {
		fail, err := x.addSignatures(k)
		if err != nil {
			return nil, err
		}
		if fail != nil {
			res.SignatureFailures = append(res.SignatureFailures, *fail)
		}
	}
	return res, nil
}

func (x *applyCtx) addSignatures(k SignedKey) (*SignatureFailure, error) {
	me := x.cmd.Actor
	failf := func(code, format string, args ...any) *SignatureFailure {
		return &SignatureFailure{UserID: k.UserID, KeyID: k.KeyID, Errcode: code, Error: fmt.Sprintf(format, args...)}
	}
	stored, allowed, fail, err := x.signatureTarget(k)
	if err != nil || fail != "" {
		if fail != "" {
			return failf("M_NOT_FOUND", "%s", fail), err
		}
		return nil, err
	}
	if !sameSignedObject(stored, k.Object) {
		return failf("M_INVALID_SIGNATURE", "the signed object is not the key %s of %s held here", k.KeyID, k.UserID), nil
	}
	var obj struct {
		Signatures map[string]map[string]string `json:"signatures"`
	}
	_ = json.Unmarshal(k.Object, &obj)
	mine := obj.Signatures[me]
	var signerKeys []string
	for signerKey := range mine {
		ok, err := allowed(signerKey)
		if err != nil {
			return nil, err
		}
		if ok {
			signerKeys = append(signerKeys, signerKey)
		}
	}
	if len(signerKeys) == 0 {
		return failf("M_INVALID_SIGNATURE", "no signature by a key of %s that may sign this key", me), nil
	}
	slices.Sort(signerKeys) // map order must not reach the log
	have, err := e2ekeys.Signatures(x.b, k.UserID, k.KeyID)
	if err != nil {
		return nil, err
	}
	for _, signerKey := range signerKeys {
		sig := e2ekeys.Signature{Signer: me, SignerKeyID: signerKey, Signature: mine[signerKey]}
		if slices.Contains(have, sig) {
			continue
		}
		if err := x.emit(facts.TypeSignatureAdded, &facts.SignatureAdded{UserID: k.UserID, KeyID: k.KeyID, Signer: me, SignerKeyID: signerKey, Signature: sig.Signature}); err != nil {
			return nil, err
		}
	}
	return nil, nil
}

// signatureTarget finds the key k signs and which of the actor's keys may
// sign it; fail says why there is none.
func (x *applyCtx) signatureTarget(k SignedKey) (stored []byte, allowed func(signerKey string) (bool, error), fail string, err error) {
	me := x.cmd.Actor
	byCrossSigningKey := func(usage string) (func(string) (bool, error), string, error) {
		key, err := e2ekeys.GetCrossSigningKey(x.b, me, usage)
		if err != nil || key == nil {
			return nil, fmt.Sprintf("%s has no %s key", me, usage), err
		}
		want := "ed25519:" + e2ekeys.PublicKey(key.Key)
		return func(signerKey string) (bool, error) { return signerKey == want, nil }, "", nil
	}
	master, err := e2ekeys.GetCrossSigningKey(x.b, k.UserID, e2ekeys.UsageMaster)
	if err != nil {
		return nil, nil, "", err
	}
	isMaster := master != nil && k.KeyID == e2ekeys.PublicKey(master.Key)
	switch {
	case k.UserID != me:
		if !isMaster {
			return nil, nil, fmt.Sprintf("%s is not the master key of %s", k.KeyID, k.UserID), nil
		}
		allowed, fail, err = byCrossSigningKey(e2ekeys.UsageUserSigning)
		return master.Key, allowed, fail, err
	case isMaster:
		// The user's devices vouch for their own master key.
		return master.Key, func(signerKey string) (bool, error) {
			dev, ok := strings.CutPrefix(signerKey, "ed25519:")
			if !ok {
				return false, nil
			}
			dk, err := e2ekeys.GetDeviceKeys(x.b, me, dev)
			return dk != nil, err
		}, "", nil
	default:
		dk, err := e2ekeys.GetDeviceKeys(x.b, me, k.KeyID)
		if err != nil || dk == nil {
			return nil, nil, fmt.Sprintf("%s has no device %s with keys", me, k.KeyID), err
		}
		allowed, fail, err = byCrossSigningKey(e2ekeys.UsageSelfSigning)
		return dk.Keys, allowed, fail, err
	}
}

// sameSignedObject reports whether an uploaded signed object is the stored
// key, ignoring signatures and unsigned (which signing changes).
func sameSignedObject(stored, uploaded []byte) bool {
	var a, b map[string]any
	if json.Unmarshal(stored, &a) != nil || json.Unmarshal(uploaded, &b) != nil {
		return false
	}
	for _, m := range []map[string]any{a, b} {
		delete(m, "signatures")
		delete(m, "unsigned")
	}
	return reflect.DeepEqual(a, b)
}
