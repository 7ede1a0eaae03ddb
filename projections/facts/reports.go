package facts

// TypeReportFiled records a user's report of content to the server's
// administrators (POST /rooms/{roomId}/report/{eventId},
// /rooms/{roomId}/report and /users/{userId}/report). The reporter is the
// record's actor.
const TypeReportFiled = "report.filed"

// Report kinds.
const (
	ReportEvent = "event"
	ReportRoom  = "room"
	ReportUser  = "user"
)

// ReportFiled is one report. RoomID is set for event and room reports,
// EventID for event reports, UserID for user reports.
type ReportFiled struct {
	Kind    string `msgpack:"k"`
	RoomID  string `msgpack:"r,omitempty"`
	EventID string `msgpack:"e,omitempty"`
	UserID  string `msgpack:"u,omitempty"`
	Reason  string `msgpack:"why,omitempty"`
	// Score is the event report's score (-100 to 0) from clients of spec
	// versions before 1.18, which removed it; nil when not given.
	Score *int `msgpack:"sc,omitempty"`
}
