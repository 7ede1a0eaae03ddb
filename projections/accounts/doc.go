// Package accounts is the projection of users, their devices and the
// SHA-256 hashes of their access tokens. It never holds a plaintext secret:
// passwords are bcrypt hashes and tokens are hashes, as in the log.
package accounts
