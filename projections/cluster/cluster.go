// Package cluster is the projection of the cluster's member registry: each
// node's client-facing URL and Raft address as it last announced them.
// Raft's own configuration says who votes; this registry says where an
// operator or a client reaches each node (the leader's URL in status).
package cluster

import (
	"fmt"

	"github.com/cockroachdb/pebble/v2"

	rlog "chronicle/log"
	"chronicle/projections"
	"chronicle/projections/facts"
)

// Prefix is the key space of this projection.
const Prefix byte = 0x40

const tagNode byte = 'n' // n nodeID -> Node

func nodeKey(id string) []byte { return projections.NewKey(Prefix, tagNode).Str(id) }

// Node is one member as announced.
type Node struct {
	ID       string `msgpack:"i"`
	RaftAddr string `msgpack:"r"`
	URL      string `msgpack:"u"`
}

// Projection folds cluster records.
type Projection struct{}

func (Projection) Name() string    { return "cluster" }
func (Projection) Version() uint32 { return 1 }
func (Projection) Prefix() byte    { return Prefix }

// Apply folds one record.
func (Projection) Apply(w projections.Writer, rec *rlog.Record) error {
	switch rec.Type {
	case facts.TypeNodeAnnounced:
		var f facts.NodeAnnounced
		if err := facts.Decode(rec.Body, &f); err != nil {
			return err
		}
		return projections.SetMsgpack(w, nodeKey(f.NodeID), &Node{ID: f.NodeID, RaftAddr: f.RaftAddr, URL: f.URL})
	case facts.TypeNodeRemoved:
		var f facts.NodeRemoved
		if err := facts.Decode(rec.Body, &f); err != nil {
			return err
		}
		if err := w.Delete(nodeKey(f.NodeID), nil); err != nil {
			return fmt.Errorf("remove node %s: %w", f.NodeID, err)
		}
	}
	return nil
}

// GetNode returns a node's registry entry, or nil.
func GetNode(r pebble.Reader, id string) (*Node, error) {
	return projections.Lookup[Node](r, nodeKey(id))
}

// Nodes lists every registered node in ID order.
func Nodes(r pebble.Reader) ([]Node, error) {
	p := projections.NewKey(Prefix, tagNode)
	it, err := r.NewIter(&pebble.IterOptions{LowerBound: p, UpperBound: p.End()})
	if err != nil {
		return nil, fmt.Errorf("list nodes: %w", err)
	}
	defer it.Close()
	var out []Node
	for it.First(); it.Valid(); it.Next() {
		n, err := projections.Lookup[Node](r, it.Key())
		if err != nil {
			return nil, err
		}
		out = append(out, *n)
	}
	return out, it.Error()
}
