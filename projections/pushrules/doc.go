// Package pushrules is the projection of users' push rules (the spec's
// "Push Rules"), the server-default rules, and the evaluation of a ruleset
// against an event.
//
// What is stored. Only what a user changed is a log record and lives here:
// their own rules, in order, per kind, and their changes (enabled, actions)
// to server-default rules, all in one value per user (a user has a handful
// of rules; one Get loads them). The server-default rules are code
// (defaults.go): the spec's predefined rules plus the three legacy mention
// rules that Synapse still ships and clients still rely on
// (.m.rule.contains_display_name, .m.rule.contains_user_name,
// .m.rule.roomnotif; the spec deprecated them in v1.17, and they are
// disabled for events carrying m.mentions, as the spec says). A user's full
// ruleset is the merge the spec describes: .m.rule.master first, then the
// user's rules of each kind before the server-default rules of that kind.
// Changing the default rules changes what the notifications projection
// folds, so it is a version bump of both projections (a replay).
//
// Evaluation (eval.go) walks the rules in priority order. The condition
// kinds that need room data (contains_display_name, room_member_count,
// sender_notification_permission) and event_property_is/contains are
// evaluated by mautrix-go's pushrules package; event_match and content
// rules are matched here, because mautrix treats a wildcard-free pattern as
// "contains" (the spec: the whole value; content.body: a substring bounded
// by word boundaries) and compiles a regexp on every call. Compiled globs
// are cached process-wide; the cache is a pure function of the pattern, so
// it cannot make replicas diverge. Actions follow the spec: notify counts,
// the highlight tweak (no value means true) highlights, and the historical
// dont_notify and coalesce are ignored.
//
// Per member. For members with only the server-default rules, what does
// not depend on whose rules they are is decided once per event (Event):
// the first rule every member matches (Shared), and which per-member rules
// ranked above it could match anyone at all (a message without m.mentions
// cannot match .m.rule.is_user_mention for anyone). A member then costs
// the remaining per-member rules, usually the display name and localpart
// checks against a body read and lowered once per event.
//
// Everything user-supplied is validated twice with the same functions
// (validate.go): by the API for a helpful error and by the state machine,
// which refuses what does not validate identically on every node. In
// particular event_property_is/contains values must be scalars, because
// mautrix compares them with == (an object would panic).
package pushrules
