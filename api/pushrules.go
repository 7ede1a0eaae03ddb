package api

import (
	"encoding/json"
	"errors"
	"net/http"

	"github.com/cockroachdb/pebble/v2"
	"github.com/labstack/echo/v4"

	"chronicle/projections/pushrules"
	"chronicle/raft/machine"
)

// Push rules (spec: Push Rules: API). The full ruleset is the
// server-default rules merged with the user's own (projections/pushrules);
// every change is a log record decided by the state machine
// (raft/machine/pushrules.go). Only the global scope exists.

// pushRulesError maps a validation error of package pushrules.
func pushRulesError(err error) error {
	if errors.Is(err, pushrules.ErrBadJSON) {
		return errBadJSON(err.Error())
	}
	if errors.Is(err, pushrules.ErrInvalid) {
		return errInvalidParam(err.Error())
	}
	return err
}

func (s *Server) loadRuleset(userID string) (*pushrules.Ruleset, error) {
	var rs *pushrules.Ruleset
	err := s.state.View(func(r pebble.Reader) error {
		var err error
		rs, err = pushrules.Load(r, userID)
		return err
	})
	return rs, err
}

// getPushRules is GET /pushrules/: every scope (only global).
func (s *Server) getPushRules(c echo.Context) error {
	rs, err := s.loadRuleset(requester(c).UserID)
	if err != nil {
		return err
	}
	return c.JSON(http.StatusOK, map[string]any{"global": rs})
}

// getPushRulesScope is GET /pushrules/global/.
func (s *Server) getPushRulesScope(c echo.Context) error {
	if err := checkScope(c); err != nil {
		return err
	}
	rs, err := s.loadRuleset(requester(c).UserID)
	if err != nil {
		return err
	}
	return c.JSON(http.StatusOK, rs)
}

func checkScope(c echo.Context) error {
	if c.Param("scope") != "global" {
		return errInvalidParam("Unknown push rule scope; only global exists")
	}
	return nil
}

// ruleParams reads scope, kind and rule ID from the path.
func ruleParams(c echo.Context) (kind, ruleID string, err error) {
	if err := checkScope(c); err != nil {
		return "", "", err
	}
	kind, ruleID = c.Param("kind"), c.Param("ruleId")
	if !pushrules.ValidKind(kind) {
		return "", "", errInvalidParam("Unknown push rule kind " + kind)
	}
	if ruleID == "" {
		return "", "", errInvalidParam("Missing rule ID")
	}
	return kind, ruleID, nil
}

// findRule returns the rule at the path, or M_NOT_FOUND.
func (s *Server) findRule(c echo.Context) (*pushrules.Rule, error) {
	kind, ruleID, err := ruleParams(c)
	if err != nil {
		return nil, err
	}
	rs, err := s.loadRuleset(requester(c).UserID)
	if err != nil {
		return nil, err
	}
	rule := rs.Find(kind, ruleID)
	if rule == nil {
		return nil, errNotFound("The push rule was not found.")
	}
	return rule, nil
}

func (s *Server) getPushRule(c echo.Context) error {
	rule, err := s.findRule(c)
	if err != nil {
		return err
	}
	return c.JSON(http.StatusOK, rule)
}

func (s *Server) getPushRuleEnabled(c echo.Context) error {
	rule, err := s.findRule(c)
	if err != nil {
		return err
	}
	return c.JSON(http.StatusOK, map[string]bool{"enabled": rule.Enabled})
}

func (s *Server) getPushRuleActions(c echo.Context) error {
	rule, err := s.findRule(c)
	if err != nil {
		return err
	}
	return c.JSON(http.StatusOK, map[string]json.RawMessage{"actions": rule.Actions})
}

func (s *Server) putPushRule(c echo.Context) error {
	kind, ruleID, err := ruleParams(c)
	if err != nil {
		return err
	}
	r := requester(c)
	var body struct {
		Actions    json.RawMessage `json:"actions"`
		Conditions json.RawMessage `json:"conditions"`
		Pattern    *string         `json:"pattern"`
	}
	if err := readJSON(c, &body, false); err != nil {
		return err
	}
	if body.Actions == nil {
		return errMissingParam("actions is required")
	}
	if _, _, _, err := pushrules.NormalizeRule(kind, ruleID, body.Actions, body.Conditions, body.Pattern); err != nil {
		return pushRulesError(err)
	}
	if _, err := s.submitCmd(c, machine.CmdPushRulePut, r.UserID, r.DeviceID, &machine.PushRulePut{
		Kind: kind, RuleID: ruleID, Actions: body.Actions, Conditions: body.Conditions, Pattern: body.Pattern,
		Before: c.QueryParam("before"), After: c.QueryParam("after"),
	}); err != nil {
		return err
	}
	return c.JSON(http.StatusOK, map[string]any{})
}

func (s *Server) deletePushRule(c echo.Context) error {
	kind, ruleID, err := ruleParams(c)
	if err != nil {
		return err
	}
	r := requester(c)
	return s.submitAndAck(c, r, machine.CmdPushRuleDelete, &machine.PushRuleDelete{Kind: kind, RuleID: ruleID})
}

func (s *Server) putPushRuleEnabled(c echo.Context) error {
	kind, ruleID, err := ruleParams(c)
	if err != nil {
		return err
	}
	r := requester(c)
	var body struct {
		Enabled *bool `json:"enabled"`
	}
	if err := readJSON(c, &body, false); err != nil {
		return err
	}
	if body.Enabled == nil {
		return errMissingParam("enabled is required")
	}
	return s.submitAndAck(c, r, machine.CmdPushRuleEnabled, &machine.PushRuleEnabled{Kind: kind, RuleID: ruleID, Enabled: *body.Enabled})
}

func (s *Server) putPushRuleActions(c echo.Context) error {
	kind, ruleID, err := ruleParams(c)
	if err != nil {
		return err
	}
	r := requester(c)
	var body struct {
		Actions json.RawMessage `json:"actions"`
	}
	if err := readJSON(c, &body, false); err != nil {
		return err
	}
	if body.Actions == nil {
		return errMissingParam("actions is required")
	}
	if _, err := pushrules.NormalizeActions(body.Actions); err != nil {
		return pushRulesError(err)
	}
	return s.submitAndAck(c, r, machine.CmdPushRuleActions, &machine.PushRuleActions{Kind: kind, RuleID: ruleID, Actions: body.Actions})
}
