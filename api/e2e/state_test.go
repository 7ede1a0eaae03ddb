package e2e

import (
	"maps"
	"testing"

	"maunium.net/go/mautrix"
	"maunium.net/go/mautrix/event"

	"chronicle/api/apitest"
)

func TestStateEndpoints(t *testing.T) {
	t.Parallel()
	srv := apitest.Start(t, "")
	alice := newUser(t, srv, "alice")
	roomID := newRoom(t, alice, &mautrix.ReqCreateRoom{Preset: "private_chat"})

	mood, status := stateType("org.chronicle.test.mood"), stateType("org.chronicle.test.status")
	for _, tc := range []struct {
		name     string
		typ      event.Type
		stateKey string
		content  map[string]any
	}{
		{"empty state key", mood, "", map[string]any{"mood": "sunny"}},
		{"empty state key replaced", mood, "", map[string]any{"mood": "cloudy"}},
		{"own user ID as state key", status, alice.UserID.String(), map[string]any{"status": "away", "since": "noon"}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			sent, err := alice.SendStateEvent(t.Context(), roomID, tc.typ, tc.stateKey, tc.content)
			if err != nil {
				t.Fatalf("PUT state: %v", err)
			}
			if !v12EventID.MatchString(sent.EventID.String()) {
				t.Errorf("event ID %q is not a room version 12 event ID", sent.EventID)
			}
			var got map[string]any
			if err := alice.StateEvent(t.Context(), roomID, tc.typ, tc.stateKey, &got); err != nil {
				t.Fatalf("GET state: %v", err)
			}
			if !maps.Equal(got, tc.content) {
				t.Fatalf("GET state = %v, want %v", got, tc.content)
			}
			full, err := alice.FullStateEvent(t.Context(), roomID, tc.typ, tc.stateKey)
			if err != nil {
				t.Fatalf("GET state ?format=event: %v", err)
			}
			if full.ID != sent.EventID || full.Sender != alice.UserID || full.GetStateKey() != tc.stateKey {
				t.Fatalf("GET state ?format=event = %s from %s key %q, want %s from %s key %q",
					full.ID, full.Sender, full.GetStateKey(), sent.EventID, alice.UserID, tc.stateKey)
			}
		})
	}

	t.Run("another user's ID as state key is forbidden", func(t *testing.T) {
		_, err := alice.SendStateEvent(t.Context(), roomID, status, userID("bob").String(), map[string]any{"status": "impersonated"})
		wantMatrixError(t, err, mautrix.MForbidden, 403)
	})

	t.Run("GET /state returns all current state", func(t *testing.T) {
		state, err := alice.State(t.Context(), roomID)
		if err != nil {
			t.Fatalf("GET /state: %v", err)
		}
		for _, want := range []struct {
			typ event.Type
			key string
		}{
			{event.StateCreate, ""},
			{event.StateMember, alice.UserID.String()},
			{event.StatePowerLevels, ""},
			{event.StateJoinRules, ""},
			{event.StateHistoryVisibility, ""},
			{event.StateGuestAccess, ""},
			{mood, ""},
			{status, alice.UserID.String()},
		} {
			if state[want.typ][want.key] == nil {
				t.Errorf("GET /state lacks %s/%q", want.typ.Type, want.key)
			}
		}
		if got := state[mood][""].Content.Raw["mood"]; got != "cloudy" {
			t.Errorf("GET /state has mood %v, want the latest (cloudy)", got)
		}
		var n int
		for _, byKey := range state {
			n += len(byKey)
		}
		if n != 8 {
			t.Errorf("GET /state returned %d events, want 8", n)
		}
	})

	t.Run("missing state is M_NOT_FOUND", func(t *testing.T) {
		for _, tc := range []struct {
			name     string
			typ      event.Type
			stateKey string
		}{
			{"unknown type", stateType("org.chronicle.test.absent"), ""},
			{"known type, unknown key", status, "@nobody:localhost"},
			{"state key on a keyless type", mood, "extra"},
		} {
			t.Run(tc.name, func(t *testing.T) {
				var got map[string]any
				err := alice.StateEvent(t.Context(), roomID, tc.typ, tc.stateKey, &got)
				wantMatrixError(t, err, mautrix.MNotFound, 404)
			})
		}
	})
}
