package machine

import (
	"encoding/json"
	"fmt"

	"github.com/vmihailenco/msgpack/v5"

	"chronicle/projections/accounts"
	"chronicle/projections/facts"
)

func decodeMsgpack(b []byte, v any) error { return msgpack.Unmarshal(b, v) }

func (x *applyCtx) register() (*Result, error) {
	var p Register
	if rej := x.payload(&p); rej != nil {
		return &Result{Err: rej}, nil
	}
	u, err := accounts.GetUser(x.b, p.UserID)
	if err != nil {
		return nil, err
	}
	if u != nil {
		// Decided here, so two nodes racing for one name cannot both win.
		return &Result{Err: reject(KindUserInUse, "user ID %s is already taken", p.UserID)}, nil
	}
	if err := x.emit(facts.TypeAccountRegistered, &facts.AccountRegistered{UserID: p.UserID, PasswordHash: p.PasswordHash, Guest: p.Guest}); err != nil {
		return nil, err
	}
	// Every account starts with a displayname (profile.go), so that member
	// events and push rules' contains_display_name have one.
	name, err := json.Marshal(defaultDisplayName(p.UserID))
	if err != nil {
		return nil, fmt.Errorf("default displayname of %s: %w", p.UserID, err)
	}
	if err := x.emit(facts.TypeProfileFieldSet, &facts.ProfileFieldSet{UserID: p.UserID, Key: ProfileDisplayName, Value: name}); err != nil {
		return nil, err
	}
	if !p.InhibitLogin {
		if err := x.emit(facts.TypeSessionStarted, &facts.SessionStarted{UserID: p.UserID, DeviceID: p.DeviceID, DisplayName: p.DisplayName, TokenHash: p.TokenHash}); err != nil {
			return nil, err
		}
	}
	return &Result{}, nil
}

func (x *applyCtx) login() (*Result, error) {
	var p Login
	if rej := x.payload(&p); rej != nil {
		return &Result{Err: rej}, nil
	}
	u, err := accounts.GetUser(x.b, x.cmd.Actor)
	if err != nil {
		return nil, err
	}
	if u == nil {
		return &Result{Err: reject(KindForbidden, "invalid username or password")}, nil
	}
	if err := x.emit(facts.TypeSessionStarted, &facts.SessionStarted{UserID: x.cmd.Actor, DeviceID: p.DeviceID, DisplayName: p.DisplayName, TokenHash: p.TokenHash}); err != nil {
		return nil, err
	}
	return &Result{}, nil
}

func (x *applyCtx) logout(all bool) (*Result, error) {
	devices := []string{x.cmd.Device}
	if all {
		var err error
		if devices, err = accounts.DeviceIDs(x.b, x.cmd.Actor); err != nil {
			return nil, err
		}
	} else if d, err := accounts.GetDevice(x.b, x.cmd.Actor, x.cmd.Device); err != nil {
		return nil, err
	} else if d == nil {
		return &Result{Err: reject(KindUnknownToken, "unknown device")}, nil
	}
	for _, id := range devices {
		if err := x.emit(facts.TypeSessionEnded, &facts.SessionEnded{UserID: x.cmd.Actor, DeviceID: id}); err != nil {
			return nil, err
		}
		if err := x.dropDeviceKeys(x.cmd.Actor, id); err != nil { // keys.go
			return nil, err
		}
	}
	return &Result{}, nil
}
