package rooms

import (
	"bytes"
	"fmt"

	"github.com/cockroachdb/pebble/v2"
)

// SharesJoinedRoom reports whether users a and b are both joined to some
// room. It walks both users' membership lists together, each iterator
// seeking to the other's room, so it costs about as many seeks as the
// smaller list has rooms (often fewer), not the sum of both lists: a user
// in a thousand rooms is compared with one in two rooms in a few seeks.
func SharesJoinedRoom(r pebble.Reader, a, b string) (bool, error) {
	pa, pb := memberPrefix(a), memberPrefix(b)
	ia, err := r.NewIter(&pebble.IterOptions{LowerBound: pa, UpperBound: pa.End()})
	if err != nil {
		return false, fmt.Errorf("rooms of %s: %w", a, err)
	}
	defer ia.Close()
	ib, err := r.NewIter(&pebble.IterOptions{LowerBound: pb, UpperBound: pb.End()})
	if err != nil {
		return false, fmt.Errorf("rooms of %s: %w", b, err)
	}
	defer ib.Close()
	joined := func(v []byte) (bool, error) {
		var m Membership
		if err := decode(v, &m); err != nil {
			return false, err
		}
		return m.Membership == "join", nil
	}
	va, vb := ia.First(), ib.First()
	for va && vb {
		ka, kb := ia.Key()[len(pa):], ib.Key()[len(pb):] // roomID + 0x00
		switch c := bytes.Compare(ka, kb); {
		case c < 0:
			va = ia.SeekGE(append(pa[:len(pa):len(pa)], kb...))
		case c > 0:
			vb = ib.SeekGE(append(pb[:len(pb):len(pb)], ka...))
		default:
			ja, err := joined(ia.Value())
			if err != nil {
				return false, err
			}
			if ja {
				if jb, err := joined(ib.Value()); err != nil || jb {
					return jb, err
				}
			}
			va, vb = ia.Next(), ib.Next()
		}
	}
	if err := ia.Error(); err != nil {
		return false, err
	}
	return false, ib.Error()
}
