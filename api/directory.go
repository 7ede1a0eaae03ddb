package api

import (
	"cmp"
	"encoding/base64"
	"encoding/json"
	"net/http"
	"slices"
	"sort"
	"strconv"
	"strings"

	"github.com/cockroachdb/pebble/v2"
	"github.com/labstack/echo/v4"

	"chronicle/projections/directory"
	"chronicle/projections/rooms"
	"chronicle/raft/machine"
)

// Room aliases and the published room directory. Writes are decided by the
// state machine (raft/machine/directory.go); reads come from the directory
// projection and the rooms projection's current state.

// directoryAdmin reports whether a user is one of the configured server
// administrators, who may manage any alias or room listing.
func (s *Server) directoryAdmin(userID string) bool { return slices.Contains(s.cfg.Admins, userID) }

// roomAliasOf turns createRoom's room_alias_name into the full alias.
func (s *Server) roomAliasOf(name string) (string, error) {
	if name == "" {
		return "", nil
	}
	alias := "#" + name + ":" + s.cfg.ServerName
	if _, _, ok := machine.ParseAlias(alias); !ok {
		return "", errInvalidParam("room_alias_name must be a non-empty alias local part without ':'; the alias would be " + strconv.Quote(alias))
	}
	return alias, nil
}

// localAliasParam validates an alias from the path that must be this
// server's.
func (s *Server) localAliasParam(c echo.Context) (string, error) {
	alias := c.Param("roomAlias")
	_, server, ok := machine.ParseAlias(alias)
	if !ok {
		return "", errInvalidParam("Room alias invalid")
	}
	if server != s.cfg.ServerName {
		return "", errInvalidParam("Room alias must be on this server (" + s.cfg.ServerName + ")")
	}
	return alias, nil
}

// resolveAlias maps an alias to its room ID, or M_NOT_FOUND. Aliases of
// other servers would need federation, which this server does not speak.
func (s *Server) resolveAlias(alias string) (string, error) {
	_, server, ok := machine.ParseAlias(alias)
	if !ok {
		return "", errInvalidParam("Room alias invalid")
	}
	if server != s.cfg.ServerName {
		return "", errNotFound("Room alias " + alias + " not found: resolving aliases of other servers needs federation")
	}
	var a *directory.Alias
	err := s.state.View(func(r pebble.Reader) error {
		var err error
		a, err = directory.GetAlias(r, alias)
		return err
	})
	if err != nil {
		return "", err
	}
	if a == nil {
		return "", errNotFound("Room alias " + alias + " not found")
	}
	return a.RoomID, nil
}

func validRoomIDParam(roomID string) error {
	if !strings.HasPrefix(roomID, "!") || !validKeyPart(roomID) {
		return errInvalidParam("invalid room ID")
	}
	return nil
}

// PUT /directory/room/{roomAlias}
func (s *Server) putRoomAlias(c echo.Context) error {
	alias, err := s.localAliasParam(c)
	if err != nil {
		return err
	}
	var req struct {
		RoomID string `json:"room_id"`
	}
	if err := readJSON(c, &req, false); err != nil {
		return err
	}
	if req.RoomID == "" {
		return errMissingParam("room_id is required")
	}
	if err := validRoomIDParam(req.RoomID); err != nil {
		return err
	}
	r := requester(c)
	if _, err := s.submitCmd(c, machine.CmdCreateAlias, r.UserID, r.DeviceID, &machine.CreateAlias{
		Alias: alias, RoomID: req.RoomID, Admin: s.directoryAdmin(r.UserID),
	}); err != nil {
		return err
	}
	return c.JSON(http.StatusOK, map[string]any{})
}

// GET /directory/room/{roomAlias} (no authentication)
func (s *Server) getRoomAlias(c echo.Context) error {
	roomID, err := s.resolveAlias(c.Param("roomAlias"))
	if err != nil {
		return err
	}
	return c.JSON(http.StatusOK, map[string]any{"room_id": roomID, "servers": []string{s.cfg.ServerName}})
}

// DELETE /directory/room/{roomAlias}
func (s *Server) deleteRoomAlias(c echo.Context) error {
	alias, err := s.localAliasParam(c)
	if err != nil {
		return err
	}
	r := requester(c)
	if _, err := s.submitCmd(c, machine.CmdDeleteAlias, r.UserID, r.DeviceID, &machine.DeleteAlias{
		Alias: alias, Admin: s.directoryAdmin(r.UserID),
	}); err != nil {
		return err
	}
	return c.JSON(http.StatusOK, map[string]any{})
}

// GET /rooms/{roomId}/aliases: for joined members, anyone if the room is
// world_readable, and administrators.
func (s *Server) roomAliases(c echo.Context) error {
	roomID := c.Param("roomId")
	if err := validRoomIDParam(roomID); err != nil {
		return err
	}
	r := requester(c)
	var aliases []string
	err := s.state.View(func(rd pebble.Reader) error {
		if !s.directoryAdmin(r.UserID) {
			m, err := rooms.GetMembership(rd, r.UserID, roomID)
			if err != nil {
				return err
			}
			joined := m != nil && m.Membership == "join"
			if !joined && stateString(rd, roomID, "m.room.history_visibility", "history_visibility") != "world_readable" {
				return errForbidden("You are not in this room and it is not world-readable")
			}
		}
		var err error
		aliases, err = directory.RoomAliases(rd, roomID)
		return err
	})
	if err != nil {
		return err
	}
	return c.JSON(http.StatusOK, map[string]any{"aliases": aliases})
}

// GET /directory/list/room/{roomId} (no authentication)
func (s *Server) getRoomVisibility(c echo.Context) error {
	roomID := c.Param("roomId")
	if err := validRoomIDParam(roomID); err != nil {
		return err
	}
	visibility := "private"
	err := s.state.View(func(rd pebble.Reader) error {
		room, err := rooms.GetRoom(rd, roomID)
		if err != nil {
			return err
		}
		if room == nil {
			return errNotFound("Room not found")
		}
		published, err := directory.IsPublished(rd, roomID)
		if published {
			visibility = "public"
		}
		return err
	})
	if err != nil {
		return err
	}
	return c.JSON(http.StatusOK, map[string]string{"visibility": visibility})
}

// PUT /directory/list/room/{roomId}
func (s *Server) putRoomVisibility(c echo.Context) error {
	roomID := c.Param("roomId")
	if err := validRoomIDParam(roomID); err != nil {
		return err
	}
	var req struct {
		Visibility *string `json:"visibility"`
	}
	if err := readJSON(c, &req, true); err != nil {
		return err
	}
	visibility := "public" // the spec's default
	if req.Visibility != nil {
		visibility = *req.Visibility
	}
	if visibility != "public" && visibility != "private" {
		return errInvalidParam("visibility must be public or private")
	}
	r := requester(c)
	if _, err := s.submitCmd(c, machine.CmdSetRoomVisibility, r.UserID, r.DeviceID, &machine.SetRoomVisibility{
		RoomID: roomID, Visibility: visibility, Admin: s.directoryAdmin(r.UserID),
	}); err != nil {
		return err
	}
	return c.JSON(http.StatusOK, map[string]any{})
}

// publicRoomsQuery is a /publicRooms request, from the query (GET) or the
// body (POST).
type publicRoomsQuery struct {
	Limit  *int   `json:"limit"`
	Since  string `json:"since"`
	Filter *struct {
		GenericSearchTerm string `json:"generic_search_term"`
		// RoomTypes holds nil for "rooms without a type".
		RoomTypes []*string `json:"room_types"`
	} `json:"filter"`
	IncludeAllNetworks   bool   `json:"include_all_networks"`
	ThirdPartyInstanceID string `json:"third_party_instance_id"`
}

// maxPublicRoomsPage bounds one /publicRooms page (also when no limit is
// given); next_batch continues.
const maxPublicRoomsPage = 500

// GET /publicRooms (no authentication)
func (s *Server) publicRoomsGet(c echo.Context) error {
	var q publicRoomsQuery
	if v := c.QueryParam("limit"); v != "" {
		n, err := strconv.Atoi(v)
		if err != nil {
			return errInvalidParam("limit must be an integer")
		}
		q.Limit = &n
	}
	q.Since = c.QueryParam("since")
	switch v := c.QueryParam("include_all_networks"); v {
	case "", "false":
	case "true":
		q.IncludeAllNetworks = true
	default:
		return errInvalidParam("include_all_networks must be true or false")
	}
	q.ThirdPartyInstanceID = c.QueryParam("third_party_instance_id")
	return s.publicRooms(c, &q)
}

// POST /publicRooms
func (s *Server) publicRoomsPost(c echo.Context) error {
	var q publicRoomsQuery
	if err := readJSON(c, &q, true); err != nil {
		return err
	}
	return s.publicRooms(c, &q)
}

// publicRoom is one entry of a /publicRooms chunk.
type publicRoom struct {
	RoomID           string `json:"room_id"`
	Name             string `json:"name,omitempty"`
	Topic            string `json:"topic,omitempty"`
	CanonicalAlias   string `json:"canonical_alias,omitempty"`
	NumJoinedMembers uint64 `json:"num_joined_members"`
	WorldReadable    bool   `json:"world_readable"`
	GuestCanJoin     bool   `json:"guest_can_join"`
	AvatarURL        string `json:"avatar_url,omitempty"`
	JoinRule         string `json:"join_rule,omitempty"`
	RoomType         string `json:"room_type,omitempty"`

	altAliases []string // searched, not rendered
}

// publicRooms lists the published rooms, ordered by joined members (most
// first) then room ID. Pagination tokens are that sort key of the entry a
// page ends (next_batch) or starts (prev_batch) at, so a page continues at
// the right place even when rooms were published or withdrawn meanwhile.
func (s *Server) publicRooms(c echo.Context, q *publicRoomsQuery) error {
	if server := c.QueryParam("server"); server != "" && server != s.cfg.ServerName {
		return errInvalidParam("This server does not federate: it can only list its own room directory")
	}
	if q.IncludeAllNetworks && q.ThirdPartyInstanceID != "" {
		return errInvalidParam("third_party_instance_id can only be used if include_all_networks is false")
	}
	limit := maxPublicRoomsPage
	if q.Limit != nil {
		if *q.Limit < 0 {
			return errInvalidParam("limit must not be negative")
		}
		if *q.Limit > 0 {
			limit = min(*q.Limit, maxPublicRoomsPage)
		}
	}
	var tok *publicRoomsToken
	if q.Since != "" {
		var ok bool
		if tok, ok = parsePublicRoomsToken(q.Since); !ok {
			return errInvalidParam("invalid since token")
		}
	}
	var all []*publicRoom
	// Rooms are published only for the server's own (empty) network: a
	// third-party instance lists nothing.
	if q.ThirdPartyInstanceID == "" {
		err := s.state.View(func(rd pebble.Reader) error {
			ids, err := directory.PublishedRooms(rd)
			if err != nil {
				return err
			}
			for _, roomID := range ids {
				p, err := loadPublicRoom(rd, roomID)
				if err != nil {
					return err
				}
				if p != nil && q.matches(p) {
					all = append(all, p)
				}
			}
			return nil
		})
		if err != nil {
			return err
		}
	}
	slices.SortFunc(all, func(a, b *publicRoom) int {
		if a.NumJoinedMembers != b.NumJoinedMembers {
			return cmp.Compare(b.NumJoinedMembers, a.NumJoinedMembers)
		}
		return cmp.Compare(a.RoomID, b.RoomID)
	})

	// [lo, hi) is the page within the sorted list.
	lo, hi := 0, min(limit, len(all))
	if tok != nil {
		// vsToken compares an entry's position with the token's.
		vsToken := func(p *publicRoom) int {
			if p.NumJoinedMembers != tok.count {
				return cmp.Compare(tok.count, p.NumJoinedMembers)
			}
			return cmp.Compare(p.RoomID, tok.roomID)
		}
		if tok.forward {
			lo = sort.Search(len(all), func(i int) bool { return vsToken(all[i]) > 0 })
			hi = min(lo+limit, len(all))
		} else {
			hi = sort.Search(len(all), func(i int) bool { return vsToken(all[i]) >= 0 })
			lo = max(hi-limit, 0)
		}
	}
	resp := map[string]any{"chunk": renderPublicRooms(all[lo:hi]), "total_room_count_estimate": len(all)}
	if lo < hi && hi < len(all) {
		resp["next_batch"] = publicRoomsToken{forward: true, count: all[hi-1].NumJoinedMembers, roomID: all[hi-1].RoomID}.String()
	}
	if 0 < lo && lo < hi {
		resp["prev_batch"] = publicRoomsToken{forward: false, count: all[lo].NumJoinedMembers, roomID: all[lo].RoomID}.String()
	}
	return c.JSON(http.StatusOK, resp)
}

func renderPublicRooms(list []*publicRoom) []*publicRoom {
	if list == nil {
		return []*publicRoom{}
	}
	return list
}

// matches applies the request's filter.
func (q *publicRoomsQuery) matches(p *publicRoom) bool {
	if q.Filter == nil {
		return true
	}
	if len(q.Filter.RoomTypes) > 0 && !slices.ContainsFunc(q.Filter.RoomTypes, func(t *string) bool {
		if t == nil {
			return p.RoomType == ""
		}
		return *t == p.RoomType
	}) {
		return false
	}
	term := strings.ToLower(strings.TrimSpace(q.Filter.GenericSearchTerm))
	if term == "" {
		return true
	}
	for _, field := range append([]string{p.Name, p.Topic, p.CanonicalAlias}, p.altAliases...) {
		if strings.Contains(strings.ToLower(field), term) {
			return true
		}
	}
	return false
}

// loadPublicRoom reads a directory entry from the room's current state,
// or nil if the room does not exist.
func loadPublicRoom(r pebble.Reader, roomID string) (*publicRoom, error) {
	room, err := rooms.GetRoom(r, roomID)
	if err != nil || room == nil {
		return nil, err
	}
	count, err := directory.JoinedCount(r, roomID)
	if err != nil {
		return nil, err
	}
	p := &publicRoom{
		RoomID:           roomID,
		NumJoinedMembers: count,
		Name:             stateString(r, roomID, "m.room.name", "name"),
		CanonicalAlias:   stateString(r, roomID, "m.room.canonical_alias", "alias"),
		WorldReadable:    stateString(r, roomID, "m.room.history_visibility", "history_visibility") == "world_readable",
		GuestCanJoin:     stateString(r, roomID, "m.room.guest_access", "guest_access") == "can_join",
		AvatarURL:        stateString(r, roomID, "m.room.avatar", "url"),
		JoinRule:         stateString(r, roomID, "m.room.join_rules", "join_rule"),
		RoomType:         stateString(r, roomID, "m.room.create", "type"),
	}
	if alias := stateObject(r, roomID, "m.room.canonical_alias"); alias != nil {
		var alt []json.RawMessage
		_ = json.Unmarshal(alias["alt_aliases"], &alt)
		for _, raw := range alt {
			var a string
			if json.Unmarshal(raw, &a) == nil {
				p.altAliases = append(p.altAliases, a)
			}
		}
	}
	p.Topic = plainTopic(stateObject(r, roomID, "m.room.topic"))
	return p, nil
}

// plainTopic is the text/plain topic of m.room.topic content: the m.topic
// block's text/plain representation, else the topic field.
func plainTopic(content map[string]json.RawMessage) string {
	if content == nil {
		return ""
	}
	var block struct {
		Text []struct {
			Mimetype *string `json:"mimetype"`
			Body     *string `json:"body"`
		} `json:"m.text"`
	}
	if json.Unmarshal(content["m.topic"], &block) == nil {
		for _, t := range block.Text {
			if t.Body != nil && (t.Mimetype == nil || *t.Mimetype == "text/plain") {
				return *t.Body
			}
		}
	}
	var topic string
	_ = json.Unmarshal(content["topic"], &topic)
	return topic
}

// stateObject returns the content of a current state event (state key ""),
// or nil. Clients may send state of any shape, so nothing here fails.
func stateObject(r pebble.Reader, roomID, evType string) map[string]json.RawMessage {
	ev, err := rooms.StateEvent(r, roomID, evType, "")
	if err != nil || ev == nil {
		return nil
	}
	var content map[string]json.RawMessage
	if json.Unmarshal(ev.Content, &content) != nil {
		return nil
	}
	return content
}

// stateString returns a string field of a current state event's content,
// or "" when the event, the field, or its string type is missing.
func stateString(r pebble.Reader, roomID, evType, field string) string {
	var v string
	_ = json.Unmarshal(stateObject(r, roomID, evType)[field], &v)
	return v
}

// publicRoomsToken is a position in the directory's order.
type publicRoomsToken struct {
	forward bool
	count   uint64
	roomID  string
}

func (t publicRoomsToken) String() string {
	dir := "p"
	if t.forward {
		dir = "n"
	}
	return dir + base64.RawURLEncoding.EncodeToString([]byte(strconv.FormatUint(t.count, 10)+"|"+t.roomID))
}

func parsePublicRoomsToken(s string) (*publicRoomsToken, bool) {
	if len(s) < 2 || (s[0] != 'n' && s[0] != 'p') {
		return nil, false
	}
	raw, err := base64.RawURLEncoding.DecodeString(s[1:])
	if err != nil {
		return nil, false
	}
	countStr, roomID, ok := strings.Cut(string(raw), "|")
	if !ok || roomID == "" {
		return nil, false
	}
	count, err := strconv.ParseUint(countStr, 10, 64)
	if err != nil {
		return nil, false
	}
	return &publicRoomsToken{forward: s[0] == 'n', count: count, roomID: roomID}, true
}
