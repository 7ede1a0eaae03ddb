package api

import (
	"net/http"
	"strconv"

	"github.com/cockroachdb/pebble/v2"
	"github.com/labstack/echo/v4"

	rlog "chronicle/log"
	"chronicle/projections/rooms"
)

const maxPageLimit = 1000

// parseLimit reads ?limit with a default and a cap.
func parseLimit(c echo.Context, def int) (int, error) {
	v := c.QueryParam("limit")
	if v == "" {
		return def, nil
	}
	n, err := strconv.Atoi(v)
	if err != nil || n < 0 {
		return 0, errInvalidParam("limit must be a non-negative integer")
	}
	return min(n, maxPageLimit), nil
}

func (s *Server) messages(c echo.Context) error {
	roomID := c.Param("roomId")
	dir := c.QueryParam("dir")
	if dir != "b" && dir != "f" {
		return errInvalidParam("dir must be b or f")
	}
	limit, err := parseLimit(c, 10)
	if err != nil {
		return err
	}
	filter, err := s.resolveRoomEventFilter(requester(c).UserID, c.QueryParam("filter"))
	if err != nil {
		return err
	}
	var from, to uint64
	var hasFrom, hasTo bool
	if v := c.QueryParam("from"); v != "" {
		if from, hasFrom = parseToken(v); !hasFrom {
			return errInvalidParam("invalid from token")
		}
	}
	if v := c.QueryParam("to"); v != "" {
		if to, hasTo = parseToken(v); !hasTo {
			return errInvalidParam("invalid to token")
		}
	}
	// Tokens are positions shared by every node: wait for this node to
	// reach the ones it has not seen yet.
	if err := s.waitForPosition(c.Request().Context(), max(from, to)); err != nil {
		return err
	}
	r := requester(c)
	var chunk []clientEvent // with bundled aggregations, from the same snapshot
	// state is the lazy-loaded members of the chunk's senders.
	var state []*rooms.Event
	var start, end string
	err = s.state.View(func(rd pebble.Reader) error {
		v, upTo, err := readableState(rd, r.UserID, roomID)
		if err != nil {
			return err
		}
		head, err := rlog.ReadHead(rd)
		if err != nil {
			return err
		}
		backward := dir == "b"
		if !hasFrom {
			from = 0
			if backward {
				from = head.Seq
			}
		}
		start = formatToken(from)
		var after, until uint64
		if backward {
			after, until = 0, min(from, upTo)
			if hasTo {
				after = to
			}
		} else {
			after, until = from, upTo
			if hasTo {
				until = min(until, to)
			}
		}
		evs, last, more, err := filter.scan(rd, v, roomID, after, until, limit, backward, nil)
		if err != nil {
			return err
		}
		if filter.LazyLoadMembers {
			if state, err = chunkMembers(rd, roomID, evs); err != nil {
				return err
			}
		}
		if chunk, err = (viewer{UserID: r.UserID, DeviceID: r.DeviceID}).renderBundled(rd, v, evs); err != nil {
			return err
		}
		if more && last > 0 {
			if backward {
				end = formatToken(last - 1)
			} else {
				end = formatToken(last)
			}
		}
		return nil
	})
	if err != nil {
		return err
	}
	resp := map[string]any{
		"start": start,
		"chunk": chunk,
	}
	if end != "" {
		resp["end"] = end
	}
	if len(state) > 0 {
		resp["state"] = (viewer{UserID: r.UserID, DeviceID: r.DeviceID}).renderAll(state)
	}
	return c.JSON(http.StatusOK, resp)
}
