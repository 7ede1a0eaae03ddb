// Package reports is the projection of the content reports users file
// (events, rooms and users reported to the server's administrators). The
// administrators list them, oldest first, through GET
// /_chronicle/v1/reports. A report's ID is the log position of its record,
// so every node numbers reports alike and the list pages by position.
package reports
