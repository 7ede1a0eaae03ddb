package api

import (
	"sync"

	"chronicle/projections/rooms"
)

// Redundant lazy-loaded members.
//
// With lazy_load_members and include_redundant_members=false, the spec
// lets a server skip member events a client already has. Which member
// events a device received is not a fact of the log (writing one record
// per sync would make every sync a write), so, like Synapse, this is a
// per-node cache, lazyMemberCache; the spec allows redundant members, so
// a cache miss (another node, a restart, an evicted device) only means
// they are sent again.
//
// Unlike Synapse's per-device cache, the record is kept per response
// token: what the device knows of room R after the response with
// next_batch T is what it knew after that response's since, plus what
// the response sent in R. A client that retries a sync (its response
// lost) or syncs from an older token is therefore never assumed to have
// what a response it never used carried. When two responses with
// different since tokens end at the same T, or write R at T twice, only
// what both agree on counts (an ambiguous T counts as knowing nothing).

// lazyRoom is one room's lazy-loading result in the response being built.
type lazyRoom struct {
	// point is the position the state section is as of.
	point uint64
	// known is what the device had of the room's members (user -> member
	// event ID) after since; nil when the room is sent in full.
	known map[string]string
	// sent is the member events the response carries (state and timeline).
	sent map[string]string
	// needed is the users whose member events the timeline needs.
	needed map[string]bool
	// membersChanged reports a membership change in the section: a member
	// event in the timeline, or one after since in the state. Lazy-loaded
	// members that did not change do not make the summary worth resending.
	membersChanged bool
}

// noteSent records the member events among evs as sent.
func (lr *lazyRoom) noteSent(evs []*rooms.Event) {
	for _, ev := range evs {
		if ev.Type == memberType && ev.StateKey != nil {
			lr.sent[*ev.StateKey] = ev.EventID
		}
	}
}

// lazyTracker is one /sync request's view of the cache.
type lazyTracker struct {
	cache        *lazyMemberCache
	track        bool // include_redundant_members=false: skip and record
	user, device string
	since        uint64

	mu      sync.Mutex
	token   uint64 // next_batch of the response being built
	pending map[string]*lazyRoom
}

// begin starts a response ending at token (a long-poll may build several).
func (t *lazyTracker) begin(token uint64) {
	t.mu.Lock()
	t.token, t.pending = token, map[string]*lazyRoom{}
	t.mu.Unlock()
	if t.track && t.since != 0 {
		t.cache.link(t.user, t.device, token, t.since)
	}
}

// known is what the device had of roomID's members after since.
func (t *lazyTracker) known(roomID string) map[string]string {
	if !t.track || t.since == 0 {
		return nil
	}
	return t.cache.known(t.user, t.device, t.since, roomID)
}

// record keeps a room's result until finishJoinedRoom takes it.
func (t *lazyTracker) record(roomID string, lr *lazyRoom) {
	t.mu.Lock()
	if t.pending == nil {
		t.pending = map[string]*lazyRoom{}
	}
	t.pending[roomID] = lr
	t.mu.Unlock()
}

func (t *lazyTracker) take(roomID string) *lazyRoom {
	t.mu.Lock()
	defer t.mu.Unlock()
	lr := t.pending[roomID]
	delete(t.pending, roomID)
	return lr
}

// commit records what the device knows of roomID after this response.
func (t *lazyTracker) commit(roomID string, lr *lazyRoom) {
	if !t.track {
		return
	}
	t.mu.Lock()
	token := t.token
	t.mu.Unlock()
	if token == 0 {
		return
	}
	merged := make(map[string]string, len(lr.known)+len(lr.sent))
	for u, id := range lr.known {
		merged[u] = id
	}
	for u, id := range lr.sent {
		merged[u] = id
	}
	t.cache.set(t.user, t.device, token, roomID, merged)
}

const (
	// maxLazyDevices bounds how many devices the cache remembers, and
	// maxLazyEntries how many (room, member) entries it holds in all; past
	// either, the least recently syncing device is forgotten first.
	maxLazyDevices = 10000
	maxLazyEntries = 1 << 20
	// maxLazyTokens bounds how many response tokens per device it keeps.
	maxLazyTokens = 16
	// ambiguousSince marks a token two responses with different since
	// tokens ended at.
	ambiguousSince = ^uint64(0)
)

// lazyMemberCache is the per-node record of the member events sent to
// each device, by response token. Its zero value is ready to use.
type lazyMemberCache struct {
	mu      sync.Mutex
	clock   uint64
	entries int // (room, member) entries held, over all devices
	devices map[string]*deviceMembers
}

type deviceMembers struct {
	used uint64
	// since is the since token each response token answered.
	since map[uint64]uint64
	// rooms is, per response token, what the device knew of each room it
	// touched: room -> user -> member event ID.
	rooms map[uint64]map[string]map[string]string
	// order lists the tokens held, oldest first.
	order []uint64
	// entries counts the (room, member) entries in rooms.
	entries int
}

func (c *lazyMemberCache) device(user, device string, create bool) *deviceMembers {
	key := user + "\x00" + device
	d := c.devices[key]
	if d == nil {
		if !create {
			return nil
		}
		if c.devices == nil {
			c.devices = map[string]*deviceMembers{}
		}
		if len(c.devices) >= maxLazyDevices {
			c.evictOldest("")
		}
		d = &deviceMembers{since: map[uint64]uint64{}, rooms: map[uint64]map[string]map[string]string{}}
		c.devices[key] = d
	}
	c.clock++
	d.used = c.clock
	return d
}

// evictOldest forgets the least recently syncing device other than keep.
func (c *lazyMemberCache) evictOldest(keep string) bool {
	var oldest string
	var at uint64
	for k, d := range c.devices {
		if k != keep && (oldest == "" || d.used < at) {
			oldest, at = k, d.used
		}
	}
	if oldest == "" {
		return false
	}
	c.entries -= c.devices[oldest].entries
	delete(c.devices, oldest)
	return true
}

// hold adds a token to the device's list, dropping the oldest beyond the
// bound; it returns how many entries that freed.
func (d *deviceMembers) hold(token uint64) int {
	_, linked := d.since[token]
	if _, written := d.rooms[token]; linked || written {
		return 0
	}
	d.order = append(d.order, token)
	freed := 0
	for len(d.order) > maxLazyTokens {
		old := d.order[0]
		d.order = d.order[1:]
		for _, members := range d.rooms[old] {
			freed += len(members)
		}
		delete(d.since, old)
		delete(d.rooms, old)
	}
	d.entries -= freed
	return freed
}

// link records that the response ending at token answered since.
func (c *lazyMemberCache) link(user, device string, token, since uint64) {
	if token == since {
		return // nothing new: the device knows what it knew at since
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	d := c.device(user, device, true)
	if prev, ok := d.since[token]; ok {
		if prev != since {
			d.since[token] = ambiguousSince
		}
		return
	}
	c.entries -= d.hold(token)
	d.since[token] = since
}

// set records what the device knows of roomID after the response ending
// at token; a second write keeps only what both agree on.
func (c *lazyMemberCache) set(user, device string, token uint64, roomID string, members map[string]string) {
	c.mu.Lock()
	defer c.mu.Unlock()
	d := c.device(user, device, true)
	c.entries -= d.hold(token)
	byRoom := d.rooms[token]
	if byRoom == nil {
		byRoom = map[string]map[string]string{}
		d.rooms[token] = byRoom
	}
	prev, written := byRoom[roomID]
	if written {
		both := map[string]string{}
		for u, id := range prev {
			if members[u] == id {
				both[u] = id
			}
		}
		members = both
	}
	byRoom[roomID] = members
	grown := len(members) - len(prev)
	d.entries += grown
	c.entries += grown
	for c.entries > maxLazyEntries && c.evictOldest(user+"\x00"+device) {
	}
}

// known returns what the device knew of roomID's members after the
// response ending at token (nil if the cache cannot tell). The map must
// not be modified.
func (c *lazyMemberCache) known(user, device string, token uint64, roomID string) map[string]string {
	c.mu.Lock()
	defer c.mu.Unlock()
	d := c.device(user, device, false)
	if d == nil {
		return nil
	}
	for hops := 0; hops <= maxLazyTokens && token != 0; hops++ {
		since, linked := d.since[token]
		if since == ambiguousSince {
			return nil
		}
		if m, ok := d.rooms[token][roomID]; ok {
			return m
		}
		if !linked {
			return nil
		}
		token = since
	}
	return nil
}
