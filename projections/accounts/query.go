package accounts

import (
	"fmt"

	"github.com/cockroachdb/pebble/v2"

	"chronicle/projections"
)

// GetUser returns the account or nil.
func GetUser(r pebble.Reader, userID string) (*User, error) {
	return projections.Lookup[User](r, userKey(userID))
}

// GetDevice returns the device or nil.
func GetDevice(r pebble.Reader, userID, deviceID string) (*Device, error) {
	return projections.Lookup[Device](r, deviceKey(userID, deviceID))
}

// SessionByToken resolves the SHA-256 of an access token, or nil.
func SessionByToken(r pebble.Reader, tokenHash [32]byte) (*Session, error) {
	return projections.Lookup[Session](r, tokenKey(tokenHash))
}

// DeviceIDs lists a user's devices in ID order.
func DeviceIDs(r pebble.Reader, userID string) ([]string, error) {
	p := devicePrefix(userID)
	it, err := r.NewIter(&pebble.IterOptions{LowerBound: p, UpperBound: p.End()})
	if err != nil {
		return nil, fmt.Errorf("list devices of %s: %w", userID, err)
	}
	defer it.Close()
	var ids []string
	for it.First(); it.Valid(); it.Next() {
		k := it.Key()[len(p):]
		ids = append(ids, string(k[:len(k)-1]))
	}
	return ids, it.Error()
}
