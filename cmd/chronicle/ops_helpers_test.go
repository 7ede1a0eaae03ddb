package main

import (
	"bytes"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"slices"
	"testing"
	"time"
)

// Plain-HTTP Matrix client helpers for the operator command tests.

var opHTTP = &http.Client{Timeout: 30 * time.Second}

// opMatrixCall sends a client-API request and decodes the JSON answer into
// out (if not nil). It returns the status; transport errors are errors.
func opMatrixCall(method, base, path, token string, body, out any) (int, error) {
	var rd io.Reader
	if body != nil {
		b, err := json.Marshal(body)
		if err != nil {
			return 0, err
		}
		rd = bytes.NewReader(b)
	}
	req, err := http.NewRequest(method, base+"/_matrix/client/v3"+path, rd)
	if err != nil {
		return 0, err
	}
	if token != "" {
		req.Header.Set("Authorization", "Bearer "+token)
	}
	if body != nil {
		req.Header.Set("Content-Type", "application/json")
	}
	resp, err := opHTTP.Do(req)
	if err != nil {
		return 0, err
	}
	defer resp.Body.Close()
	raw, err := io.ReadAll(resp.Body)
	if err != nil {
		return resp.StatusCode, err
	}
	if resp.StatusCode != http.StatusOK {
		return resp.StatusCode, fmt.Errorf("%s %s: HTTP %d: %s", method, path, resp.StatusCode, raw)
	}
	if out != nil {
		if err := json.Unmarshal(raw, out); err != nil {
			return resp.StatusCode, fmt.Errorf("%s %s: decode %s: %w", method, path, raw, err)
		}
	}
	return resp.StatusCode, nil
}

func opPassword(user string) string { return "pw of " + user }

// opRegisterErr registers user (m.login.dummy) and returns its token.
func opRegisterErr(base, user string) (string, error) {
	var res struct {
		AccessToken string `json:"access_token"`
	}
	_, err := opMatrixCall(http.MethodPost, base, "/register", "", map[string]any{
		"username": user, "password": opPassword(user), "auth": map[string]string{"type": "m.login.dummy"},
	}, &res)
	if err == nil && res.AccessToken == "" {
		err = fmt.Errorf("register %s: no access token", user)
	}
	return res.AccessToken, err
}

func opRegister(t testing.TB, base, user string) string {
	t.Helper()
	tok, err := opRegisterErr(base, user)
	if err != nil {
		t.Fatalf("register %s: %v", user, err)
	}
	return tok
}

// opLoginErr logs user in with its password.
func opLoginErr(base, user string) (string, error) {
	var res struct {
		AccessToken string `json:"access_token"`
	}
	_, err := opMatrixCall(http.MethodPost, base, "/login", "", map[string]any{
		"type":       "m.login.password",
		"identifier": map[string]string{"type": "m.id.user", "user": user},
		"password":   opPassword(user),
	}, &res)
	if err == nil && res.AccessToken == "" {
		err = fmt.Errorf("login %s: no access token", user)
	}
	return res.AccessToken, err
}

func opLogin(t testing.TB, base, user string) string {
	t.Helper()
	tok, err := opLoginErr(base, user)
	if err != nil {
		t.Fatalf("login %s: %v", user, err)
	}
	return tok
}

func opCreateRoom(t testing.TB, base, token string, public bool) string {
	t.Helper()
	body := map[string]any{"name": "a room"}
	if public {
		body["preset"] = "public_chat"
	}
	var res struct {
		RoomID string `json:"room_id"`
	}
	if _, err := opMatrixCall(http.MethodPost, base, "/createRoom", token, body, &res); err != nil {
		t.Fatalf("create room: %v", err)
	}
	return res.RoomID
}

func opJoin(t testing.TB, base, token, roomID string) {
	t.Helper()
	if _, err := opMatrixCall(http.MethodPost, base, "/rooms/"+url.PathEscape(roomID)+"/join", token, map[string]any{}, nil); err != nil {
		t.Fatalf("join %s: %v", roomID, err)
	}
}

func opSendErr(base, token, roomID, txn, text string) error {
	_, err := opMatrixCall(http.MethodPut, base, "/rooms/"+url.PathEscape(roomID)+"/send/m.room.message/"+url.PathEscape(txn), token,
		map[string]any{"msgtype": "m.text", "body": text}, nil)
	return err
}

func opSend(t testing.TB, base, token, roomID, txn, text string) {
	t.Helper()
	if err := opSendErr(base, token, roomID, txn, text); err != nil {
		t.Fatalf("send to %s: %v", roomID, err)
	}
}

// opMessages returns the bodies of the room's m.room.message events, oldest
// first.
func opMessages(t testing.TB, base, token, roomID string) []string {
	t.Helper()
	var res struct {
		Chunk []struct {
			Type    string `json:"type"`
			Content struct {
				Body string `json:"body"`
			} `json:"content"`
		} `json:"chunk"`
	}
	if _, err := opMatrixCall(http.MethodGet, base, "/rooms/"+url.PathEscape(roomID)+"/messages?dir=b&limit=1000", token, nil, &res); err != nil {
		t.Fatalf("messages of %s: %v", roomID, err)
	}
	var out []string
	for _, ev := range res.Chunk {
		if ev.Type == "m.room.message" {
			out = append(out, ev.Content.Body)
		}
	}
	slices.Reverse(out)
	return out
}
