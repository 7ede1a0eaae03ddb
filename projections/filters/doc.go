// Package filters is the projection of the sync filters users upload
// (POST /user/{userId}/filter). Filter IDs are decided by the state machine
// as a per-user counter, so every node hands out the same IDs.
package filters
