package accounts

import (
	"fmt"

	rlog "chronicle/log"
	"chronicle/projections"
	"chronicle/projections/facts"
)

// User is a registered account.
type User struct {
	PasswordHash string `msgpack:"p"`
	Guest        bool   `msgpack:"g"`
	Seq          uint64 `msgpack:"s"`
}

// Device is one logged-in device of a user.
type Device struct {
	DisplayName string   `msgpack:"n"`
	TokenHash   [32]byte `msgpack:"t"`
	// LastSeenTS is the time of the record that last issued its token.
	LastSeenTS int64 `msgpack:"l"`
}

// Session is what an access token authenticates as.
type Session struct {
	UserID   string `msgpack:"u"`
	DeviceID string `msgpack:"d"`
}

// Projection folds account records.
type Projection struct{}

func (Projection) Name() string    { return "accounts" }
func (Projection) Version() uint32 { return 1 }
func (Projection) Prefix() byte    { return Prefix }

// Apply folds one record.
func (Projection) Apply(w projections.Writer, rec *rlog.Record) error {
	switch rec.Type {
	case facts.TypeAccountRegistered:
		var f facts.AccountRegistered
		if err := facts.Decode(rec.Body, &f); err != nil {
			return err
		}
		return projections.SetMsgpack(w, userKey(f.UserID), &User{PasswordHash: f.PasswordHash, Guest: f.Guest, Seq: rec.Seq})
	case facts.TypeSessionStarted:
		var f facts.SessionStarted
		if err := facts.Decode(rec.Body, &f); err != nil {
			return err
		}
		if err := endSession(w, f.UserID, f.DeviceID); err != nil {
			return err
		}
		if err := projections.SetMsgpack(w, deviceKey(f.UserID, f.DeviceID), &Device{DisplayName: f.DisplayName, TokenHash: f.TokenHash, LastSeenTS: rec.Time}); err != nil {
			return err
		}
		return projections.SetMsgpack(w, tokenKey(f.TokenHash), &Session{UserID: f.UserID, DeviceID: f.DeviceID})
	case facts.TypeSessionEnded:
		var f facts.SessionEnded
		if err := facts.Decode(rec.Body, &f); err != nil {
			return err
		}
		return endSession(w, f.UserID, f.DeviceID)
	}
	return nil
}

// endSession removes a device and its token, if present.
func endSession(w projections.Writer, userID, deviceID string) error {
	var d Device
	found, err := projections.GetMsgpack(w, deviceKey(userID, deviceID), &d)
	if err != nil || !found {
		return err
	}
	if err := w.Delete(tokenKey(d.TokenHash), nil); err != nil {
		return fmt.Errorf("delete token of %s/%s: %w", userID, deviceID, err)
	}
	if err := w.Delete(deviceKey(userID, deviceID), nil); err != nil {
		return fmt.Errorf("delete device %s/%s: %w", userID, deviceID, err)
	}
	return nil
}
