// Package audit is what auditors run against a state store: verify the
// hash chain and every projection against a replay of the log, read and
// export records, answer point-in-time questions about rooms and users,
// list one user's or one room's trail, and rebuild projections in place.
//
// The same functions serve `chronicle` offline (a stopped server's data
// directory, opened read-only, or a backup) and the operator endpoints
// under /_chronicle/v1/audit (a consistent Pebble snapshot of a running
// node). They read through a pebble.Reader and never write the audited
// store, except RebuildInPlace, which is offline only.
//
// # Verify
//
//   - The hash chain is checked from record 1 to the head (log.VerifyRange):
//     dense seqs, every stored value matching its hash, every PrevHash its
//     predecessor's hash, the stored head the last record. The first bad
//     record is named.
//   - Every projection is rebuilt from the log into a scratch Pebble store
//     in a temporary directory, through projections.Folds. Before each
//     log.checkpoint record the replay passes, the checkpoint's recorded
//     head and fold hashes are compared with the replay's: a projection
//     whose live fold went astray is caught within one checkpoint interval
//     of where it happened. At the head, every projection's Digest (all its
//     keys and values) and fold hash are compared with the live store's,
//     and the first projection that differs, in apply order, is named.
//   - --against POSITION:HASH checks that record POSITION still has the
//     hash an operator published earlier (chronicle log head) and that the
//     chain from record 1 through it is intact: the history up to it was
//     not rewritten, and the current head extends it.
//
// # Resuming from a checkpoint
//
// Rebuilding projections needs their state at the record where the replay
// starts, and a log position alone does not give it: the live store holds
// only the state at its head. So a verifier caches its OWN replayed state
// (a Pebble checkpoint of its scratch store, hard links, taken just before
// the last log.checkpoint record it passed) in a cache directory on the
// auditor's side. verify --from-checkpoint resumes from the newest cached
// state: it checks that the record before the checkpoint still has the
// hash the cache recorded (so nothing before was rewritten since), that
// the checkpoint record's fold hashes equal the cached state's (so the
// cache is the state the log attests), checks the chain from there to the
// head and replays only the records after it. Without a usable cache it
// falls back to a full verify and says so. The cache is trusted like the
// verifier itself: keep it on the auditor's machine.
//
// # Point in time
//
// Rooms keep their state history by position (projections/rooms), so the
// state, members and timeline of a room at position S come from the live
// store without a replay; redactions that happened after S are undone from
// the log's original PDUs so the answer is what the server served at S.
// Profiles keep theirs too (projections/profiles), and are read the same
// way. Projections without history (accounts: devices; e2ekeys: keys) are
// answered by replaying the log up to S into a scratch store and querying
// it there: the generic approach that works for any projection.
package audit
