package e2e

import (
	"encoding/json"
	"io"
	"net/http"
	"testing"

	"maunium.net/go/mautrix"
	"maunium.net/go/mautrix/id"

	"chronicle/api/apitest"
)

type listedReport struct {
	ID       string `json:"id"`
	Kind     string `json:"kind"`
	Reporter string `json:"reporter"`
	TS       int64  `json:"received_ts"`
	RoomID   string `json:"room_id"`
	EventID  string `json:"event_id"`
	UserID   string `json:"user_id"`
	Reason   string `json:"reason"`
	Score    *int   `json:"score"`
}

// listReports calls GET /_chronicle/v1/reports with token as the bearer
// and returns the status and the decoded body.
func listReports(t *testing.T, srv *apitest.Server, token, query string) (int, map[string]json.RawMessage) {
	t.Helper()
	req, err := http.NewRequestWithContext(t.Context(), http.MethodGet, srv.URL+"/_chronicle/v1/reports"+query, nil)
	if err != nil {
		t.Fatal(err)
	}
	if token != "" {
		req.Header.Set("Authorization", "Bearer "+token)
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatalf("list reports: %v", err)
	}
	defer resp.Body.Close()
	raw, err := io.ReadAll(resp.Body)
	if err != nil {
		t.Fatal(err)
	}
	var body map[string]json.RawMessage
	if err := json.Unmarshal(raw, &body); err != nil {
		t.Fatalf("list reports answered %d with %q: %v", resp.StatusCode, raw, err)
	}
	return resp.StatusCode, body
}

func TestReports(t *testing.T) {
	t.Parallel()
	srv := apitest.Start(t, "")
	alice := newUser(t, srv, "alice")
	bob := newUser(t, srv, "bob")
	carol := newUser(t, srv, "carol")
	roomID := joinedPair(t, alice, bob, "private_chat")
	other := newRoom(t, alice, &mautrix.ReqCreateRoom{Preset: "private_chat"})
	offending := sendText(t, alice, roomID, "t1", "something offensive")
	elsewhere := sendText(t, alice, other, "t2", "elsewhere")

	t.Run("event reports need the reporter in the room", func(t *testing.T) {
		var out map[string]any
		_, err := bob.MakeRequest(t.Context(), http.MethodPost, bob.BuildClientURL("v3", "rooms", roomID, "report", offending),
			map[string]any{"reason": "rude", "score": -50}, &out)
		if err != nil {
			t.Fatalf("bob reports an event: %v", err)
		}
		// Not in the room, an unknown event, an event of another room: all
		// the same 404, so nothing leaks.
		wantMatrixError(t, carol.ReportEvent(t.Context(), roomID, offending, "not mine to report"), mautrix.MNotFound, 404)
		wantMatrixError(t, bob.ReportEvent(t.Context(), roomID, id.EventID("$doesnotexist"), "x"), mautrix.MNotFound, 404)
		wantMatrixError(t, bob.ReportEvent(t.Context(), roomID, elsewhere, "x"), mautrix.MNotFound, 404)
	})
	t.Run("room and user reports need no shared room", func(t *testing.T) {
		if err := carol.ReportRoom(t.Context(), roomID, "a room carol is not in"); err != nil {
			t.Fatalf("report room: %v", err)
		}
		if err := carol.ReportUser(t.Context(), alice.UserID, "spam"); err != nil {
			t.Fatalf("report user: %v", err)
		}
		wantMatrixError(t, carol.ReportRoom(t.Context(), id.RoomID("!missing:"+apitest.ServerName), "x"), mautrix.MNotFound, 404)
		wantMatrixError(t, carol.ReportUser(t.Context(), userID("nobody"), "x"), mautrix.MNotFound, 404)
	})

	t.Run("administrators list the reports", func(t *testing.T) {
		status, body := listReports(t, srv, apitest.Secret, "")
		if status != http.StatusOK {
			t.Fatalf("list reports: HTTP %d %s", status, body)
		}
		var list []listedReport
		if err := json.Unmarshal(body["reports"], &list); err != nil {
			t.Fatalf("reports: %v", err)
		}
		if len(list) != 3 {
			t.Fatalf("%d reports listed, want 3: %+v", len(list), list)
		}
		ev, room, user := list[0], list[1], list[2]
		if ev.Kind != "event" || ev.Reporter != bob.UserID.String() || ev.RoomID != roomID.String() || ev.EventID != offending.String() ||
			ev.Reason != "rude" || ev.Score == nil || *ev.Score != -50 || ev.TS == 0 {
			t.Errorf("event report %+v", ev)
		}
		if room.Kind != "room" || room.Reporter != carol.UserID.String() || room.RoomID != roomID.String() || room.EventID != "" {
			t.Errorf("room report %+v", room)
		}
		if user.Kind != "user" || user.UserID != alice.UserID.String() || user.Reason != "spam" {
			t.Errorf("user report %+v", user)
		}
		// Paging.
		_, page := listReports(t, srv, apitest.Secret, "?limit=2")
		var next string
		if err := json.Unmarshal(page["next_batch"], &next); err != nil || next != room.ID {
			t.Fatalf("first page of 2: next_batch %s, want %s", page["next_batch"], room.ID)
		}
		_, page = listReports(t, srv, apitest.Secret, "?limit=2&from="+next)
		var rest []listedReport
		_ = json.Unmarshal(page["reports"], &rest)
		if len(rest) != 1 || rest[0].ID != user.ID || page["next_batch"] != nil {
			t.Fatalf("second page %+v, next_batch %s", rest, page["next_batch"])
		}
	})
	t.Run("normal users may not list reports", func(t *testing.T) {
		status, body := listReports(t, srv, bob.AccessToken, "")
		if status != http.StatusForbidden || string(body["errcode"]) != `"M_FORBIDDEN"` {
			t.Fatalf("bob lists reports: HTTP %d %s", status, body)
		}
		status, body = listReports(t, srv, "", "")
		if status != http.StatusUnauthorized || string(body["errcode"]) != `"M_MISSING_TOKEN"` {
			t.Fatalf("anonymous list: HTTP %d %s", status, body)
		}
	})
}
