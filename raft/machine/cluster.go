package machine

import (
	"chronicle/projections/cluster"
	"chronicle/projections/facts"
)

func (x *applyCtx) nodeAnnounce() (*Result, error) {
	var p NodeAnnounce
	if rej := x.payload(&p); rej != nil {
		return &Result{Err: rej}, nil
	}
	if p.NodeID == "" {
		return &Result{Err: reject(KindInvalidParam, "node ID is required")}, nil
	}
	cur, err := cluster.GetNode(x.b, p.NodeID)
	if err != nil {
		return nil, err
	}
	if cur != nil && cur.RaftAddr == p.RaftAddr && cur.URL == p.URL {
		return &Result{}, nil // unchanged: no record
	}
	return &Result{}, x.emit(facts.TypeNodeAnnounced, &facts.NodeAnnounced{NodeID: p.NodeID, RaftAddr: p.RaftAddr, URL: p.URL})
}

func (x *applyCtx) nodeRemove() (*Result, error) {
	var p NodeRemove
	if rej := x.payload(&p); rej != nil {
		return &Result{Err: rej}, nil
	}
	cur, err := cluster.GetNode(x.b, p.NodeID)
	if err != nil || cur == nil {
		return &Result{}, err
	}
	return &Result{}, x.emit(facts.TypeNodeRemoved, &facts.NodeRemoved{NodeID: p.NodeID})
}
