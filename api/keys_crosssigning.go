package api

import (
	"encoding/json"
	"errors"
	"net/http"
	"strings"

	"github.com/cockroachdb/pebble/v2"
	"github.com/labstack/echo/v4"
	"golang.org/x/crypto/bcrypt"

	"chronicle/projections/accounts"
	"chronicle/projections/e2ekeys"
	"chronicle/raft/machine"
)

// addCrossSigning adds a user's cross-signing keys to a /keys/query
// answer: the master and self-signing keys for anyone, the user-signing
// key only for its owner. A signature on a master key shows to its owner's
// readers when the owner made it (a device vouching for its master key),
// and otherwise only to the user who made it (their user-signing key's
// verdict on someone else), as the spec's "signatures the requesting user
// is allowed to see".
func (q *keysQueryResponse) addCrossSigning(r pebble.Reader, requester, user string) error {
	for _, usage := range []string{e2ekeys.UsageMaster, e2ekeys.UsageSelfSigning, e2ekeys.UsageUserSigning} {
		if usage == e2ekeys.UsageUserSigning && requester != user {
			continue
		}
		k, err := e2ekeys.GetCrossSigningKey(r, user, usage)
		if err != nil {
			return err
		}
		if k == nil {
			continue
		}
		rendered, err := renderKey(r, k.Key, user, e2ekeys.PublicKey(k.Key), nil, user, requester)
		if err != nil {
			return err
		}
		switch usage {
		case e2ekeys.UsageMaster:
			q.MasterKeys[user] = rendered
		case e2ekeys.UsageSelfSigning:
			q.SelfSigningKeys[user] = rendered
		default:
			q.UserSigningKeys[user] = rendered
		}
	}
	return nil
}

// crossSigningKeyInput is the spec's CrossSigningKey object.
type crossSigningKeyInput struct {
	UserID     *string                      `json:"user_id"`
	Usage      []string                     `json:"usage"`
	Keys       map[string]string            `json:"keys"`
	Signatures map[string]map[string]string `json:"signatures"`
}

// parseCrossSigningKey checks a key's shape and returns it canonical (nil
// when absent); whose key it is and its usage the state machine checks.
func parseCrossSigningKey(field string, raw json.RawMessage) (json.RawMessage, error) {
	if raw == nil || string(raw) == "null" {
		return nil, nil
	}
	if !isJSONObjectValue(raw) {
		return nil, errBadJSON(field + " must be a CrossSigningKey object")
	}
	var k crossSigningKeyInput
	if err := decodeJSON(raw, &k, false); err != nil {
		return nil, err
	}
	if k.UserID == nil || k.Usage == nil || k.Keys == nil {
		return nil, errBadJSON(field + " needs user_id, usage and keys")
	}
	return canonical(raw)
}

func (s *Server) uploadCrossSigningKeys(c echo.Context) error {
	r := requester(c)
	raw, err := readObject(c)
	if err != nil {
		return err
	}
	var body struct {
		MasterKey      json.RawMessage `json:"master_key"`
		SelfSigningKey json.RawMessage `json:"self_signing_key"`
		UserSigningKey json.RawMessage `json:"user_signing_key"`
		Auth           json.RawMessage `json:"auth"`
	}
	if err := decodeJSON(raw, &body, false); err != nil {
		return err
	}
	cmd := &machine.UploadCrossSigningKeys{}
	for _, k := range []struct {
		field string
		raw   json.RawMessage
		into  *json.RawMessage
	}{{"master_key", body.MasterKey, &cmd.Master}, {"self_signing_key", body.SelfSigningKey, &cmd.SelfSigning}, {"user_signing_key", body.UserSigningKey, &cmd.UserSigning}} {
		if *k.into, err = parseCrossSigningKey(k.field, k.raw); err != nil {
			return err
		}
	}
	if cmd.Master == nil && cmd.SelfSigning == nil && cmd.UserSigning == nil {
		return c.JSON(http.StatusOK, map[string]any{})
	}
	if len(body.Auth) > 0 && string(body.Auth) != "null" {
		ok, err := s.passwordAuth(r, body.Auth)
		if err != nil {
			return err
		}
		if !ok {
			return uiaChallenge(c, "M_FORBIDDEN", "Invalid password")
		}
		cmd.Authenticated = true
	}
	_, err = s.submitCmd(c, machine.CmdUploadCrossSigningKeys, r.UserID, r.DeviceID, cmd)
	var rej *machine.Rejection
	if errors.As(err, &rej) && rej.Kind == machine.KindAuthRequired {
		return uiaChallenge(c, "", "")
	}
	if err != nil {
		return err
	}
	return c.JSON(http.StatusOK, map[string]any{})
}

// uiaChallenge answers the user-interactive authentication challenge of
// an endpoint that needs the user's password. The one stage has nothing
// to remember, so the session is only an opaque token and any node can
// complete it. errcode and msg report a failed attempt.
func uiaChallenge(c echo.Context, errcode, msg string) error {
	body := map[string]any{
		"flows":   []map[string]any{{"stages": []string{"m.login.password"}}},
		"params":  map[string]any{},
		"session": randomID(24),
	}
	if errcode != "" {
		body["errcode"], body["error"], body["completed"] = errcode, msg, []string{}
	}
	return c.JSON(http.StatusUnauthorized, body)
}

// passwordAuth checks an m.login.password auth dict against the
// requester's password; ok is false for any other stage or a wrong
// password, or a password of another user.
func (s *Server) passwordAuth(r *Requester, raw json.RawMessage) (bool, error) {
	var auth struct {
		Type       string `json:"type"`
		Identifier struct {
			Type string `json:"type"`
			User string `json:"user"`
		} `json:"identifier"`
		User     string `json:"user"`
		Password string `json:"password"`
	}
	if err := decodeJSON(raw, &auth, false); err != nil {
		return false, err
	}
	if auth.Type != "m.login.password" || auth.Password == "" {
		return false, nil
	}
	who := auth.Identifier.User
	if who == "" {
		who = auth.User
	}
	if who != "" && who != r.UserID && "@"+strings.ToLower(who)+":"+s.cfg.ServerName != r.UserID {
		return false, nil
	}
	var u *accounts.User
	if err := s.state.View(func(rd pebble.Reader) error {
		var err error
		u, err = accounts.GetUser(rd, r.UserID)
		return err
	}); err != nil {
		return false, err
	}
	return u != nil && u.PasswordHash != "" && bcrypt.CompareHashAndPassword([]byte(u.PasswordHash), []byte(auth.Password)) == nil, nil
}

func (s *Server) uploadSignatures(c echo.Context) error {
	r := requester(c)
	raw, err := readObject(c)
	if err != nil {
		return err
	}
	var body map[string]map[string]json.RawMessage
	if err := decodeJSON(raw, &body, false); err != nil {
		return err
	}
	cmd := &machine.UploadSignatures{}
	for user, keys := range body {
		if !validUserID(user) {
			return errInvalidParam("Invalid user ID " + quote(user))
		}
		for keyID, obj := range keys {
			if !isJSONObjectValue(obj) || !validKeyPart(keyID) || keyID == "" {
				return errInvalidParam("each signed key must be a key object under its key ID")
			}
			canon, err := canonical(obj)
			if err != nil {
				return err
			}
			cmd.Keys = append(cmd.Keys, machine.SignedKey{UserID: user, KeyID: keyID, Object: canon})
		}
	}
	failures := map[string]map[string]any{}
	if len(cmd.Keys) > 0 {
		res, err := s.submitCmd(c, machine.CmdUploadSignatures, r.UserID, r.DeviceID, cmd)
		if err != nil {
			return err
		}
		for _, f := range res.SignatureFailures {
			if failures[f.UserID] == nil {
				failures[f.UserID] = map[string]any{}
			}
			status := 400
			if f.Errcode == "M_NOT_FOUND" {
				status = 404
			}
			failures[f.UserID][f.KeyID] = map[string]any{"status": status, "errcode": f.Errcode, "message": f.Error}
		}
	}
	return c.JSON(http.StatusOK, map[string]any{"failures": failures})
}
