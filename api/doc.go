// Package api is Chronicle's Client-Server API edge: an echo server with one
// route table (routes.go) and one error table (errors.go). Handlers are
// small: parse and authenticate the request, build a machine.Command with
// every non-deterministic input filled in (time, random IDs, password and
// token hashes), Submit it, and render the result; or read projections
// through one consistent snapshot.
//
// Handlers never write storage and never ask which node leads: writes go
// through the Submitter, reads through the State.
//
// Invariants:
//   - Every error a client can cause is rendered as the spec's
//     {"errcode","error"} with its status; a 500 is a bug and is logged.
//   - No plaintext secret leaves this package: passwords are hashed with
//     bcrypt and access tokens are reduced to SHA-256 before they reach a
//     command.
package api
