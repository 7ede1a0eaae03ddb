package e2e

import (
	"errors"
	"net/http"
	"slices"
	"testing"

	"maunium.net/go/mautrix"
	"maunium.net/go/mautrix/event"
	"maunium.net/go/mautrix/id"

	"chronicle/api/apitest"
)

// wantErrcode fails unless err is a Matrix error with exactly this errcode
// and HTTP status (for codes, like M_UNKNOWN, that mautrix's errors.Is
// matching does not cover).
func wantErrcode(t *testing.T, err error, code string, status int) {
	t.Helper()
	var httpErr mautrix.HTTPError
	if !errors.As(err, &httpErr) || httpErr.Response == nil || httpErr.RespError == nil {
		t.Fatalf("got %v, want %s (HTTP %d)", err, code, status)
	}
	if httpErr.RespError.ErrCode != code || httpErr.Response.StatusCode != status {
		t.Fatalf("got %s (HTTP %d): %s, want %s (HTTP %d)", httpErr.RespError.ErrCode, httpErr.Response.StatusCode, httpErr.RespError.Err, code, status)
	}
}

func canonicalAlias(t *testing.T, cli *mautrix.Client, roomID id.RoomID) event.CanonicalAliasEventContent {
	t.Helper()
	var c event.CanonicalAliasEventContent
	if err := cli.StateEvent(t.Context(), roomID, event.StateCanonicalAlias, "", &c); err != nil {
		t.Fatalf("read m.room.canonical_alias: %v", err)
	}
	return c
}

func aliasesOf(t *testing.T, cli *mautrix.Client, roomID id.RoomID) []id.RoomAlias {
	t.Helper()
	resp, err := cli.GetAliases(t.Context(), roomID)
	if err != nil {
		t.Fatalf("%s lists aliases of %s: %v", cli.UserID, roomID, err)
	}
	slices.Sort(resp.Aliases)
	return resp.Aliases
}

func TestRoomAliases(t *testing.T) {
	t.Parallel()
	srv := apitest.Start(t, "")
	alice := newUser(t, srv, "alice")
	bob := newUser(t, srv, "bob")
	carol := newUser(t, srv, "carol")
	anon := anonClient(t, srv)
	ctx := t.Context()
	lobbyAlias := id.RoomAlias("#lobby:" + apitest.ServerName)
	local := func(name string) id.RoomAlias { return id.NewRoomAlias(name, apitest.ServerName) }

	lobby := newRoom(t, alice, &mautrix.ReqCreateRoom{Preset: "public_chat", RoomAliasName: "lobby", Name: "Lobby"})
	secret := newRoom(t, alice, &mautrix.ReqCreateRoom{Preset: "private_chat", RoomAliasName: "secret"})

	t.Run("createRoom maps the alias and makes it canonical", func(t *testing.T) {
		if c := canonicalAlias(t, alice, lobby); c.Alias != lobbyAlias {
			t.Fatalf("canonical alias %q, want %q", c.Alias, lobbyAlias)
		}
		// Resolving needs no access token.
		resp, err := anon.ResolveAlias(ctx, lobbyAlias)
		if err != nil {
			t.Fatalf("resolve: %v", err)
		}
		if resp.RoomID != lobby || !slices.Equal(resp.Servers, []string{apitest.ServerName}) {
			t.Fatalf("resolve = %+v, want room %s on [%s]", resp, lobby, apitest.ServerName)
		}
	})

	t.Run("createRoom refuses a taken or invalid alias", func(t *testing.T) {
		_, err := bob.CreateRoom(ctx, &mautrix.ReqCreateRoom{RoomAliasName: "lobby"})
		wantMatrixError(t, err, mautrix.MRoomInUse, http.StatusBadRequest)
		_, err = bob.CreateRoom(ctx, &mautrix.ReqCreateRoom{RoomAliasName: "a:b"})
		wantMatrixError(t, err, mautrix.MInvalidParam, http.StatusBadRequest)
	})

	t.Run("create, resolve and their errors", func(t *testing.T) {
		if _, err := alice.CreateAlias(ctx, local("second"), lobby); err != nil {
			t.Fatalf("create alias: %v", err)
		}
		_, err := alice.CreateAlias(ctx, local("second"), secret)
		wantErrcode(t, err, "M_UNKNOWN", http.StatusConflict)
		_, err = alice.CreateAlias(ctx, "#elsewhere:other.example", lobby)
		wantMatrixError(t, err, mautrix.MInvalidParam, http.StatusBadRequest)
		_, err = alice.CreateAlias(ctx, "nohash:localhost", lobby)
		wantMatrixError(t, err, mautrix.MInvalidParam, http.StatusBadRequest)
		// Only members may point an alias at a room.
		_, err = carol.CreateAlias(ctx, local("carols"), lobby)
		wantMatrixError(t, err, mautrix.MForbidden, http.StatusForbidden)

		_, err = anon.ResolveAlias(ctx, local("nope"))
		wantMatrixError(t, err, mautrix.MNotFound, http.StatusNotFound)
		_, err = anon.ResolveAlias(ctx, "#nosuchserver")
		wantMatrixError(t, err, mautrix.MInvalidParam, http.StatusBadRequest)
		_, err = anon.ResolveAlias(ctx, "#far:other.example")
		wantMatrixError(t, err, mautrix.MNotFound, http.StatusNotFound)
	})

	t.Run("join by alias", func(t *testing.T) {
		resp, err := bob.JoinRoom(ctx, lobbyAlias.String(), nil)
		if err != nil {
			t.Fatalf("join %s: %v", lobbyAlias, err)
		}
		if resp.RoomID != lobby {
			t.Fatalf("joined %s, want %s", resp.RoomID, lobby)
		}
		var m event.MemberEventContent
		if err := alice.StateEvent(ctx, lobby, event.StateMember, bob.UserID.String(), &m); err != nil || m.Membership != event.MembershipJoin {
			t.Fatalf("bob's membership after joining by alias: %q (%v)", m.Membership, err)
		}
		_, err = bob.JoinRoom(ctx, local("nope").String(), nil)
		wantMatrixError(t, err, mautrix.MNotFound, http.StatusNotFound)
		// An alias resolves, but the join rules still apply.
		_, err = carol.JoinRoom(ctx, local("secret").String(), nil)
		wantMatrixError(t, err, mautrix.MForbidden, http.StatusForbidden)
	})

	t.Run("list a room's aliases", func(t *testing.T) {
		want := []id.RoomAlias{local("lobby"), local("second")}
		if got := aliasesOf(t, bob, lobby); !slices.Equal(got, want) {
			t.Fatalf("aliases %v, want %v", got, want)
		}
		// Not joined, and the rooms are not world-readable.
		_, err := carol.GetAliases(ctx, secret)
		wantMatrixError(t, err, mautrix.MForbidden, http.StatusForbidden)
		_, err = carol.GetAliases(ctx, lobby)
		wantMatrixError(t, err, mautrix.MForbidden, http.StatusForbidden)
		_, err = carol.GetAliases(ctx, "!nosuchroom:localhost")
		wantMatrixError(t, err, mautrix.MForbidden, http.StatusForbidden)
		// World-readable rooms let anyone list them.
		if _, err := alice.SendStateEvent(ctx, secret, event.StateHistoryVisibility, "", &event.HistoryVisibilityEventContent{HistoryVisibility: event.HistoryVisibilityWorldReadable}); err != nil {
			t.Fatal(err)
		}
		if got := aliasesOf(t, carol, secret); !slices.Equal(got, []id.RoomAlias{local("secret")}) {
			t.Fatalf("aliases of the world-readable room %v", got)
		}
	})

	t.Run("m.room.canonical_alias is validated", func(t *testing.T) {
		send := func(c *event.CanonicalAliasEventContent) error {
			_, err := alice.SendStateEvent(ctx, lobby, event.StateCanonicalAlias, "", c)
			return err
		}
		wantMatrixError(t, send(&event.CanonicalAliasEventContent{Alias: local("secret")}), mautrix.RespError{ErrCode: "M_BAD_ALIAS"}, http.StatusBadRequest)
		wantMatrixError(t, send(&event.CanonicalAliasEventContent{Alias: local("unmapped")}), mautrix.RespError{ErrCode: "M_BAD_ALIAS"}, http.StatusBadRequest)
		wantMatrixError(t, send(&event.CanonicalAliasEventContent{Alias: lobbyAlias, AltAliases: []id.RoomAlias{local("secret")}}), mautrix.RespError{ErrCode: "M_BAD_ALIAS"}, http.StatusBadRequest)
		wantMatrixError(t, send(&event.CanonicalAliasEventContent{Alias: "not-an-alias"}), mautrix.MInvalidParam, http.StatusBadRequest)
		// Bob may not send it at all: the auth rules answer first.
		_, err := bob.SendStateEvent(ctx, lobby, event.StateCanonicalAlias, "", &event.CanonicalAliasEventContent{Alias: local("unmapped")})
		wantMatrixError(t, err, mautrix.MForbidden, http.StatusForbidden)

		ok := &event.CanonicalAliasEventContent{Alias: lobbyAlias, AltAliases: []id.RoomAlias{local("second"), "#remote:other.example"}}
		if err := send(ok); err != nil {
			t.Fatalf("valid canonical alias refused: %v", err)
		}
		if c := canonicalAlias(t, alice, lobby); !slices.Equal(c.AltAliases, ok.AltAliases) {
			t.Fatalf("alt_aliases %v", c.AltAliases)
		}
	})

	t.Run("delete", func(t *testing.T) {
		// Bob (power 0) may not delete alice's alias; carol is not in the room.
		_, err := bob.DeleteAlias(ctx, local("second"))
		wantMatrixError(t, err, mautrix.MForbidden, http.StatusForbidden)
		_, err = carol.DeleteAlias(ctx, local("second"))
		wantMatrixError(t, err, mautrix.MForbidden, http.StatusForbidden)
		_, err = bob.DeleteAlias(ctx, local("nope"))
		wantMatrixError(t, err, mautrix.MNotFound, http.StatusNotFound)
		_, err = bob.DeleteAlias(ctx, "#far:other.example")
		wantMatrixError(t, err, mautrix.MInvalidParam, http.StatusBadRequest)

		// The creator of an alias may delete it.
		if _, err := bob.CreateAlias(ctx, local("bobs"), lobby); err != nil {
			t.Fatal(err)
		}
		if _, err := bob.DeleteAlias(ctx, local("bobs")); err != nil {
			t.Fatalf("bob deletes his own alias: %v", err)
		}
		// So may a member with the power to send m.room.canonical_alias.
		if _, err := bob.CreateAlias(ctx, local("bobs"), lobby); err != nil {
			t.Fatal(err)
		}
		if _, err := alice.DeleteAlias(ctx, local("bobs")); err != nil {
			t.Fatalf("alice deletes bob's alias in her room: %v", err)
		}
		if _, err := alice.DeleteAlias(ctx, local("second")); err != nil {
			t.Fatalf("delete: %v", err)
		}
		_, err = alice.DeleteAlias(ctx, local("second"))
		wantMatrixError(t, err, mautrix.MNotFound, http.StatusNotFound)
		_, err = anon.ResolveAlias(ctx, local("second"))
		wantMatrixError(t, err, mautrix.MNotFound, http.StatusNotFound)
		if got := aliasesOf(t, alice, lobby); !slices.Equal(got, []id.RoomAlias{lobbyAlias}) {
			t.Fatalf("aliases after deletion %v", got)
		}

		// Deleting the canonical alias leaves the event as it is, and the
		// room can still edit it without first dropping the stale alias.
		if _, err := alice.DeleteAlias(ctx, lobbyAlias); err != nil {
			t.Fatal(err)
		}
		if c := canonicalAlias(t, alice, lobby); c.Alias != lobbyAlias {
			t.Fatalf("canonical alias after deleting it: %q", c.Alias)
		}
		_, err = alice.SendStateEvent(ctx, lobby, event.StateCanonicalAlias, "", &event.CanonicalAliasEventContent{Alias: lobbyAlias})
		if err != nil {
			t.Fatalf("editing a canonical alias event that keeps a deleted alias: %v", err)
		}
		// The freed alias can be taken again.
		if _, err := alice.CreateAlias(ctx, lobbyAlias, secret); err != nil {
			t.Fatalf("re-create a deleted alias: %v", err)
		}
	})
}

// publicRoomsFiltered is POST /publicRooms (mautrix has no wrapper).
func publicRoomsFiltered(cli *mautrix.Client, t *testing.T, body map[string]any) (*mautrix.RespPublicRooms, error) {
	var resp mautrix.RespPublicRooms
	_, err := cli.MakeRequest(t.Context(), http.MethodPost, cli.BuildClientURL("v3", "publicRooms"), body, &resp)
	return &resp, err
}

func roomVisibility(t *testing.T, cli *mautrix.Client, roomID id.RoomID) (string, error) {
	var resp struct {
		Visibility string `json:"visibility"`
	}
	_, err := cli.MakeRequest(t.Context(), http.MethodGet, cli.BuildClientURL("v3", "directory", "list", "room", roomID), nil, &resp)
	return resp.Visibility, err
}

func setRoomVisibility(t *testing.T, cli *mautrix.Client, roomID id.RoomID, body any) error {
	_, err := cli.MakeRequest(t.Context(), http.MethodPut, cli.BuildClientURL("v3", "directory", "list", "room", roomID), body, nil)
	return err
}

func chunkIDs(resp *mautrix.RespPublicRooms) []id.RoomID {
	var out []id.RoomID
	for _, r := range resp.Chunk {
		out = append(out, r.RoomID)
	}
	return out
}

func TestPublicRoomDirectory(t *testing.T) {
	t.Parallel()
	srv := apitest.Start(t, "")
	alice := newUser(t, srv, "alice")
	bob := newUser(t, srv, "bob")
	carol := newUser(t, srv, "carol")
	anon := anonClient(t, srv)
	ctx := t.Context()

	alpha := newRoom(t, alice, &mautrix.ReqCreateRoom{Preset: "public_chat", Visibility: "public", Name: "Alpha", Topic: "first things first"})
	beta := newRoom(t, alice, &mautrix.ReqCreateRoom{Preset: "public_chat", Visibility: "public", Name: "Beta", Topic: "Gardening tips", RoomAliasName: "beta"})
	gamma := newRoom(t, alice, &mautrix.ReqCreateRoom{Preset: "private_chat", Name: "Gamma"})
	space := newRoom(t, alice, &mautrix.ReqCreateRoom{Preset: "private_chat", Visibility: "public", Name: "Space", CreationContent: map[string]any{"type": "m.space"}})
	for _, cli := range []*mautrix.Client{bob, carol} {
		if _, err := cli.JoinRoomByID(ctx, beta); err != nil {
			t.Fatal(err)
		}
	}
	if _, err := bob.JoinRoomByID(ctx, alpha); err != nil {
		t.Fatal(err)
	}
	// Member counts: beta 3, alpha 2, space 1. Gamma is not published.

	t.Run("list without authentication", func(t *testing.T) {
		resp, err := anon.PublicRooms(ctx, &mautrix.ReqPublicRooms{})
		if err != nil {
			t.Fatalf("publicRooms: %v", err)
		}
		if got, want := chunkIDs(resp), []id.RoomID{beta, alpha, space}; !slices.Equal(got, want) {
			t.Fatalf("chunk %v, want %v (largest first)", got, want)
		}
		if resp.TotalRoomCountEstimate != 3 || resp.NextBatch != "" || resp.PrevBatch != "" {
			t.Fatalf("total %d next %q prev %q", resp.TotalRoomCountEstimate, resp.NextBatch, resp.PrevBatch)
		}
		b := resp.Chunk[0]
		if b.Name != "Beta" || b.Topic != "Gardening tips" || b.CanonicalAlias != "#beta:localhost" || b.NumJoinedMembers != 3 ||
			b.WorldReadable || b.GuestCanJoin || b.JoinRule != event.JoinRulePublic || b.RoomType != "" {
			t.Fatalf("beta entry %+v", b)
		}
		if s := resp.Chunk[2]; s.RoomType != event.RoomTypeSpace || s.NumJoinedMembers != 1 || s.JoinRule != event.JoinRuleInvite || !s.GuestCanJoin {
			t.Fatalf("space entry %+v", s)
		}
	})

	t.Run("pagination", func(t *testing.T) {
		var seen []id.RoomID
		var pages []*mautrix.RespPublicRooms
		since := ""
		for range 5 {
			resp, err := bob.PublicRooms(ctx, &mautrix.ReqPublicRooms{Limit: 1, Since: since})
			if err != nil {
				t.Fatalf("page after %q: %v", since, err)
			}
			if len(resp.Chunk) != 1 {
				t.Fatalf("page after %q holds %d rooms", since, len(resp.Chunk))
			}
			pages = append(pages, resp)
			seen = append(seen, resp.Chunk[0].RoomID)
			if (since == "") != (resp.PrevBatch == "") {
				t.Fatalf("page after %q: prev_batch %q", since, resp.PrevBatch)
			}
			if since = resp.NextBatch; since == "" {
				break
			}
		}
		if want := []id.RoomID{beta, alpha, space}; !slices.Equal(seen, want) {
			t.Fatalf("paged through %v, want %v", seen, want)
		}
		// Back from the last page.
		back, err := bob.PublicRooms(ctx, &mautrix.ReqPublicRooms{Limit: 2, Since: pages[2].PrevBatch})
		if err != nil {
			t.Fatal(err)
		}
		if got := chunkIDs(back); !slices.Equal(got, []id.RoomID{beta, alpha}) || back.PrevBatch != "" || back.NextBatch == "" {
			t.Fatalf("previous page %v (prev %q next %q)", got, back.PrevBatch, back.NextBatch)
		}
		_, err = bob.PublicRooms(ctx, &mautrix.ReqPublicRooms{Since: "garbage"})
		wantMatrixError(t, err, mautrix.MInvalidParam, http.StatusBadRequest)
		_, err = bob.PublicRooms(ctx, &mautrix.ReqPublicRooms{Server: "other.example"})
		wantMatrixError(t, err, mautrix.MInvalidParam, http.StatusBadRequest)
		_, err = publicRoomsFiltered(bob, t, map[string]any{"limit": -1})
		wantMatrixError(t, err, mautrix.MInvalidParam, http.StatusBadRequest)
	})

	t.Run("filters", func(t *testing.T) {
		for _, tc := range []struct {
			name   string
			filter map[string]any
			want   []id.RoomID
		}{
			{"topic, any case", map[string]any{"generic_search_term": "GARDEN"}, []id.RoomID{beta}},
			{"name", map[string]any{"generic_search_term": "alp"}, []id.RoomID{alpha}},
			{"canonical alias", map[string]any{"generic_search_term": "#beta:"}, []id.RoomID{beta}},
			{"nothing matches", map[string]any{"generic_search_term": "gamma"}, nil},
			{"rooms without a type", map[string]any{"room_types": []any{nil}}, []id.RoomID{beta, alpha}},
			{"spaces", map[string]any{"room_types": []any{"m.space"}}, []id.RoomID{space}},
			{"both", map[string]any{"room_types": []any{nil, "m.space"}}, []id.RoomID{beta, alpha, space}},
		} {
			t.Run(tc.name, func(t *testing.T) {
				resp, err := publicRoomsFiltered(carol, t, map[string]any{"filter": tc.filter})
				if err != nil {
					t.Fatal(err)
				}
				if got := chunkIDs(resp); !slices.Equal(got, tc.want) || resp.TotalRoomCountEstimate != len(tc.want) {
					t.Fatalf("chunk %v (total %d), want %v", got, resp.TotalRoomCountEstimate, tc.want)
				}
			})
		}
		// POST needs an access token.
		_, err := publicRoomsFiltered(anon, t, map[string]any{})
		wantMatrixError(t, err, mautrix.MMissingToken, http.StatusUnauthorized)
		// Rooms are published for no third-party network.
		resp, err := publicRoomsFiltered(carol, t, map[string]any{"third_party_instance_id": "irc"})
		if err != nil || len(resp.Chunk) != 0 {
			t.Fatalf("third-party instance: %v, %v", chunkIDs(resp), err)
		}
	})

	t.Run("directory visibility", func(t *testing.T) {
		for roomID, want := range map[id.RoomID]string{alpha: "public", gamma: "private"} {
			got, err := roomVisibility(t, anon, roomID)
			if err != nil || got != want {
				t.Fatalf("visibility of %s = %q (%v), want %q", roomID, got, err, want)
			}
		}
		_, err := roomVisibility(t, anon, "!nosuchroom:localhost")
		wantMatrixError(t, err, mautrix.MNotFound, http.StatusNotFound)

		// Bob is joined to beta but lacks the power; carol is not in gamma.
		wantMatrixError(t, setRoomVisibility(t, bob, beta, map[string]any{"visibility": "private"}), mautrix.MForbidden, http.StatusForbidden)
		wantMatrixError(t, setRoomVisibility(t, carol, gamma, map[string]any{"visibility": "public"}), mautrix.MForbidden, http.StatusForbidden)
		wantMatrixError(t, setRoomVisibility(t, alice, "!nosuchroom:localhost", map[string]any{"visibility": "public"}), mautrix.MNotFound, http.StatusNotFound)
		wantMatrixError(t, setRoomVisibility(t, alice, gamma, map[string]any{"visibility": "secret"}), mautrix.MInvalidParam, http.StatusBadRequest)
		wantMatrixError(t, setRoomVisibility(t, anon, gamma, map[string]any{"visibility": "public"}), mautrix.MMissingToken, http.StatusUnauthorized)

		// The visibility defaults to public.
		if err := setRoomVisibility(t, alice, gamma, map[string]any{}); err != nil {
			t.Fatalf("publish gamma: %v", err)
		}
		if got, _ := roomVisibility(t, anon, gamma); got != "public" {
			t.Fatalf("gamma is %q after publishing", got)
		}
		if err := setRoomVisibility(t, alice, beta, map[string]any{"visibility": "private"}); err != nil {
			t.Fatalf("unpublish beta: %v", err)
		}
		resp, err := anon.PublicRooms(ctx, nil)
		if err != nil {
			t.Fatal(err)
		}
		if got := chunkIDs(resp); !slices.Equal(got, []id.RoomID{alpha, gamma, space}) && !slices.Equal(got, []id.RoomID{alpha, space, gamma}) {
			t.Fatalf("directory after changes %v", got)
		}
		if resp.Chunk[0].NumJoinedMembers != 2 {
			t.Fatalf("alpha has %d joined members, want 2", resp.Chunk[0].NumJoinedMembers)
		}
	})
}
