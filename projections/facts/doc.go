// Package facts defines the record types of the log and their bodies: the
// vocabulary shared by the state machine that writes records and the
// projections that fold them.
//
// Compatibility rules (the log is forever): a record type, once shipped,
// never changes meaning; a new meaning is a new type. Body fields carry
// explicit msgpack tags that are never renamed or reused; new fields are
// additive and must decode as their zero value from old records.
package facts
