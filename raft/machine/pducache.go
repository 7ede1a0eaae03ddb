package machine

import (
	"sync"

	"maunium.net/go/mautrix/federation/pdu"
)

// pduCache keeps parsed PDUs by event ID. Events are immutable once
// accepted, so a hit is always right; the cache only saves the log read and
// JSON parse, and never changes what is decided. Callers must not modify a
// cached PDU (the auth rules only read them).
type pduCache struct {
	mu  sync.Mutex
	max int
	m   map[string]*pdu.PDU
}

func newPDUCache(max int) *pduCache { return &pduCache{max: max, m: make(map[string]*pdu.PDU, max)} }

func (c *pduCache) get(eventID string) *pdu.PDU {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.m[eventID]
}

func (c *pduCache) put(eventID string, p *pdu.PDU) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if len(c.m) >= c.max {
		// Dropping everything is crude but bounded; the working set (each
		// room's create, power levels, join rules and members) refills fast.
		clear(c.m)
	}
	c.m[eventID] = p
}

// reset empties the cache (after a restore, events may have been dropped
// from the rolled-back state; never serve them).
func (c *pduCache) reset() {
	c.mu.Lock()
	clear(c.m)
	c.mu.Unlock()
}
