package facts

// TypeCheckpoint is a record the state machine appends by itself, with no
// actor, every N records (the cluster's checkpoint_every setting, carried
// in each command so that every node decides the same): when the records
// of one command cross a multiple of N, one checkpoint record follows
// them. It attests the log head and every projection's fold hash at that
// position, so that
//   - an auditor replaying the log can check the live node's projections
//     at every checkpoint it passes, not only at the head, and name the
//     interval where a projection first diverged;
//   - a verifier can cache its own replayed state at a checkpoint and
//     later resume from there (chronicle verify --from-checkpoint);
//   - the head it holds, published elsewhere, pins the history up to it.
//
// See projections/fold.go for what a fold hash is and why the checkpoint
// holds fold hashes rather than full digests.
const TypeCheckpoint = "log.checkpoint"

// Checkpoint is the body of a log.checkpoint record.
type Checkpoint struct {
	// Head is the position of the record just before the checkpoint and
	// HeadHash that record's chain hash (equal to the checkpoint record's
	// PrevHash; kept in the body so the body alone is self-describing).
	Head     uint64   `msgpack:"s"`
	HeadHash [32]byte `msgpack:"h"`
	// Every is the interval N the command that triggered it carried.
	Every uint64 `msgpack:"n"`
	// Projections are every projection's fold hash after record Head, in
	// the engine's apply order.
	Projections []CheckpointProjection `msgpack:"p"`
}

// CheckpointProjection is one projection's state in a checkpoint.
type CheckpointProjection struct {
	Name string `msgpack:"n"`
	// Version is the projection's code version when the checkpoint was
	// written: a fold hash is comparable only under the same versions.
	Version uint32   `msgpack:"v"`
	Fold    [32]byte `msgpack:"f"`
}
