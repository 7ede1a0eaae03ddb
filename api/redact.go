package api

import (
	"bytes"
	"encoding/json"
	"net/http"
	"strings"

	"github.com/labstack/echo/v4"

	"chronicle/raft/machine"
)

// redactEvent is PUT /rooms/{roomId}/redact/{eventId}/{txnId}. The body
// ({reason?} and anything else the client adds) becomes the redaction's
// content; the state machine decides the power rule and authors the event
// (raft/machine/redact.go). A retried txnId answers with the first event.
func (s *Server) redactEvent(c echo.Context) error {
	roomID, eventID, txnID := c.Param("roomId"), c.Param("eventId"), c.Param("txnId")
	if !strings.HasPrefix(roomID, "!") || !validKeyPart(roomID) {
		return errInvalidParam("invalid room ID")
	}
	if !strings.HasPrefix(eventID, "$") || !validKeyPart(eventID) {
		return errInvalidParam("invalid event ID")
	}
	if txnID == "" || !validKeyPart(txnID) {
		return errInvalidParam("invalid transaction ID")
	}
	raw, err := readBody(c)
	if err != nil {
		return err
	}
	// Some clients send no body at all; that is a redaction without reason.
	content := json.RawMessage("{}")
	if len(bytes.TrimSpace(raw)) > 0 {
		var obj map[string]json.RawMessage
		if err := decodeJSON(raw, &obj, false); err != nil {
			return err
		}
		if obj == nil {
			return errBadJSON("the request body must be a JSON object")
		}
		if reason, ok := obj["reason"]; ok {
			var s string
			if json.Unmarshal(reason, &s) != nil {
				return errBadJSON("reason must be a string")
			}
		}
		content = bytes.TrimSpace(raw)
	}
	r := requester(c)
	res, err := s.submitCmd(c, machine.CmdRedact, r.UserID, r.DeviceID, &machine.Redact{
		RoomID: roomID, EventID: eventID, Content: content, TxnID: txnID,
	})
	if err != nil {
		return err
	}
	return c.JSON(http.StatusOK, map[string]string{"event_id": res.EventID})
}
