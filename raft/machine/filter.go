package machine

import (
	"chronicle/projections/facts"
	"chronicle/projections/filters"
)

func (x *applyCtx) createFilter() (*Result, error) {
	var p CreateFilter
	if rej := x.payload(&p); rej != nil {
		return &Result{Err: rej}, nil
	}
	id, err := filters.NextID(x.b, x.cmd.Actor)
	if err != nil {
		return nil, err
	}
	if err := x.emit(facts.TypeFilterCreated, &facts.FilterCreated{UserID: x.cmd.Actor, FilterID: id, Filter: p.Filter}); err != nil {
		return nil, err
	}
	return &Result{FilterID: id}, nil
}
