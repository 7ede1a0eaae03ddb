package api

// Spaces: GET /_matrix/client/v1/rooms/{roomId}/hierarchy walks the tree
// of m.space.child links, and GET /_matrix/client/v1/room_summary/{room}
// (Matrix 1.15, formerly MSC3266) summarises one room.
//
// The walk is depth-first in pre-order, as the spec describes ("when it
// encounters another space as a child it recurses into that space before
// returning non-space children"): a space's children are visited in the
// spec's order (valid `order` keys first, lexicographically, then by the
// child event's origin_server_ts, then by room ID). A room is listed once
// even when several spaces link it, which also breaks loops; a room the
// requester may not see is skipped with everything under it.
//
// Pagination needs no server-side session. The first page fixes the log
// position the walk reads every room's state at; next_batch carries that
// position, the walk's parameters and how many steps of the walk earlier
// pages consumed. A later page replays those steps (reading only what
// decides the walk, not the summaries) and continues, so the pages of one
// walk list every room exactly once even when the space changes in
// between. A room is shown only if the requester may see it both at that
// position and now. The replay makes a page cost O(rooms walked so far);
// hierarchyMaxWalk bounds that.

import (
	"cmp"
	"encoding/base64"
	"encoding/json"
	"net/http"
	"slices"
	"strconv"
	"strings"

	"github.com/cockroachdb/pebble/v2"
	"github.com/labstack/echo/v4"
	"maunium.net/go/mautrix/id"

	rlog "chronicle/log"
	"chronicle/projections/directory"
	"chronicle/projections/rooms"
)

const (
	hierarchyDefaultLimit = 50
	hierarchyMaxLimit     = 100
	// hierarchyMaxDepth is both the default and the cap of max_depth.
	hierarchyMaxDepth = 100
	// hierarchyMaxWalk bounds the rooms one walk visits, over all pages.
	hierarchyMaxWalk = 10_000
)

// hierarchyToken is next_batch: where the walk continues.
type hierarchyToken struct {
	Root          string `json:"r"`
	Seq           uint64 `json:"s"`
	SuggestedOnly bool   `json:"o,omitempty"`
	MaxDepth      int    `json:"d"`
	Steps         int    `json:"k"`
}

func (t hierarchyToken) encode() string {
	b, _ := json.Marshal(t)
	return "h1_" + base64.RawURLEncoding.EncodeToString(b)
}

func decodeHierarchyToken(s string) (hierarchyToken, bool) {
	var t hierarchyToken
	rest, ok := strings.CutPrefix(s, "h1_")
	if !ok {
		return t, false
	}
	b, err := base64.RawURLEncoding.DecodeString(rest)
	if err != nil || json.Unmarshal(b, &t) != nil || t.Seq == 0 || t.Steps <= 0 || t.MaxDepth < 0 || t.MaxDepth > hierarchyMaxDepth {
		return t, false
	}
	return t, true
}

// roomSummary is the spec's RoomSummary (PublishedRoomsChunk plus
// room_type, allowed_room_ids, encryption and room_version).
type roomSummary struct {
	RoomID           string   `json:"room_id"`
	Name             string   `json:"name,omitempty"`
	Topic            string   `json:"topic,omitempty"`
	CanonicalAlias   string   `json:"canonical_alias,omitempty"`
	AvatarURL        string   `json:"avatar_url,omitempty"`
	NumJoinedMembers int      `json:"num_joined_members"`
	WorldReadable    bool     `json:"world_readable"`
	GuestCanJoin     bool     `json:"guest_can_join"`
	JoinRule         string   `json:"join_rule,omitempty"`
	RoomType         string   `json:"room_type,omitempty"`
	RoomVersion      string   `json:"room_version,omitempty"`
	Encryption       string   `json:"encryption,omitempty"`
	AllowedRoomIDs   []string `json:"allowed_room_ids,omitempty"`
}

// strippedChild is a StrippedChildStateEvent of children_state.
type strippedChild struct {
	Type           string          `json:"type"`
	StateKey       string          `json:"state_key"`
	Content        json.RawMessage `json:"content"`
	Sender         string          `json:"sender"`
	OriginServerTS int64           `json:"origin_server_ts"`
}

type hierarchyRoom struct {
	roomSummary
	ChildrenState []strippedChild `json:"children_state"`
}

// roomView reads rooms as of one log position (0: now).
type roomView struct {
	rd  pebble.Reader
	seq uint64
}

// roomInfo is what decides whether a requester may see a room.
type roomInfo struct {
	roomID        string
	exists        bool
	version       id.RoomVersion
	roomType      string
	joinRule      string
	allow         []string // room IDs of a restricted join rule's allow list
	worldReadable bool
}

// contentFields decodes the top level of a state event's content; fields
// of the wrong type read as absent, never as an error.
func contentFields(ev *rooms.Event) map[string]json.RawMessage {
	var m map[string]json.RawMessage
	if ev != nil {
		_ = json.Unmarshal(ev.Content, &m)
	}
	return m
}

func fieldString(m map[string]json.RawMessage, key string) string {
	var s string
	_ = json.Unmarshal(m[key], &s)
	return s
}

func (v roomView) entry(roomID, evType string) (map[string]json.RawMessage, *rooms.Event, error) {
	ev, err := rooms.StateEntryAt(v.rd, roomID, evType, "", v.seq)
	if err != nil {
		return nil, nil, err
	}
	return contentFields(ev), ev, nil
}

func (v roomView) info(roomID string) (*roomInfo, error) {
	info := &roomInfo{roomID: roomID}
	room, err := rooms.GetRoom(v.rd, roomID)
	if err != nil || room == nil {
		return info, err
	}
	create, ev, err := v.entry(roomID, "m.room.create")
	if err != nil || ev == nil {
		return info, err // the room did not exist yet at the position
	}
	info.exists, info.version, info.roomType = true, id.RoomVersion(room.Version), fieldString(create, "type")
	jr, _, err := v.entry(roomID, "m.room.join_rules")
	if err != nil {
		return nil, err
	}
	info.joinRule = fieldString(jr, "join_rule")
	if info.joinRule == "restricted" || info.joinRule == "knock_restricted" {
		var allow []json.RawMessage
		_ = json.Unmarshal(jr["allow"], &allow)
		for _, raw := range allow {
			var a struct {
				Type   string `json:"type"`
				RoomID string `json:"room_id"`
			}
			if json.Unmarshal(raw, &a) == nil && a.Type == "m.room_membership" && strings.HasPrefix(a.RoomID, "!") {
				info.allow = append(info.allow, a.RoomID)
			}
		}
	}
	hv, _, err := v.entry(roomID, "m.room.history_visibility")
	if err != nil {
		return nil, err
	}
	info.worldReadable = fieldString(hv, "history_visibility") == "world_readable"
	return info, nil
}

// accessible applies the spec's rule for which rooms the hierarchy (and the
// summary) shows: rooms the user is joined to or invited to, may join
// (public, or restricted with a membership of an allowed room), may knock
// on, or may peek into (world_readable). userID "" is an anonymous
// requester, who sees public, knockable and world-readable rooms.
func (v roomView) accessible(info *roomInfo, userID string) (bool, error) {
	if !info.exists {
		return false, nil
	}
	switch {
	case info.joinRule == "public",
		info.joinRule == "knock" && info.version.Knocks(),
		info.joinRule == "knock_restricted" && info.version.KnockRestricted(),
		info.worldReadable:
		return true, nil
	}
	if userID == "" {
		return false, nil
	}
	m, err := rooms.MembershipOf(v.rd, info.roomID, userID, v.seq)
	if err != nil {
		return false, err
	}
	if m == "join" || m == "invite" {
		return true, nil
	}
	if info.joinRule == "restricted" && info.version.RestrictedJoins() {
		for _, allowed := range info.allow {
			m, err := rooms.MembershipOf(v.rd, allowed, userID, v.seq)
			if err != nil {
				return false, err
			}
			if m == "join" {
				return true, nil
			}
		}
	}
	return false, nil
}

// summary reads the rest of a room's RoomSummary.
func (v roomView) summary(info *roomInfo) (roomSummary, error) {
	sum := roomSummary{
		RoomID: info.roomID, JoinRule: info.joinRule, RoomType: info.roomType,
		RoomVersion: string(info.version), WorldReadable: info.worldReadable, AllowedRoomIDs: info.allow,
	}
	for _, f := range []struct {
		evType, field string
		into          *string
	}{
		{"m.room.name", "name", &sum.Name},
		{"m.room.topic", "topic", &sum.Topic},
		{"m.room.canonical_alias", "alias", &sum.CanonicalAlias},
		{"m.room.avatar", "url", &sum.AvatarURL},
		{"m.room.encryption", "algorithm", &sum.Encryption},
	} {
		c, _, err := v.entry(info.roomID, f.evType)
		if err != nil {
			return sum, err
		}
		*f.into = fieldString(c, f.field)
	}
	ga, _, err := v.entry(info.roomID, "m.room.guest_access")
	if err != nil {
		return sum, err
	}
	sum.GuestCanJoin = fieldString(ga, "guest_access") == "can_join"
	sum.NumJoinedMembers, err = rooms.JoinedCountAt(v.rd, info.roomID, v.seq)
	return sum, err
}

// spaceChild is one valid m.space.child link.
type spaceChild struct {
	ev    *rooms.Event
	order string // "" when absent or invalid
}

// validOrder is the spec's valid `order` key: at most 50 characters, each
// in \x20-\x7E.
func validOrder(s string) bool {
	if s == "" || len(s) > 50 {
		return false
	}
	for i := 0; i < len(s); i++ {
		if s[i] < 0x20 || s[i] > 0x7e {
			return false
		}
	}
	return true
}

// children lists a space's valid children (content with a non-empty via
// list of server names) in the spec's order, only the suggested ones if
// suggestedOnly.
func (v roomView) children(roomID string, suggestedOnly bool) ([]spaceChild, error) {
	evs, err := rooms.StateOfTypeAt(v.rd, roomID, "m.space.child", v.seq)
	if err != nil {
		return nil, err
	}
	var out []spaceChild
	for _, ev := range evs {
		if ev.StateKey == nil || !strings.HasPrefix(*ev.StateKey, "!") {
			continue
		}
		c := contentFields(ev)
		var via []string
		if json.Unmarshal(c["via"], &via) != nil || len(via) == 0 {
			continue
		}
		if suggestedOnly {
			var suggested bool
			if json.Unmarshal(c["suggested"], &suggested) != nil || !suggested {
				continue
			}
		}
		ch := spaceChild{ev: ev}
		if o := fieldString(c, "order"); validOrder(o) {
			ch.order = o
		}
		out = append(out, ch)
	}
	slices.SortFunc(out, func(a, b spaceChild) int {
		switch {
		case a.order != "" && b.order == "":
			return -1
		case a.order == "" && b.order != "":
			return 1
		}
		return cmp.Or(strings.Compare(a.order, b.order),
			cmp.Compare(a.ev.OriginServerTS, b.ev.OriginServerTS),
			strings.Compare(*a.ev.StateKey, *b.ev.StateKey))
	})
	return out, nil
}

func strippedChildren(children []spaceChild) []strippedChild {
	out := make([]strippedChild, 0, len(children))
	for _, ch := range children {
		content := ch.ev.Content
		if len(content) == 0 {
			content = json.RawMessage("{}")
		}
		out = append(out, strippedChild{
			Type: ch.ev.Type, StateKey: *ch.ev.StateKey, Content: content,
			Sender: ch.ev.Sender, OriginServerTS: ch.ev.OriginServerTS,
		})
	}
	return out
}

type hierarchyParams struct {
	limit         int
	maxDepth      *int
	suggestedOnly *bool
	from          string
}

func parseHierarchyParams(c echo.Context) (*hierarchyParams, error) {
	p := &hierarchyParams{limit: hierarchyDefaultLimit, from: c.QueryParam("from")}
	if v := c.QueryParam("limit"); v != "" {
		n, err := strconv.Atoi(v)
		if err != nil || n <= 0 {
			return nil, errInvalidParam("limit must be a positive integer")
		}
		p.limit = min(n, hierarchyMaxLimit)
	}
	if v := c.QueryParam("max_depth"); v != "" {
		n, err := strconv.Atoi(v)
		if err != nil || n < 0 {
			return nil, errInvalidParam("max_depth must be a non-negative integer")
		}
		n = min(n, hierarchyMaxDepth)
		p.maxDepth = &n
	}
	switch v := c.QueryParam("suggested_only"); v {
	case "":
	case "true", "false":
		b := v == "true"
		p.suggestedOnly = &b
	default:
		return nil, errInvalidParam("suggested_only must be true or false")
	}
	return p, nil
}

func (s *Server) hierarchy(c echo.Context) error {
	rootID := c.Param("roomId")
	if !strings.HasPrefix(rootID, "!") {
		return errInvalidParam("invalid room ID")
	}
	p, err := parseHierarchyParams(c)
	if err != nil {
		return err
	}
	var tok hierarchyToken
	if p.from != "" {
		var ok bool
		if tok, ok = decodeHierarchyToken(p.from); !ok || tok.Root != rootID {
			return errInvalidParam("unknown from token")
		}
		if (p.maxDepth != nil && *p.maxDepth != tok.MaxDepth) || (p.suggestedOnly != nil && *p.suggestedOnly != tok.SuggestedOnly) {
			return errInvalidParam("suggested_only and max_depth cannot change on paginated requests")
		}
		// The walk reads state at the token's position: wait for this
		// node to reach it.
		if err := s.waitForPosition(c.Request().Context(), tok.Seq); err != nil {
			return err
		}
	} else {
		tok = hierarchyToken{Root: rootID, MaxDepth: hierarchyMaxDepth}
		if p.maxDepth != nil {
			tok.MaxDepth = *p.maxDepth
		}
		if p.suggestedOnly != nil {
			tok.SuggestedOnly = *p.suggestedOnly
		}
	}
	userID := requester(c).UserID
	var out []hierarchyRoom
	var next string
	err = s.state.View(func(rd pebble.Reader) error {
		head, err := rlog.ReadHead(rd)
		if err != nil {
			return err
		}
		if tok.Seq == 0 {
			tok.Seq = head.Seq
		}
		at, now := roomView{rd, tok.Seq}, roomView{rd, 0}
		// visibleNow: when the walk reads the past, may the requester
		// still see the room now.
		visibleNow := func(info *roomInfo) (bool, error) {
			if tok.Seq == head.Seq {
				return true, nil
			}
			cur, err := now.info(info.roomID)
			if err != nil {
				return false, err
			}
			return now.accessible(cur, userID)
		}
		root, err := at.info(rootID)
		if err != nil {
			return err
		}
		ok, err := at.accessible(root, userID)
		if err == nil && ok {
			ok, err = visibleNow(root)
		}
		if err != nil {
			return err
		}
		if !ok {
			return errForbidden("You are not allowed to view this room, or it does not exist")
		}
		out, next, err = walkHierarchy(at, tok, p.limit, userID, visibleNow)
		return err
	})
	if err != nil {
		return err
	}
	resp := map[string]any{"rooms": out}
	if next != "" {
		resp["next_batch"] = next
	}
	return c.JSON(http.StatusOK, resp)
}

// walkHierarchy replays tok.Steps steps of the walk, then lists up to limit
// rooms. It returns the page and the token of the next one ("" at the end).
func walkHierarchy(at roomView, tok hierarchyToken, limit int, userID string, visibleNow func(*roomInfo) (bool, error)) ([]hierarchyRoom, string, error) {
	type item struct {
		roomID string
		depth  int
	}
	stack := []item{{tok.Root, 0}}
	seen := map[string]bool{}
	out := []hierarchyRoom{}
	steps := 0
	for len(stack) > 0 && steps < hierarchyMaxWalk {
		top := stack[len(stack)-1]
		if seen[top.roomID] {
			stack, steps = stack[:len(stack)-1], steps+1
			continue
		}
		info, err := at.info(top.roomID)
		if err != nil {
			return nil, "", err
		}
		// Whether the walk goes into the room depends on the position only;
		// whether it is shown also on what the requester may see now.
		walkable, err := at.accessible(info, userID)
		if err != nil {
			return nil, "", err
		}
		show := false
		if walkable && steps >= tok.Steps {
			if show, err = visibleNow(info); err != nil {
				return nil, "", err
			}
			if show && len(out) == limit {
				break // the next page starts with this room
			}
		}
		stack, steps = stack[:len(stack)-1], steps+1
		seen[top.roomID] = true
		if !walkable {
			continue
		}
		var children []spaceChild
		if info.roomType == "m.space" {
			if children, err = at.children(top.roomID, tok.SuggestedOnly); err != nil {
				return nil, "", err
			}
		}
		if show {
			sum, err := at.summary(info)
			if err != nil {
				return nil, "", err
			}
			out = append(out, hierarchyRoom{roomSummary: sum, ChildrenState: strippedChildren(children)})
		}
		if top.depth < tok.MaxDepth {
			for i := len(children) - 1; i >= 0; i-- {
				stack = append(stack, item{*children[i].ev.StateKey, top.depth + 1})
			}
		}
	}
	if len(stack) == 0 || steps >= hierarchyMaxWalk {
		return out, "", nil
	}
	tok.Steps = steps
	return out, tok.encode(), nil
}

// summaryResponse is the room summary endpoint's answer.
type summaryResponse struct {
	roomSummary
	Membership string `json:"membership,omitempty"`
	// The names MSC3266 used before Matrix 1.15, on the unstable paths.
	UnstableRoomVersion string `json:"im.nheko.summary.room_version,omitempty"`
	UnstableEncryption  string `json:"im.nheko.summary.encryption,omitempty"`
}

// roomSummaryHandler serves GET /_matrix/client/v1/room_summary/{roomIdOrAlias}
// and its MSC3266 unstable paths. An access token is optional: without
// one, only rooms anyone may join, knock on or peek into are summarised.
// A room the requester may not see is reported as not found, so that the
// answer does not reveal whether it exists. `via` is ignored: this server
// does not federate, so it summarises only rooms it holds.
func (s *Server) roomSummaryHandler(c echo.Context) error {
	target := c.Param("roomIdOrAlias")
	if !strings.HasPrefix(target, "!") && !strings.HasPrefix(target, "#") {
		return errInvalidParam("not a room ID or alias")
	}
	userID := ""
	if r := requester(c); r != nil {
		userID = r.UserID
	}
	var resp summaryResponse
	err := s.state.View(func(rd pebble.Reader) error {
		roomID := target
		if strings.HasPrefix(target, "#") {
			alias, err := directory.GetAlias(rd, target)
			if err != nil {
				return err
			}
			if alias == nil {
				return errNotFound("Room alias not found")
			}
			roomID = alias.RoomID
		}
		v := roomView{rd: rd}
		info, err := v.info(roomID)
		if err != nil {
			return err
		}
		if ok, err := v.accessible(info, userID); err != nil || !ok {
			if err == nil {
				err = errNotFound("Room not found or is not accessible")
			}
			return err
		}
		if resp.roomSummary, err = v.summary(info); err != nil {
			return err
		}
		if userID != "" {
			m, err := rooms.MembershipOf(rd, roomID, userID, 0)
			if err != nil {
				return err
			}
			resp.Membership = cmp.Or(m, "leave")
		}
		return nil
	})
	if err != nil {
		return err
	}
	if strings.Contains(c.Path(), "/unstable/") {
		resp.UnstableRoomVersion, resp.UnstableEncryption = resp.RoomVersion, resp.Encryption
	}
	return c.JSON(http.StatusOK, resp)
}

// authenticateIfToken authenticates requests that carry an access token and
// lets the others through anonymously (requester(c) is nil).
func (s *Server) authenticateIfToken(next echo.HandlerFunc) echo.HandlerFunc {
	authed := s.authenticate(next)
	return func(c echo.Context) error {
		if accessToken(c) == "" && c.Request().Header.Get("Authorization") == "" {
			return next(c)
		}
		return authed(c)
	}
}
