package api

import (
	"net/http"

	"github.com/labstack/echo/v4"
)

// route is one row of the route table.
type route struct {
	method  string
	path    string // under /_matrix/client/{v3,r0}
	handler echo.HandlerFunc
	auth    bool
}

// routes registers the one route table. Paths are the spec's.
func (s *Server) routes() {
	table := []route{
		// Discovery and capabilities.
		{http.MethodGet, "/capabilities", s.capabilities, true},

		// Accounts and sessions.
		{http.MethodPost, "/register", s.register, false},
		{http.MethodGet, "/register/available", s.registerAvailable, false},
		{http.MethodGet, "/login", s.loginFlows, false},
		{http.MethodPost, "/login", s.login, false},
		{http.MethodGet, "/account/whoami", s.whoami, true},
		{http.MethodPost, "/logout", s.logout, true},
		{http.MethodPost, "/logout/all", s.logoutAll, true},

		// Rooms.
		{http.MethodPost, "/createRoom", s.createRoom, true},
		{http.MethodPost, "/join/:roomIdOrAlias", s.joinByIDOrAlias, true},
		{http.MethodPost, "/rooms/:roomId/join", s.joinRoom, true},
		{http.MethodPost, "/rooms/:roomId/leave", s.leaveRoom, true},
		{http.MethodPost, "/rooms/:roomId/invite", s.inviteUser, true},
		{http.MethodPost, "/rooms/:roomId/kick", s.kickUser, true},
		{http.MethodPost, "/rooms/:roomId/ban", s.banUser, true},
		{http.MethodPost, "/rooms/:roomId/unban", s.unbanUser, true},
		{http.MethodGet, "/joined_rooms", s.joinedRooms, true},
		{http.MethodPut, "/rooms/:roomId/send/:eventType/:txnId", s.sendMessage, true},
		{http.MethodPut, "/rooms/:roomId/state/:eventType", s.putState, true},
		{http.MethodPut, "/rooms/:roomId/state/:eventType/", s.putState, true},
		{http.MethodPut, "/rooms/:roomId/state/:eventType/:stateKey", s.putState, true},
		{http.MethodGet, "/rooms/:roomId/state", s.getAllState, true},
		{http.MethodGet, "/rooms/:roomId/state/:eventType", s.getState, true},
		{http.MethodGet, "/rooms/:roomId/state/:eventType/", s.getState, true},
		{http.MethodGet, "/rooms/:roomId/state/:eventType/:stateKey", s.getState, true},
		{http.MethodGet, "/rooms/:roomId/messages", s.messages, true},

		// Room aliases and the published room directory (api/directory.go).
		{http.MethodPut, "/directory/room/:roomAlias", s.putRoomAlias, true},
		{http.MethodGet, "/directory/room/:roomAlias", s.getRoomAlias, false},
		{http.MethodDelete, "/directory/room/:roomAlias", s.deleteRoomAlias, true},
		{http.MethodGet, "/rooms/:roomId/aliases", s.roomAliases, true},
		{http.MethodGet, "/directory/list/room/:roomId", s.getRoomVisibility, false},
		{http.MethodPut, "/directory/list/room/:roomId", s.putRoomVisibility, true},
		{http.MethodGet, "/publicRooms", s.publicRoomsGet, false},
		{http.MethodPost, "/publicRooms", s.publicRoomsPost, true},

		// Knocking, room upgrades and reporting content.
		{http.MethodPost, "/knock/:roomIdOrAlias", s.knockRoom, true},
		{http.MethodPost, "/rooms/:roomId/upgrade", s.upgradeRoom, true},
		{http.MethodPost, "/rooms/:roomId/report", s.reportRoom, true},
		{http.MethodPost, "/rooms/:roomId/report/:eventId", s.reportEvent, true},
		{http.MethodPost, "/users/:userId/report", s.reportUser, true},

		// Redaction, single events and their context, members, forgetting
		// (api/redact.go, api/context.go, api/members.go).
		{http.MethodPut, "/rooms/:roomId/redact/:eventId/:txnId", s.redactEvent, true},
		{http.MethodGet, "/rooms/:roomId/event/:eventId", s.getEvent, true},
		{http.MethodGet, "/rooms/:roomId/context/:eventId", s.eventContext, true},
		{http.MethodGet, "/rooms/:roomId/members", s.members, true},
		{http.MethodGet, "/rooms/:roomId/joined_members", s.joinedMembers, true},
		{http.MethodPost, "/rooms/:roomId/forget", s.forgetRoom, true},

		// Sync and filters.
		{http.MethodGet, "/sync", s.sync, true},
		{http.MethodPost, "/user/:userId/filter", s.createFilter, true},
		{http.MethodGet, "/user/:userId/filter/:filterId", s.getFilter, true},

		// What feeds sync: account data, tags, receipts, read markers,
		// typing, presence, to-device messages.
		{http.MethodGet, "/user/:userId/account_data/:type", s.getAccountData, true},
		{http.MethodPut, "/user/:userId/account_data/:type", s.putAccountData, true},
		{http.MethodGet, "/user/:userId/rooms/:roomId/account_data/:type", s.getAccountData, true},
		{http.MethodPut, "/user/:userId/rooms/:roomId/account_data/:type", s.putAccountData, true},
		{http.MethodGet, "/user/:userId/rooms/:roomId/tags", s.getTags, true},
		{http.MethodPut, "/user/:userId/rooms/:roomId/tags/:tag", s.putTag, true},
		{http.MethodDelete, "/user/:userId/rooms/:roomId/tags/:tag", s.deleteTag, true},
		{http.MethodPost, "/rooms/:roomId/receipt/:receiptType/:eventId", s.postReceipt, true},
		{http.MethodPost, "/rooms/:roomId/read_markers", s.postReadMarkers, true},
		{http.MethodPut, "/rooms/:roomId/typing/:userId", s.putTyping, true},
		{http.MethodGet, "/presence/:userId/status", s.getPresence, true},
		{http.MethodPut, "/presence/:userId/status", s.putPresence, true},
		{http.MethodPut, "/sendToDevice/:eventType/:txnId", s.sendToDevice, true},

		// End-to-end encryption keys (api/keys.go).
		{http.MethodPost, "/keys/upload", s.uploadKeys, true},
		{http.MethodPost, "/keys/query", s.queryKeys, true},
		{http.MethodPost, "/keys/claim", s.claimKeys, true},
		{http.MethodGet, "/keys/changes", s.keyChanges, true},
		// mautrix-go's GetKeyChanges sends POST; answer it the same.
		{http.MethodPost, "/keys/changes", s.keyChanges, true},
		// Cross-signing (api/keys_crosssigning.go).
		{http.MethodPost, "/keys/device_signing/upload", s.uploadCrossSigningKeys, true},
		{http.MethodPost, "/keys/signatures/upload", s.uploadSignatures, true},

		// Server-side room key backups (api/keybackup.go,
		// api/keybackup_keys.go).
		{http.MethodPost, "/room_keys/version", s.createKeyBackup, true},
		{http.MethodGet, "/room_keys/version", s.getKeyBackup, true},
		{http.MethodGet, "/room_keys/version/:version", s.getKeyBackup, true},
		{http.MethodPut, "/room_keys/version/:version", s.updateKeyBackup, true},
		{http.MethodDelete, "/room_keys/version/:version", s.deleteKeyBackup, true},
		{http.MethodPut, "/room_keys/keys", s.putRoomKeys, true},
		{http.MethodGet, "/room_keys/keys", s.getRoomKeys, true},
		{http.MethodDelete, "/room_keys/keys", s.deleteRoomKeys, true},
		{http.MethodPut, "/room_keys/keys/:roomId", s.putRoomKeys, true},
		{http.MethodGet, "/room_keys/keys/:roomId", s.getRoomKeys, true},
		{http.MethodDelete, "/room_keys/keys/:roomId", s.deleteRoomKeys, true},
		{http.MethodPut, "/room_keys/keys/:roomId/:sessionId", s.putRoomKeys, true},
		{http.MethodGet, "/room_keys/keys/:roomId/:sessionId", s.getRoomKeys, true},
		{http.MethodDelete, "/room_keys/keys/:roomId/:sessionId", s.deleteRoomKeys, true},

		// Push rules and notifications (api/pushrules.go, api/notifications.go).
		{http.MethodGet, "/pushrules", s.getPushRules, true},
		{http.MethodGet, "/pushrules/", s.getPushRules, true},
		{http.MethodGet, "/pushrules/:scope/", s.getPushRulesScope, true},
		{http.MethodGet, "/pushrules/:scope", s.getPushRulesScope, true},
		{http.MethodGet, "/pushrules/:scope/:kind/:ruleId", s.getPushRule, true},
		{http.MethodPut, "/pushrules/:scope/:kind/:ruleId", s.putPushRule, true},
		{http.MethodDelete, "/pushrules/:scope/:kind/:ruleId", s.deletePushRule, true},
		{http.MethodGet, "/pushrules/:scope/:kind/:ruleId/enabled", s.getPushRuleEnabled, true},
		{http.MethodPut, "/pushrules/:scope/:kind/:ruleId/enabled", s.putPushRuleEnabled, true},
		{http.MethodGet, "/pushrules/:scope/:kind/:ruleId/actions", s.getPushRuleActions, true},
		{http.MethodPut, "/pushrules/:scope/:kind/:ruleId/actions", s.putPushRuleActions, true},
		{http.MethodGet, "/notifications", s.notificationsList, true},

		// Profiles (api/profile.go): public reads, own writes.
		{http.MethodGet, "/profile/:userId", s.getProfile, false},
		{http.MethodGet, "/profile/:userId/:keyName", s.getProfileField, false},
		{http.MethodPut, "/profile/:userId/:keyName", s.putProfileField, true},
		{http.MethodDelete, "/profile/:userId/:keyName", s.deleteProfileField, true},

		// Voice over IP (api/voip.go).
		{http.MethodGet, "/voip/turnServer", s.turnServer, true},
	}
	for _, prefix := range []string{"/_matrix/client/v3", "/_matrix/client/r0"} {
		for _, rt := range table {
			h := rt.handler
			if rt.auth {
				h = s.authenticate(h)
			}
			s.echo.Add(rt.method, prefix+rt.path, h)
		}
	}
	// Spaces and room summaries exist only under v1 (api/spaces.go); the
	// summary takes an access token but does not require one.
	s.echo.GET("/_matrix/client/v1/rooms/:roomId/hierarchy", s.authenticate(s.hierarchy))
	for _, p := range []string{
		"/_matrix/client/v1/room_summary/:roomIdOrAlias",
		"/_matrix/client/unstable/im.nheko.summary/summary/:roomIdOrAlias",
		"/_matrix/client/unstable/im.nheko.summary/rooms/:roomIdOrAlias/summary",
	} {
		s.echo.GET(p, s.authenticateIfToken(s.roomSummaryHandler))
	}
	// timestamp_to_event exists only under v1 (api/context.go).
	s.echo.GET("/_matrix/client/v1/rooms/:roomId/timestamp_to_event", s.authenticate(s.timestampToEvent))
	// Relations and threads exist only under v1 (api/relations.go).
	for _, p := range []string{
		"/_matrix/client/v1/rooms/:roomId/relations/:eventId",
		"/_matrix/client/v1/rooms/:roomId/relations/:eventId/:relType",
		"/_matrix/client/v1/rooms/:roomId/relations/:eventId/:relType/:eventType",
	} {
		s.echo.GET(p, s.authenticate(s.relations))
	}
	s.echo.GET("/_matrix/client/v1/rooms/:roomId/threads", s.authenticate(s.threads))
	s.echo.GET("/_matrix/client/versions", s.versions)
	s.echo.GET("/.well-known/matrix/client", s.wellKnown)
	// Unknown paths get echo's 404 and known paths with another method its
	// 405; the error table turns both into M_UNRECOGNIZED.
}
