package api

// Event relationships: /relations, /threads and the bundled aggregations
// (unsigned["m.relations"]) of events served by /messages, /sync,
// /relations, /threads, /event and /context. The indexes are the
// relations projection's (projections/relations); everything here filters
// them by the reader's history visibility.

import (
	"math"
	"net/http"

	"github.com/cockroachdb/pebble/v2"
	"github.com/labstack/echo/v4"

	rlog "chronicle/log"
	"chronicle/projections/relations"
	"chronicle/projections/rooms"
)

const (
	defaultRelationsLimit = 10
	defaultThreadsLimit   = 10
	// relationsRecursionDepth is how many levels recurse=true follows (the
	// spec asks for at least 3).
	relationsRecursionDepth = 3
	// maxRecursedRelations bounds the events one recursive request
	// collects before paging; beyond it the result is cut short.
	maxRecursedRelations = 10000
	// relationsScanFactor bounds how many invisible children or threads a
	// page may skip before it returns what it has, with a token.
	relationsScanFactor = 20
	// bundleScanBudget bounds how many invisible thread events or edits a
	// bundle skips looking for the latest visible one.
	bundleScanBudget = 100
	// maxBundledReferences bounds an m.reference bundle's chunk.
	maxBundledReferences = 500
)

// pageBounds turns from/to tokens into the position range (after, upTo]
// a page may read, as /messages does: backward pages end at from and stop
// above to; forward pages start after from and end at to.
func pageBounds(head, from, to uint64, hasFrom, hasTo, backward bool) (after, upTo uint64) {
	upTo = head
	if backward {
		if hasFrom {
			upTo = min(from, head)
		}
		if hasTo {
			after = to
		}
		return after, upTo
	}
	if hasFrom {
		after = from
	}
	if hasTo {
		upTo = min(to, head)
	}
	return after, upTo
}

// relationsRequest is a parsed /relations request.
type relationsRequest struct {
	roomID, parentID, relType, evType string
	backward                          bool
	from, to                          uint64
	hasFrom, hasTo                    bool
	limit                             int
	recurse, hasRecurse               bool
}

func parseRelationsRequest(c echo.Context) (*relationsRequest, error) {
	q := &relationsRequest{
		roomID: c.Param("roomId"), parentID: c.Param("eventId"),
		relType: c.Param("relType"), evType: c.Param("eventType"), backward: true,
	}
	for _, part := range []string{q.roomID, q.parentID, q.relType, q.evType} {
		if !validKeyPart(part) {
			return nil, errInvalidParam("invalid room ID, event ID, relation type or event type")
		}
	}
	switch c.QueryParam("dir") {
	case "", "b":
	case "f":
		q.backward = false
	default:
		return nil, errInvalidParam("dir must be b or f")
	}
	var err error
	if q.limit, err = parseLimit(c, defaultRelationsLimit); err != nil {
		return nil, err
	}
	q.limit = max(q.limit, 1)
	if v := c.QueryParam("from"); v != "" {
		if q.from, q.hasFrom = parseToken(v); !q.hasFrom {
			return nil, errInvalidParam("invalid from token")
		}
	}
	if v := c.QueryParam("to"); v != "" {
		if q.to, q.hasTo = parseToken(v); !q.hasTo {
			return nil, errInvalidParam("invalid to token")
		}
	}
	switch c.QueryParam("recurse") {
	case "":
	case "true":
		q.recurse, q.hasRecurse = true, true
	case "false":
		q.hasRecurse = true
	default:
		return nil, errInvalidParam("recurse must be true or false")
	}
	return q, nil
}

// relationsResponse is the spec's /relations response.
type relationsResponse struct {
	Chunk          []clientEvent `json:"chunk"`
	NextBatch      string        `json:"next_batch,omitempty"`
	PrevBatch      string        `json:"prev_batch,omitempty"`
	RecursionDepth *int          `json:"recursion_depth,omitempty"`
}

// relations serves GET /rooms/{roomId}/relations/{eventId}[/{relType}[/{eventType}]].
// A parent the reader cannot see (or that is not in the room) is 404, as
// the spec says; children the reader cannot see are left out.
func (s *Server) relations(c echo.Context) error {
	q, err := parseRelationsRequest(c)
	if err != nil {
		return err
	}
	if err := s.waitForPosition(c.Request().Context(), max(q.from, q.to)); err != nil {
		return err
	}
	r := requester(c)
	vw := viewer{UserID: r.UserID, DeviceID: r.DeviceID}
	resp := &relationsResponse{}
	err = s.state.View(func(rd pebble.Reader) error {
		// A parent the reader may not see is 404 (visibleEvent, context.go).
		_, v, err := visibleEvent(rd, r.UserID, q.roomID, q.parentID)
		if err != nil {
			return err
		}
		head, err := rlog.ReadHead(rd)
		if err != nil {
			return err
		}
		after, upTo := pageBounds(head.Seq, q.from, q.to, q.hasFrom, q.hasTo, q.backward)
		pager := newChildPager(v, q.roomID, q.limit)
		if q.recurse {
			all, _, err := relations.Descendants(rd, q.roomID, q.parentID, q.relType, q.evType, relationsRecursionDepth, upTo, maxRecursedRelations)
			if err != nil {
				return err
			}
			// Descendants are in position order; a forward page skips those
			// at or before its start (a child there may have descendants
			// after it, so they were collected too).
			for i := range all {
				ch := all[i]
				if q.backward {
					ch = all[len(all)-1-i]
				}
				if ch.Seq <= after {
					if q.backward {
						break
					}
					continue
				}
				if !pager.take(ch) {
					break
				}
			}
		} else {
			err := relations.Scan(rd, q.roomID, q.parentID, q.relType, q.evType, after, upTo, q.backward, func(ch *relations.Child) (bool, error) {
				return pager.take(ch), nil
			})
			if err != nil {
				return err
			}
		}
		evs, err := pager.events(rd)
		if err != nil {
			return err
		}
		if resp.Chunk, err = vw.renderBundled(rd, v, evs); err != nil {
			return err
		}
		if pager.more {
			if q.backward {
				resp.NextBatch = formatToken(pager.last - 1)
			} else {
				resp.NextBatch = formatToken(pager.last)
			}
		}
		return nil
	})
	if err != nil {
		return err
	}
	if q.hasFrom {
		resp.PrevBatch = c.QueryParam("from")
	}
	if q.hasRecurse {
		depth := 1
		if q.recurse {
			depth = relationsRecursionDepth
		}
		resp.RecursionDepth = &depth
	}
	return c.JSON(http.StatusOK, resp)
}

// childPager collects one page of visible children in the order offered.
type childPager struct {
	v      *rooms.Visibility
	roomID string
	limit  int
	budget int
	page   []*relations.Child
	// last is the position of the last child examined; more reports that
	// the range holds children beyond it.
	last uint64
	more bool
}

func newChildPager(v *rooms.Visibility, roomID string, limit int) *childPager {
	return &childPager{v: v, roomID: roomID, limit: limit, budget: limit*relationsScanFactor + 100}
}

// take examines one child and reports whether to offer another.
func (p *childPager) take(ch *relations.Child) bool {
	if len(p.page) == p.limit || p.budget == 0 {
		p.more = true
		return false
	}
	p.budget--
	p.last = ch.Seq
	if p.v.CanSee(ch.Stub(p.roomID)) {
		p.page = append(p.page, ch)
	}
	return true
}

// events loads the page's events.
func (p *childPager) events(r pebble.Reader) ([]*rooms.Event, error) {
	out := make([]*rooms.Event, 0, len(p.page))
	for _, ch := range p.page {
		ev, err := rooms.GetEvent(r, p.roomID, ch.Seq)
		if err != nil {
			return nil, err
		}
		if ev != nil {
			out = append(out, ev)
		}
	}
	return out, nil
}

// threadsResponse is the spec's /threads response.
type threadsResponse struct {
	Chunk     []clientEvent `json:"chunk"`
	NextBatch string        `json:"next_batch,omitempty"`
}

// threads serves GET /rooms/{roomId}/threads: the room's thread roots the
// reader may see, the most recently active first, each with its bundled
// aggregations. Tokens are positions of a thread's latest event.
func (s *Server) threads(c echo.Context) error {
	roomID := c.Param("roomId")
	participated := false
	switch c.QueryParam("include") {
	case "", "all":
	case "participated":
		participated = true
	default:
		return errInvalidParam("include must be all or participated")
	}
	limit := defaultThreadsLimit
	if c.QueryParam("limit") != "" {
		n, err := parseLimit(c, defaultThreadsLimit)
		if err != nil || n == 0 {
			return errInvalidParam("limit must be an integer greater than zero")
		}
		limit = n
	}
	var from uint64
	var hasFrom bool
	if v := c.QueryParam("from"); v != "" {
		if from, hasFrom = parseToken(v); !hasFrom {
			return errInvalidParam("Unknown pagination token")
		}
	}
	if err := s.waitForPosition(c.Request().Context(), from); err != nil {
		return err
	}
	r := requester(c)
	vw := viewer{UserID: r.UserID, DeviceID: r.DeviceID}
	resp := &threadsResponse{}
	err := s.state.View(func(rd pebble.Reader) error {
		v, _, err := readableState(rd, r.UserID, roomID)
		if err != nil {
			return err
		}
		head, err := rlog.ReadHead(rd)
		if err != nil {
			return err
		}
		_, upTo := pageBounds(head.Seq, from, 0, hasFrom, false, true)
		var roots []*rooms.Event
		var last uint64
		var more bool
		budget := limit*relationsScanFactor + 100
		err = relations.Threads(rd, roomID, upTo, func(th *relations.ThreadRef) (bool, error) {
			if len(roots) == limit || budget == 0 {
				more = true
				return false, nil
			}
			budget--
			last = th.Latest
			root, err := rooms.GetEvent(rd, roomID, th.RootSeq)
			if err != nil || root == nil || !v.CanSee(root) {
				return true, err
			}
			if participated && root.Sender != r.UserID {
				ok, err := relations.Participated(rd, roomID, root.EventID, r.UserID)
				if err != nil || !ok {
					return true, err
				}
			}
			roots = append(roots, root)
			return true, nil
		})
		if err != nil {
			return err
		}
		if resp.Chunk, err = vw.renderBundled(rd, v, roots); err != nil {
			return err
		}
		if more {
			resp.NextBatch = formatToken(last - 1)
		}
		return nil
	})
	if err != nil {
		return err
	}
	return c.JSON(http.StatusOK, resp)
}

// threadAggregation is the m.thread bundle.
type threadAggregation struct {
	LatestEvent             clientEvent `json:"latest_event"`
	Count                   int         `json:"count"`
	CurrentUserParticipated bool        `json:"current_user_participated"`
}

type referenceItem struct {
	EventID string `json:"event_id"`
}

type referenceAggregation struct {
	Chunk []referenceItem `json:"chunk"`
}

// renderBundled renders events for vw with their bundled aggregations.
// v is vw's visibility in the events' room, or nil to load it here (per
// room). Read from the same snapshot as the events, the bundles hold the
// children known at that position. Call it wherever events are served to
// a client (/event and /context included).
func (vw viewer) renderBundled(r pebble.Reader, v *rooms.Visibility, evs []*rooms.Event) ([]clientEvent, error) {
	out := vw.renderAll(evs)
	if err := bundleAggregations(r, vw, v, evs, out); err != nil {
		return nil, err
	}
	return out, nil
}

// bundleAggregations sets out[i].Unsigned.Relations to the bundled
// aggregations of evs[i] (rendered for vw): m.thread, m.replace and
// m.reference, from the children vw may see. v is vw's visibility in the
// events' room, or nil to load it per room.
//
// Redactions: a redacted original gets no m.replace bundle (the spec); a
// redacted child is already de-aggregated by the relations projection.
func bundleAggregations(r pebble.Reader, vw viewer, v *rooms.Visibility, evs []*rooms.Event, out []clientEvent) error {
	b := &bundler{r: r, vw: vw, fixed: v}
	for i, ev := range evs {
		rel, err := b.aggregate(ev, true)
		if err != nil {
			return err
		}
		out[i].Unsigned.Relations = rel
	}
	return nil
}

type bundler struct {
	r     pebble.Reader
	vw    viewer
	fixed *rooms.Visibility
	vis   map[string]*rooms.Visibility
}

func (b *bundler) visibility(roomID string) (*rooms.Visibility, error) {
	if b.fixed != nil {
		return b.fixed, nil
	}
	if v, ok := b.vis[roomID]; ok {
		return v, nil
	}
	v, err := rooms.LoadVisibility(b.r, roomID, b.vw.UserID)
	if err != nil {
		return nil, err
	}
	if b.vis == nil {
		b.vis = map[string]*rooms.Visibility{}
	}
	b.vis[roomID] = v
	return v, nil
}

// aggregate returns ev's bundle, or nil. State events get none (the spec).
// withThread is false for a thread's latest event, which cannot be a
// thread root itself (it has a rel_type), so no loop is possible.
func (b *bundler) aggregate(ev *rooms.Event, withThread bool) (map[string]any, error) {
	if ev.StateKey != nil {
		return nil, nil
	}
	sum, err := relations.GetSummary(b.r, ev.RoomID, ev.EventID)
	if err != nil || sum == nil || (sum.Threads == 0 && sum.Edits == 0 && sum.References == 0) {
		return nil, err
	}
	v, err := b.visibility(ev.RoomID)
	if err != nil {
		return nil, err
	}
	out := map[string]any{}
	if sum.Threads > 0 && withThread {
		th, err := b.thread(v, ev, sum)
		if err != nil {
			return nil, err
		}
		if th != nil {
			out[relations.RelThread] = th
		}
	}
	// A redacted original gets no m.replace bundle (the spec).
	if sum.Edits > 0 && ev.RedactedBecause == nil {
		edit, err := b.latestEdit(v, ev)
		if err != nil {
			return nil, err
		}
		if edit != nil {
			out[relations.RelReplace] = edit
		}
	}
	if sum.References > 0 {
		refs := referenceAggregation{Chunk: []referenceItem{}}
		err := relations.Scan(b.r, ev.RoomID, ev.EventID, relations.RelReference, "", 0, math.MaxUint64, false, func(ch *relations.Child) (bool, error) {
			if len(refs.Chunk) == maxBundledReferences {
				return false, nil
			}
			if v.CanSee(ch.Stub(ev.RoomID)) {
				refs.Chunk = append(refs.Chunk, referenceItem{EventID: ch.EventID})
			}
			return true, nil
		})
		if err != nil {
			return nil, err
		}
		if len(refs.Chunk) > 0 {
			out[relations.RelReference] = refs
		}
	}
	if len(out) == 0 {
		return nil, nil
	}
	return out, nil
}

// thread is the m.thread bundle: the latest thread event the reader may
// see, and the count without the invisible events after it.
func (b *bundler) thread(v *rooms.Visibility, root *rooms.Event, sum *relations.Summary) (*threadAggregation, error) {
	var latest *relations.Child
	skipped := 0
	err := relations.Scan(b.r, root.RoomID, root.EventID, relations.RelThread, "", 0, math.MaxUint64, true, func(ch *relations.Child) (bool, error) {
		if v.CanSee(ch.Stub(root.RoomID)) {
			latest = ch
			return false, nil
		}
		skipped++
		return skipped < bundleScanBudget, nil
	})
	if err != nil || latest == nil {
		return nil, err
	}
	ev, err := rooms.GetEvent(b.r, root.RoomID, latest.Seq)
	if err != nil || ev == nil {
		return nil, err
	}
	rendered := b.vw.render(ev)
	if rendered.Unsigned.Relations, err = b.aggregate(ev, false); err != nil {
		return nil, err
	}
	participated := root.Sender == b.vw.UserID
	if !participated {
		if participated, err = relations.Participated(b.r, root.RoomID, root.EventID, b.vw.UserID); err != nil {
			return nil, err
		}
	}
	return &threadAggregation{LatestEvent: rendered, Count: int(sum.Threads) - skipped, CurrentUserParticipated: participated}, nil
}

// latestEdit is the m.replace bundle: the most recent valid edit the
// reader may see, rendered as a normal event (spec v1.7; it carries the
// event_id, origin_server_ts and sender older clients read).
func (b *bundler) latestEdit(v *rooms.Visibility, original *rooms.Event) (*clientEvent, error) {
	var chosen *relations.Edit
	examined := 0
	err := relations.Edits(b.r, original.RoomID, original.EventID, func(e *relations.Edit) (bool, error) {
		// A valid edit has the original's type and no state key.
		if v.CanSee(&rooms.Event{EventID: e.EventID, Type: original.Type, Seq: e.Seq, RoomID: original.RoomID}) {
			chosen = e
			return false, nil
		}
		examined++
		return examined < bundleScanBudget, nil
	})
	if err != nil || chosen == nil {
		return nil, err
	}
	ev, err := rooms.GetEvent(b.r, original.RoomID, chosen.Seq)
	if err != nil || ev == nil {
		return nil, err
	}
	rendered := b.vw.render(ev)
	return &rendered, nil
}
