package loadgen

// Scenario 5: backward pagination through P events of one room, the way a
// client scrolls up through history: start at the live end, follow `end`
// tokens until the server says there is nothing more.

import (
	"context"
	"fmt"
	"time"
)

// pageLimit is the page size clients commonly request.
const pageLimit = 100

// PaginateResult is the pagination scenario's output.
type PaginateResult struct {
	Target   int     `json:"target_events"`
	SetupMs  float64 `json:"setup_ms"`
	TotalMs  float64 `json:"total_ms"`
	Pages    int     `json:"pages"`
	Events   int     `json:"events"`
	Messages int     `json:"messages"`
	Page     Summary `json:"page_latency"`
}

// RunPaginate times walking back through cfg.Pages events of one room.
func (b *Bench) RunPaginate(ctx context.Context) (*PaginateResult, error) {
	us, err := b.fresh(ctx, 1)
	if err != nil {
		return nil, err
	}
	u := us[0]
	room, err := u.CreateRoom(ctx)
	if err != nil {
		return nil, fmt.Errorf("createRoom: %w", err)
	}
	P := b.cfg.Pages
	setup := time.Now()
	err = Parallel(ctx, b.cfg.SetupWorkers, P, func(ctx context.Context, i int) error {
		_, err := u.Send(ctx, room, fmt.Sprintf("history %d", i))
		return err
	})
	if err != nil {
		return nil, fmt.Errorf("send: %w", err)
	}
	res := &PaginateResult{Target: P, SetupMs: Ms(time.Since(setup))}

	var pages []time.Duration
	from := ""
	start := time.Now()
	// The cap guards against a server that keeps returning the same token.
	for maxPages := P/pageLimit + 100; res.Pages < maxPages; {
		t := time.Now()
		page, err := u.Messages(ctx, room, from, "b", pageLimit)
		if err != nil {
			return nil, fmt.Errorf("messages (page %d): %w", res.Pages+1, err)
		}
		pages = append(pages, time.Since(t))
		res.Pages++
		res.Events += len(page.Chunk)
		for _, ev := range page.Chunk {
			if ev.Type == "m.room.message" {
				res.Messages++
			}
		}
		// Spec: no `end` means no more history; an empty chunk also ends it.
		if page.End == "" || len(page.Chunk) == 0 || page.End == from {
			break
		}
		from = page.End
	}
	res.TotalMs = Ms(time.Since(start))
	res.Page = Summarize(pages)
	if res.Events < P {
		return res, fmt.Errorf("paginated %d events, want >= %d", res.Events, P)
	}
	return res, nil
}
