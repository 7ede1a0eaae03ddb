package e2e

import (
	"net/http"
	"slices"
	"testing"

	"maunium.net/go/mautrix"
	"maunium.net/go/mautrix/event"
	"maunium.net/go/mautrix/id"

	"chronicle/api/apitest"
)

// spaceTree is the fixture most space tests walk:
//
//	space "Space" (public)
//	├── A        (public, suggested, order "a")
//	├── sub      (public space, suggested, order "b")
//	│   ├── B    (public, order "a")
//	│   └── C    (public, suggested, order "b")
//	└── P        (private, order "c")
//
// The spec's walk is depth-first, so the full order is
// space, A, sub, B, C, P.
type spaceTree struct {
	space, a, sub, b, c, p id.RoomID
	names                  map[id.RoomID]string
}

func newSpace(t *testing.T, cli *mautrix.Client, name, preset string) id.RoomID {
	t.Helper()
	return newRoom(t, cli, &mautrix.ReqCreateRoom{
		Name: name, Preset: preset, CreationContent: map[string]any{"type": "m.space"},
	})
}

func addChild(t *testing.T, cli *mautrix.Client, parent, child id.RoomID, order string, suggested bool) {
	t.Helper()
	content := &event.SpaceChildEventContent{Via: []string{apitest.ServerName}, Order: order, Suggested: suggested}
	if _, err := cli.SendStateEvent(t.Context(), parent, event.StateSpaceChild, child.String(), content); err != nil {
		t.Fatalf("add %s to %s: %v", child, parent, err)
	}
}

func buildSpaceTree(t *testing.T, alice *mautrix.Client) *spaceTree {
	t.Helper()
	tr := &spaceTree{
		space: newSpace(t, alice, "Space", "public_chat"),
		sub:   newSpace(t, alice, "Sub", "public_chat"),
		a:     newRoom(t, alice, &mautrix.ReqCreateRoom{Name: "A", Topic: "about A", Preset: "public_chat"}),
		b:     newRoom(t, alice, &mautrix.ReqCreateRoom{Name: "B", Preset: "public_chat"}),
		c:     newRoom(t, alice, &mautrix.ReqCreateRoom{Name: "C", Preset: "public_chat"}),
		p:     newRoom(t, alice, &mautrix.ReqCreateRoom{Name: "P", Preset: "private_chat"}),
	}
	tr.names = map[id.RoomID]string{tr.space: "Space", tr.sub: "Sub", tr.a: "A", tr.b: "B", tr.c: "C", tr.p: "P"}
	// Added out of order: the order keys, not the timestamps, decide.
	addChild(t, alice, tr.space, tr.p, "c", false)
	addChild(t, alice, tr.space, tr.sub, "b", true)
	addChild(t, alice, tr.space, tr.a, "a", true)
	addChild(t, alice, tr.sub, tr.c, "b", true)
	addChild(t, alice, tr.sub, tr.b, "a", false)
	return tr
}

func (tr *spaceTree) nameList(rooms []id.RoomID) []string {
	out := make([]string, 0, len(rooms))
	for _, r := range rooms {
		if n, ok := tr.names[r]; ok {
			out = append(out, n)
		} else {
			out = append(out, r.String())
		}
	}
	return out
}

func hierarchy(t *testing.T, cli *mautrix.Client, root id.RoomID, req *mautrix.ReqHierarchy) *mautrix.RespHierarchy {
	t.Helper()
	resp, err := cli.Hierarchy(t.Context(), root, req)
	if err != nil {
		t.Fatalf("%s: hierarchy of %s (%+v): %v", cli.UserID, root, req, err)
	}
	return resp
}

func roomIDs(chunks []*mautrix.ChildRoomsChunk) []id.RoomID {
	out := make([]id.RoomID, 0, len(chunks))
	for _, ch := range chunks {
		out = append(out, ch.RoomID)
	}
	return out
}

// walkAll pages through a hierarchy and returns every room in order.
func walkAll(t *testing.T, cli *mautrix.Client, root id.RoomID, req mautrix.ReqHierarchy) []id.RoomID {
	t.Helper()
	var all []id.RoomID
	for page := 0; ; page++ {
		if page > 100 {
			t.Fatalf("pagination does not end (rooms so far: %v)", all)
		}
		resp := hierarchy(t, cli, root, &req)
		if req.Limit > 0 && len(resp.Rooms) > req.Limit {
			t.Fatalf("page %d has %d rooms, limit %d", page, len(resp.Rooms), req.Limit)
		}
		all = append(all, roomIDs(resp.Rooms)...)
		if resp.NextBatch == "" {
			return all
		}
		req.From = resp.NextBatch
	}
}

func childKeys(evs []*event.Event) []string {
	var out []string
	for _, ev := range evs {
		if ev.StateKey != nil {
			out = append(out, *ev.StateKey)
		}
	}
	return out
}

func TestSpaceHierarchy(t *testing.T) {
	t.Parallel()
	srv := apitest.Start(t, "")
	alice := newUser(t, srv, "alice")
	bob := newUser(t, srv, "bob")
	tr := buildSpaceTree(t, alice)
	full := []string{"Space", "A", "Sub", "B", "C", "P"}

	t.Run("depth-first walk with room details", func(t *testing.T) {
		resp := hierarchy(t, alice, tr.space, nil)
		if got := tr.nameList(roomIDs(resp.Rooms)); !slices.Equal(got, full) {
			t.Fatalf("rooms = %v, want %v", got, full)
		}
		if resp.NextBatch != "" {
			t.Errorf("next_batch = %q on a complete walk", resp.NextBatch)
		}
		byID := map[id.RoomID]*mautrix.ChildRoomsChunk{}
		for _, r := range resp.Rooms {
			byID[r.RoomID] = r
		}
		space, a, p := byID[tr.space], byID[tr.a], byID[tr.p]
		if space.RoomType != event.RoomTypeSpace || byID[tr.sub].RoomType != event.RoomTypeSpace || a.RoomType != "" {
			t.Errorf("room types: space %q, sub %q, A %q", space.RoomType, byID[tr.sub].RoomType, a.RoomType)
		}
		if a.Name != "A" || a.Topic != "about A" || a.NumJoinedMembers != 1 || a.JoinRule != event.JoinRulePublic ||
			a.WorldReadable || a.GuestCanJoin || a.RoomVersion != "12" {
			t.Errorf("A = %+v", a.PublicRoomInfo)
		}
		if p.JoinRule != event.JoinRuleInvite || !p.GuestCanJoin {
			t.Errorf("P = %+v, want join_rule invite and guest_can_join (private_chat)", p.PublicRoomInfo)
		}
		// children_state: the space's links in the spec's order, stripped,
		// with origin_server_ts; a plain room has none.
		wantKids := []string{tr.a.String(), tr.sub.String(), tr.p.String()}
		if got := childKeys(space.ChildrenState); !slices.Equal(got, wantKids) {
			t.Errorf("space children_state keys = %v, want %v", got, wantKids)
		}
		for _, ev := range space.ChildrenState {
			if ev.Type != event.StateSpaceChild || ev.Sender != alice.UserID || ev.Timestamp == 0 {
				t.Errorf("child event %+v lacks type, sender or origin_server_ts", ev)
			}
			if via, _ := ev.Content.Raw["via"].([]any); len(via) != 1 || via[0] != apitest.ServerName {
				t.Errorf("child %s via = %v", *ev.StateKey, ev.Content.Raw["via"])
			}
		}
		if a.ChildrenState == nil || len(a.ChildrenState) != 0 {
			t.Errorf("A children_state = %v, want present and empty", a.ChildrenState)
		}
	})

	t.Run("max_depth", func(t *testing.T) {
		for depth, want := range map[int][]string{
			0: {"Space"},
			1: {"Space", "A", "Sub", "P"},
			2: full,
		} {
			resp := hierarchy(t, alice, tr.space, &mautrix.ReqHierarchy{MaxDepth: new(depth)})
			if got := tr.nameList(roomIDs(resp.Rooms)); !slices.Equal(got, want) {
				t.Errorf("max_depth %d: rooms = %v, want %v", depth, got, want)
			}
		}
		// Below the cut, a space still lists its links.
		resp := hierarchy(t, alice, tr.space, &mautrix.ReqHierarchy{MaxDepth: new(1)})
		for _, r := range resp.Rooms {
			if r.RoomID == tr.sub && len(r.ChildrenState) != 2 {
				t.Errorf("Sub at max depth lists %d children, want 2", len(r.ChildrenState))
			}
		}
	})

	t.Run("suggested_only", func(t *testing.T) {
		resp := hierarchy(t, alice, tr.space, &mautrix.ReqHierarchy{SuggestedOnly: true})
		want := []string{"Space", "A", "Sub", "C"}
		if got := tr.nameList(roomIDs(resp.Rooms)); !slices.Equal(got, want) {
			t.Fatalf("rooms = %v, want %v", got, want)
		}
		if got := childKeys(resp.Rooms[0].ChildrenState); !slices.Equal(got, []string{tr.a.String(), tr.sub.String()}) {
			t.Errorf("space children_state = %v, want only the suggested A and Sub", got)
		}
	})

	t.Run("limit 1 pages through every room exactly once", func(t *testing.T) {
		if got := tr.nameList(walkAll(t, alice, tr.space, mautrix.ReqHierarchy{Limit: 1})); !slices.Equal(got, full) {
			t.Errorf("alice's pages = %v, want %v", got, full)
		}
		if got := tr.nameList(walkAll(t, alice, tr.space, mautrix.ReqHierarchy{Limit: 2, SuggestedOnly: true})); !slices.Equal(got, []string{"Space", "A", "Sub", "C"}) {
			t.Errorf("suggested pages = %v", got)
		}
		if got := tr.nameList(walkAll(t, bob, tr.space, mautrix.ReqHierarchy{Limit: 1})); !slices.Equal(got, full[:5]) {
			t.Errorf("bob's pages = %v, want %v", got, full[:5])
		}
	})

	t.Run("private child rooms are hidden from non-members", func(t *testing.T) {
		resp := hierarchy(t, bob, tr.space, nil)
		if got, want := tr.nameList(roomIDs(resp.Rooms)), full[:5]; !slices.Equal(got, want) {
			t.Fatalf("bob sees %v, want %v", got, want)
		}
	})

	t.Run("pagination parameters cannot change", func(t *testing.T) {
		first := hierarchy(t, alice, tr.space, &mautrix.ReqHierarchy{Limit: 1, MaxDepth: new(2)})
		_, err := alice.Hierarchy(t.Context(), tr.space, &mautrix.ReqHierarchy{From: first.NextBatch, MaxDepth: new(1)})
		wantMatrixError(t, err, mautrix.MInvalidParam, http.StatusBadRequest)
		_, err = alice.Hierarchy(t.Context(), tr.space, &mautrix.ReqHierarchy{From: first.NextBatch, MaxDepth: new(2), SuggestedOnly: true})
		wantMatrixError(t, err, mautrix.MInvalidParam, http.StatusBadRequest)
		_, err = alice.Hierarchy(t.Context(), tr.sub, &mautrix.ReqHierarchy{From: first.NextBatch})
		wantMatrixError(t, err, mautrix.MInvalidParam, http.StatusBadRequest)
		_, err = alice.Hierarchy(t.Context(), tr.space, &mautrix.ReqHierarchy{From: "garbage"})
		wantMatrixError(t, err, mautrix.MInvalidParam, http.StatusBadRequest)
		// The same parameters continue.
		next := hierarchy(t, alice, tr.space, &mautrix.ReqHierarchy{From: first.NextBatch, Limit: 1, MaxDepth: new(2)})
		if got := tr.nameList(roomIDs(next.Rooms)); !slices.Equal(got, []string{"A"}) {
			t.Errorf("second page = %v, want [A]", got)
		}
	})

	t.Run("inaccessible or unknown roots are forbidden", func(t *testing.T) {
		secret := newSpace(t, alice, "Secret", "private_chat")
		_, err := bob.Hierarchy(t.Context(), secret, nil)
		wantMatrixError(t, err, mautrix.MForbidden, http.StatusForbidden)
		_, err = bob.Hierarchy(t.Context(), "!nosuchroom:localhost", nil)
		wantMatrixError(t, err, mautrix.MForbidden, http.StatusForbidden)
		_, err = anonClient(t, srv).Hierarchy(t.Context(), tr.space, nil)
		wantMatrixError(t, err, mautrix.MMissingToken, http.StatusUnauthorized)
	})
}

func TestSpaceHierarchyEdges(t *testing.T) {
	t.Parallel()
	srv := apitest.Start(t, "")
	alice := newUser(t, srv, "alice")
	bob := newUser(t, srv, "bob")

	t.Run("pages continue the walk they started even when the space changes", func(t *testing.T) {
		tr := buildSpaceTree(t, alice)
		first := hierarchy(t, alice, tr.space, &mautrix.ReqHierarchy{Limit: 2})
		if got := tr.nameList(roomIDs(first.Rooms)); !slices.Equal(got, []string{"Space", "A"}) {
			t.Fatalf("first page = %v", got)
		}
		// Unlink Sub (content without via), link a new room first in order.
		if _, err := alice.SendStateEvent(t.Context(), tr.space, event.StateSpaceChild, tr.sub.String(), map[string]any{}); err != nil {
			t.Fatal(err)
		}
		d := newRoom(t, alice, &mautrix.ReqCreateRoom{Name: "D", Preset: "public_chat"})
		tr.names[d] = "D"
		addChild(t, alice, tr.space, d, "0", true)

		rest := walkAll(t, alice, tr.space, mautrix.ReqHierarchy{Limit: 2, From: first.NextBatch})
		if got := tr.nameList(rest); !slices.Equal(got, []string{"Sub", "B", "C", "P"}) {
			t.Errorf("later pages = %v, want the original walk [Sub B C P]", got)
		}
		// A new walk sees the new tree.
		if got := tr.nameList(walkAll(t, alice, tr.space, mautrix.ReqHierarchy{})); !slices.Equal(got, []string{"Space", "D", "A", "P"}) {
			t.Errorf("new walk = %v, want [Space D A P]", got)
		}
	})

	t.Run("loops and repeated links list each room once", func(t *testing.T) {
		outer := newSpace(t, alice, "Outer", "public_chat")
		inner := newSpace(t, alice, "Inner", "public_chat")
		shared := newRoom(t, alice, &mautrix.ReqCreateRoom{Name: "Shared", Preset: "public_chat"})
		addChild(t, alice, outer, inner, "a", false)
		addChild(t, alice, outer, shared, "b", false)
		addChild(t, alice, inner, outer, "a", false) // a loop back to the root
		addChild(t, alice, inner, shared, "b", false)
		// Links to rooms this server does not know are skipped.
		addChild(t, alice, inner, "!unknown:localhost", "c", false)
		got := walkAll(t, alice, outer, mautrix.ReqHierarchy{Limit: 1})
		if want := []id.RoomID{outer, inner, shared}; !slices.Equal(got, want) {
			t.Errorf("rooms = %v, want %v", got, want)
		}
	})

	t.Run("invites, world-readable rooms and restricted rooms are visible", func(t *testing.T) {
		space := newSpace(t, alice, "Mixed", "public_chat")
		invited := newRoom(t, alice, &mautrix.ReqCreateRoom{Name: "Invited", Preset: "private_chat", Invite: []id.UserID{bob.UserID}})
		readable := newRoom(t, alice, &mautrix.ReqCreateRoom{Name: "Readable", Preset: "private_chat"})
		if _, err := alice.SendStateEvent(t.Context(), readable, event.StateHistoryVisibility, "", &event.HistoryVisibilityEventContent{HistoryVisibility: event.HistoryVisibilityWorldReadable}); err != nil {
			t.Fatal(err)
		}
		restricted := newRoom(t, alice, &mautrix.ReqCreateRoom{Name: "Restricted", Preset: "private_chat"})
		if _, err := alice.SendStateEvent(t.Context(), restricted, event.StateJoinRules, "", &event.JoinRulesEventContent{
			JoinRule: event.JoinRuleRestricted, Allow: []event.JoinRuleAllow{{Type: event.JoinRuleAllowRoomMembership, RoomID: space}},
		}); err != nil {
			t.Fatal(err)
		}
		hidden := newRoom(t, alice, &mautrix.ReqCreateRoom{Name: "Hidden", Preset: "private_chat"})
		for i, r := range []id.RoomID{invited, readable, restricted, hidden} {
			addChild(t, alice, space, r, string(rune('a'+i)), false)
		}
		names := func(cli *mautrix.Client) []id.RoomID { return roomIDs(hierarchy(t, cli, space, nil).Rooms) }
		// bob is not in the space yet: the restricted room's condition fails.
		if got, want := names(bob), []id.RoomID{space, invited, readable}; !slices.Equal(got, want) {
			t.Errorf("bob outside the space sees %v, want %v", got, want)
		}
		if _, err := bob.JoinRoomByID(t.Context(), space); err != nil {
			t.Fatal(err)
		}
		if got, want := names(bob), []id.RoomID{space, invited, readable, restricted}; !slices.Equal(got, want) {
			t.Errorf("bob in the space sees %v, want %v", got, want)
		}
		resp := hierarchy(t, bob, space, nil)
		if r := resp.Rooms[2]; !r.WorldReadable {
			t.Errorf("Readable: world_readable = false")
		}
		if r := resp.Rooms[3]; r.JoinRule != event.JoinRuleRestricted || !slices.Equal(r.AllowedRoomIDs, []id.RoomID{space}) {
			t.Errorf("Restricted: join_rule %q allowed_room_ids %v", r.JoinRule, r.AllowedRoomIDs)
		}
	})

	t.Run("a plain room is a hierarchy of one", func(t *testing.T) {
		room := newRoom(t, alice, &mautrix.ReqCreateRoom{Name: "Plain", Preset: "public_chat"})
		// m.space.child in a room that is not a space is not followed.
		other := newRoom(t, alice, &mautrix.ReqCreateRoom{Preset: "public_chat"})
		addChild(t, alice, room, other, "", false)
		resp := hierarchy(t, bob, room, nil)
		if len(resp.Rooms) != 1 || resp.Rooms[0].RoomID != room || len(resp.Rooms[0].ChildrenState) != 0 {
			t.Errorf("rooms = %+v, want just the room without children", resp.Rooms)
		}
	})

	t.Run("bad parameters", func(t *testing.T) {
		space := newSpace(t, alice, "Params", "public_chat")
		for _, q := range []string{"limit=0", "limit=-1", "limit=x", "max_depth=-1", "suggested_only=maybe"} {
			url := alice.BuildURLWithQuery(mautrix.ClientURLPath{"v1", "rooms", space, "hierarchy"}, nil) + "?" + q
			_, err := alice.MakeRequest(t.Context(), http.MethodGet, url, nil, nil)
			wantMatrixError(t, err, mautrix.MInvalidParam, http.StatusBadRequest)
		}
	})
}

func TestRoomSummary(t *testing.T) {
	t.Parallel()
	srv := apitest.Start(t, "")
	alice := newUser(t, srv, "alice")
	bob := newUser(t, srv, "bob")
	// With /versions read, mautrix uses the stable v1 path (Matrix 1.15).
	if _, err := bob.Versions(t.Context()); err != nil {
		t.Fatal(err)
	}
	public := newRoom(t, alice, &mautrix.ReqCreateRoom{Name: "Lobby", Topic: "come in", Preset: "public_chat"})
	private := newRoom(t, alice, &mautrix.ReqCreateRoom{Name: "Office", Preset: "private_chat"})
	space := newSpace(t, alice, "Club", "public_chat")

	t.Run("a public room for a non-member", func(t *testing.T) {
		sum, err := bob.GetRoomSummary(t.Context(), public.String())
		if err != nil {
			t.Fatalf("summary: %v", err)
		}
		if sum.RoomID != public || sum.Name != "Lobby" || sum.Topic != "come in" || sum.NumJoinedMembers != 1 ||
			sum.JoinRule != event.JoinRulePublic || sum.RoomVersion != "12" || sum.Membership != event.MembershipLeave {
			t.Errorf("summary = %+v", sum)
		}
		sp, err := bob.GetRoomSummary(t.Context(), space.String())
		if err != nil || sp.RoomType != event.RoomTypeSpace {
			t.Errorf("space summary = %+v, %v", sp, err)
		}
	})

	t.Run("a member sees their membership", func(t *testing.T) {
		if _, err := alice.Versions(t.Context()); err != nil {
			t.Fatal(err)
		}
		sum, err := alice.GetRoomSummary(t.Context(), private.String())
		if err != nil || sum.Membership != event.MembershipJoin || sum.JoinRule != event.JoinRuleInvite {
			t.Errorf("summary = %+v, %v", sum, err)
		}
	})

	t.Run("a private room is refused", func(t *testing.T) {
		_, err := bob.GetRoomSummary(t.Context(), private.String())
		wantMatrixError(t, err, mautrix.MNotFound, http.StatusNotFound)
		_, err = bob.GetRoomSummary(t.Context(), "!nosuchroom:localhost")
		wantMatrixError(t, err, mautrix.MNotFound, http.StatusNotFound)
	})

	t.Run("an invitee may look before joining", func(t *testing.T) {
		room := newRoom(t, alice, &mautrix.ReqCreateRoom{Name: "Party", Preset: "private_chat", Invite: []id.UserID{bob.UserID}})
		sum, err := bob.GetRoomSummary(t.Context(), room.String())
		if err != nil || sum.Name != "Party" || sum.Membership != event.MembershipInvite {
			t.Errorf("summary = %+v, %v", sum, err)
		}
	})

	t.Run("without an access token only public rooms", func(t *testing.T) {
		anon := anonClient(t, srv)
		if _, err := anon.Versions(t.Context()); err != nil {
			t.Fatal(err)
		}
		sum, err := anon.GetRoomSummary(t.Context(), public.String())
		if err != nil || sum.Name != "Lobby" || sum.Membership != "" {
			t.Errorf("summary = %+v, %v", sum, err)
		}
		_, err = anon.GetRoomSummary(t.Context(), private.String())
		wantMatrixError(t, err, mautrix.MNotFound, http.StatusNotFound)
	})

	t.Run("the MSC3266 unstable path", func(t *testing.T) {
		// A client that has not read /versions uses the unstable path.
		cli := reconnect(t, srv, bob)
		sum, err := cli.GetRoomSummary(t.Context(), public.String())
		if err != nil || sum.Name != "Lobby" || sum.UnstableRoomVersion != "12" {
			t.Errorf("summary = %+v, %v", sum, err)
		}
	})

	t.Run("by alias", func(t *testing.T) {
		alias := id.NewRoomAlias("lobby", apitest.ServerName)
		if _, err := alice.CreateAlias(t.Context(), alias, public); err != nil {
			t.Skipf("room aliases not available: %v", err)
		}
		sum, err := bob.GetRoomSummary(t.Context(), alias.String())
		if err != nil || sum.RoomID != public {
			t.Errorf("summary by alias = %+v, %v", sum, err)
		}
		_, err = bob.GetRoomSummary(t.Context(), "#nosuch:localhost")
		wantMatrixError(t, err, mautrix.MNotFound, http.StatusNotFound)
	})
}
