package api

import (
	"encoding/json"
	"maps"
	"net/http"
	"slices"

	"github.com/cockroachdb/pebble/v2"
	"github.com/labstack/echo/v4"
	"maunium.net/go/mautrix/id"

	rlog "chronicle/log"
	"chronicle/projections/accounts"
	"chronicle/projections/e2ekeys"
	"chronicle/raft/machine"
)

// End-to-end encryption keys: /keys/upload, /keys/query, /keys/claim and
// /keys/changes. Uploads and claims are commands; a claim consumes a
// one-time key, so the state machine decides which one (raft/machine/
// keys.go). Queries read the e2ekeys projection.

func (s *Server) uploadKeys(c echo.Context) error {
	r := requester(c)
	raw, err := readObject(c)
	if err != nil {
		return err
	}
	var body struct {
		DeviceKeys   json.RawMessage            `json:"device_keys"`
		OneTimeKeys  map[string]json.RawMessage `json:"one_time_keys"`
		FallbackKeys map[string]json.RawMessage `json:"fallback_keys"`
	}
	if err := decodeJSON(raw, &body, false); err != nil {
		return err
	}
	cmd := &machine.UploadKeys{}
	if body.DeviceKeys != nil {
		if cmd.DeviceKeys, err = parseDeviceKeys(body.DeviceKeys, r); err != nil {
			return err
		}
	}
	if cmd.OneTimeKeys, err = parseKeyMap("one_time_keys", body.OneTimeKeys); err != nil {
		return err
	}
	if cmd.FallbackKeys, err = parseKeyMap("fallback_keys", body.FallbackKeys); err != nil {
		return err
	}
	for i := 1; i < len(cmd.FallbackKeys); i++ {
		if cmd.FallbackKeys[i].Algorithm == cmd.FallbackKeys[i-1].Algorithm {
			return errInvalidParam("There can be at most one fallback key per algorithm")
		}
	}
	if cmd.DeviceKeys != nil || len(cmd.OneTimeKeys) > 0 || len(cmd.FallbackKeys) > 0 {
		if _, err := s.submitCmd(c, machine.CmdUploadKeys, r.UserID, r.DeviceID, cmd); err != nil {
			return err
		}
	}
	var counts map[string]int
	if err := s.state.View(func(rd pebble.Reader) error {
		var err error
		counts, err = oneTimeKeyCounts(rd, r.UserID, r.DeviceID)
		return err
	}); err != nil {
		return err
	}
	return c.JSON(http.StatusOK, map[string]any{"one_time_key_counts": counts})
}

// oneTimeKeyCounts is a device's unclaimed one-time keys per algorithm,
// with signed_curve25519 always present, as Synapse answers.
func oneTimeKeyCounts(r pebble.Reader, user, device string) (map[string]int, error) {
	counts, err := e2ekeys.OneTimeKeyCounts(r, user, device)
	if err != nil {
		return nil, err
	}
	if _, ok := counts["signed_curve25519"]; !ok {
		counts["signed_curve25519"] = 0
	}
	return counts, nil
}

// remoteFailures is what a query or claim reports for users of other
// servers: this server does not federate.
func remoteFailures(servers []string) map[string]any {
	out := map[string]any{}
	for _, srv := range servers {
		out[srv] = map[string]any{"status": 503, "message": "Federation is not available on this server"}
	}
	return out
}

// splitLocal sorts user IDs into local ones and the servers of the others;
// an invalid user ID is M_INVALID_PARAM, as Synapse answers.
func (s *Server) splitLocal(users []string) (local []string, remote []string, err error) {
	for _, u := range users {
		if !validUserID(u) {
			return nil, nil, errInvalidParam("Invalid user ID " + quote(u))
		}
		if server := id.UserID(u).Homeserver(); server != s.cfg.ServerName {
			if !slices.Contains(remote, server) {
				remote = append(remote, server)
			}
			continue
		}
		local = append(local, u)
	}
	slices.Sort(local)
	slices.Sort(remote)
	return local, remote, nil
}

func (s *Server) queryKeys(c echo.Context) error {
	r := requester(c)
	raw, err := readObject(c)
	if err != nil {
		return err
	}
	var body struct {
		DeviceKeys map[string][]string `json:"device_keys"`
	}
	if err := decodeJSON(raw, &body, false); err != nil {
		return err
	}
	if body.DeviceKeys == nil {
		return errBadJSON("device_keys must be a JSON object")
	}
	users := make([]string, 0, len(body.DeviceKeys))
	for u := range body.DeviceKeys {
		users = append(users, u)
	}
	local, remote, err := s.splitLocal(users)
	if err != nil {
		return err
	}
	resp := &keysQueryResponse{
		DeviceKeys: map[string]map[string]json.RawMessage{}, Failures: remoteFailures(remote),
		MasterKeys: map[string]json.RawMessage{}, SelfSigningKeys: map[string]json.RawMessage{}, UserSigningKeys: map[string]json.RawMessage{},
	}
	err = s.state.View(func(rd pebble.Reader) error {
		for _, u := range local {
			if err := resp.addUser(rd, r.UserID, u, body.DeviceKeys[u]); err != nil {
				return err
			}
		}
		return nil
	})
	if err != nil {
		return err
	}
	return c.JSON(http.StatusOK, resp)
}

type keysQueryResponse struct {
	Failures        map[string]any                        `json:"failures"`
	DeviceKeys      map[string]map[string]json.RawMessage `json:"device_keys"`
	MasterKeys      map[string]json.RawMessage            `json:"master_keys"`
	SelfSigningKeys map[string]json.RawMessage            `json:"self_signing_keys"`
	UserSigningKeys map[string]json.RawMessage            `json:"user_signing_keys"`
}

// addUser adds a user's devices (those asked for, or all when none are)
// and cross-signing keys as the requester may see them.
func (q *keysQueryResponse) addUser(r pebble.Reader, requester, user string, devices []string) error {
	all, err := e2ekeys.UserDeviceKeys(r, user)
	if err != nil {
		return err
	}
	out := map[string]json.RawMessage{}
	for _, dk := range all {
		if len(devices) > 0 && !slices.Contains(devices, dk.DeviceID) {
			continue
		}
		dev, err := accounts.GetDevice(r, user, dk.DeviceID)
		if err != nil {
			return err
		}
		unsigned := map[string]any{}
		if dev != nil && dev.DisplayName != "" {
			unsigned["device_display_name"] = dev.DisplayName
		}
		rendered, err := renderKey(r, dk.Keys, user, dk.DeviceID, unsigned, user)
		if err != nil {
			return err
		}
		out[dk.DeviceID] = rendered
	}
	q.DeviceKeys[user] = out
	return q.addCrossSigning(r, requester, user)
}

// renderKey returns a stored key object with the uploaded signatures the
// requester may see merged in (see crossSigningSignatures), and unsigned
// set when given.
func renderKey(r pebble.Reader, stored []byte, user, keyID string, unsigned map[string]any, visibleTo ...string) (json.RawMessage, error) {
	var obj map[string]json.RawMessage
	if err := json.Unmarshal(stored, &obj); err != nil {
		return nil, err
	}
	sigs, err := e2ekeys.Signatures(r, user, keyID)
	if err != nil {
		return nil, err
	}
	if len(sigs) > 0 {
		merged := map[string]map[string]string{}
		_ = json.Unmarshal(obj["signatures"], &merged)
		for _, sg := range sigs {
			if !slices.Contains(visibleTo, sg.Signer) {
				continue
			}
			if merged[sg.Signer] == nil {
				merged[sg.Signer] = map[string]string{}
			}
			merged[sg.Signer][sg.SignerKeyID] = sg.Signature
		}
		if obj["signatures"], err = json.Marshal(merged); err != nil {
			return nil, err
		}
	}
	if unsigned != nil {
		if obj["unsigned"], err = json.Marshal(unsigned); err != nil {
			return nil, err
		}
	}
	return json.Marshal(obj)
}

func (s *Server) claimKeys(c echo.Context) error {
	r := requester(c)
	raw, err := readObject(c)
	if err != nil {
		return err
	}
	var body struct {
		OneTimeKeys map[string]map[string]string `json:"one_time_keys"`
	}
	if err := decodeJSON(raw, &body, false); err != nil {
		return err
	}
	users := make([]string, 0, len(body.OneTimeKeys))
	for u := range body.OneTimeKeys {
		users = append(users, u)
	}
	local, remote, err := s.splitLocal(users)
	if err != nil {
		return err
	}
	cmd := &machine.ClaimKeys{}
	for _, u := range local {
		devices := body.OneTimeKeys[u]
		for _, d := range slices.Sorted(maps.Keys(devices)) {
			alg := devices[d]
			if !validKeyPart(d) || !validKeyPart(alg) || alg == "" {
				return errInvalidParam("Invalid device ID or algorithm in one_time_keys")
			}
			cmd.Claims = append(cmd.Claims, machine.KeyClaim{UserID: u, DeviceID: d, Algorithm: alg})
		}
	}
	out := map[string]map[string]map[string]json.RawMessage{}
	if len(cmd.Claims) > 0 {
		res, err := s.submitCmd(c, machine.CmdClaimKeys, r.UserID, r.DeviceID, cmd)
		if err != nil {
			return err
		}
		for _, k := range res.Claimed {
			if out[k.UserID] == nil {
				out[k.UserID] = map[string]map[string]json.RawMessage{}
			}
			out[k.UserID][k.DeviceID] = map[string]json.RawMessage{k.Algorithm + ":" + k.KeyID: k.Key}
		}
	}
	return c.JSON(http.StatusOK, map[string]any{"one_time_keys": out, "failures": remoteFailures(remote)})
}

func (s *Server) keyChanges(c echo.Context) error {
	r := requester(c)
	fromTok := c.QueryParam("from")
	if fromTok == "" {
		return errMissingParam("from is required")
	}
	from, ok := parseToken(fromTok)
	if !ok {
		return errInvalidParam("invalid from token")
	}
	to := uint64(0) // the head, when absent (Synapse ignores to altogether)
	if tok := c.QueryParam("to"); tok != "" {
		if to, ok = parseToken(tok); !ok {
			return errInvalidParam("invalid to token")
		}
	}
	if err := s.waitForPosition(c.Request().Context(), max(from, to)); err != nil {
		return err
	}
	var lists *deviceLists
	err := s.state.View(func(rd pebble.Reader) error {
		head, err := rlog.ReadHead(rd)
		if err != nil {
			return err
		}
		if to == 0 || to > head.Seq {
			to = head.Seq
		}
		lists, err = deviceListsBetween(rd, r.UserID, from, to)
		return err
	})
	if err != nil {
		return err
	}
	return c.JSON(http.StatusOK, lists)
}
