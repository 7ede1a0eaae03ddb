package audit

import (
	"encoding/json"

	"github.com/cockroachdb/pebble/v2"

	"chronicle/projections/accounts"
	"chronicle/projections/profiles"
)

// profileAt fills ans with a user's profile as of position seq, read from
// the profiles projection's history in r (the live store): no replay.
func profileAt(r pebble.Reader, seq uint64, userID string, ans *Answer) error {
	u, err := accounts.GetUser(r, userID)
	if err != nil {
		return err
	}
	// Accounts are never removed, so the live record of the registration
	// tells whether the user existed then.
	if u == nil || u.Seq > seq {
		return questionf("%s was not registered at position %d", userID, seq)
	}
	fields, err := profiles.ProfileAt(r, userID, seq)
	if err != nil {
		return err
	}
	ans.Profile = make(map[string]json.RawMessage, len(fields))
	for _, f := range fields {
		ans.Profile[f.Key] = f.Value
	}
	return nil
}
