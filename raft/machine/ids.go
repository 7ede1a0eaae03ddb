package machine

import (
	"bytes"
	"encoding/json"

	"maunium.net/go/mautrix/id"
)

// ValidUserID accepts the spec's user IDs including historical ones: a
// localpart of printable ASCII except ':' (0x21-0x7E), and a server name.
// The API checks it to answer early; the machine checks it again because
// the log must never hold a member event for an impossible user.
func ValidUserID(u string) bool {
	localpart, server, err := id.UserID(u).ParseAndValidateRelaxed()
	if err != nil || localpart == "" || server == "" {
		return false
	}
	for i := 0; i < len(localpart); i++ {
		if c := localpart[i]; c < 0x21 || c > 0x7e || c == ':' {
			return false
		}
	}
	return true
}

func isJSONObject(raw []byte) bool {
	raw = bytes.TrimSpace(raw)
	if len(raw) == 0 || raw[0] != '{' {
		return false
	}
	var m map[string]json.RawMessage
	return json.Unmarshal(raw, &m) == nil
}
