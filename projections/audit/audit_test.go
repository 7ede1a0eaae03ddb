package audit_test

import (
	"encoding/json"
	"fmt"
	"log/slog"
	"strings"
	"testing"
	"time"

	"github.com/cockroachdb/pebble/v2"

	rlog "chronicle/log"
	"chronicle/projections"
	"chronicle/projections/audit"
	"chronicle/raft/machine"
)

// driver applies commands to a machine at consecutive indexes, with
// checkpoints, at a known clock.
type driver struct {
	t     *testing.T
	m     *machine.Machine
	dir   string
	idx   uint64
	every uint64
}

const baseTime = 1_700_000_000_000

func newDriver(t *testing.T, every uint64) *driver {
	t.Helper()
	dir := t.TempDir()
	m, err := machine.Open(dir, machine.Config{ServerName: "localhost", Logger: slog.New(slog.DiscardHandler)})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { m.Close() })
	return &driver{t: t, m: m, dir: dir, every: every}
}

func (d *driver) do(typ, actor, device string, payload any) *machine.Result {
	d.t.Helper()
	d.idx++
	c, err := machine.NewCommand(typ, baseTime+int64(d.idx)*1000, actor, device, payload)
	if err != nil {
		d.t.Fatal(err)
	}
	c.CheckpointEvery = d.every
	res, err := d.m.Apply(d.idx, c)
	if err != nil {
		d.t.Fatal(err)
	}
	if res.Err != nil {
		d.t.Fatalf("index %d %s by %s: %v", d.idx, typ, actor, res.Err)
	}
	return res
}

func (d *driver) say(actor, roomID, body string) *machine.Result {
	d.t.Helper()
	return d.do(machine.CmdSendEvent, actor, "D", &machine.SendEvent{RoomID: roomID, Type: "m.room.message",
		Content: json.RawMessage(fmt.Sprintf(`{"msgtype":"m.text","body":%q}`, body)), TxnID: fmt.Sprint("t", d.idx)})
}

func (d *driver) state(actor, roomID, typ, content string) *machine.Result {
	d.t.Helper()
	sk := ""
	return d.do(machine.CmdSendEvent, actor, "D", &machine.SendEvent{RoomID: roomID, Type: typ, StateKey: &sk, Content: json.RawMessage(content)})
}

func (d *driver) redact(actor, roomID, eventID string) *machine.Result {
	d.t.Helper()
	return d.do(machine.CmdRedact, actor, "D", &machine.Redact{RoomID: roomID, EventID: eventID, Content: json.RawMessage(`{"reason":"test"}`), TxnID: fmt.Sprint("r", d.idx)})
}

func (d *driver) snapshot() *pebble.Snapshot {
	d.t.Helper()
	s, err := d.m.Snapshot()
	if err != nil {
		d.t.Fatal(err)
	}
	d.t.Cleanup(func() { s.Close() })
	return s
}

func env(t *testing.T) *audit.Env {
	return &audit.Env{Engine: machine.NewEngine(), Options: machine.StoreOptions, TempDir: t.TempDir()}
}

const (
	alice = "@alice:localhost"
	bob   = "@bob:localhost"
)

// history builds a room whose state and timeline are redacted after the
// fact in every way the projection rewrites stored events, in room
// versions with "redacts" at the top level and in content.
func history(t *testing.T, version string) (*driver, string) {
	d := newDriver(t, 9)
	d.do(machine.CmdRegister, "", "", &machine.Register{UserID: alice, DeviceID: "D"})
	d.do(machine.CmdRegister, "", "", &machine.Register{UserID: bob, DeviceID: "D"})
	room := d.do(machine.CmdCreateRoom, alice, "D", &machine.CreateRoom{Preset: "public_chat", RoomVersion: version, RoomID: "!history" + version + ":localhost"}).RoomID
	d.do(machine.CmdMembership, bob, "D", &machine.Membership{RoomID: room, Target: bob, Membership: "join"})
	topic1 := d.state(alice, room, "m.room.topic", `{"topic":"one"}`).EventID
	m1 := d.say(bob, room, "hello")
	topic2 := d.state(alice, room, "m.room.topic", `{"topic":"two"}`).EventID
	d.say(alice, room, "hi")
	red1 := d.redact(alice, room, m1.EventID) // a message
	d.say(bob, room, "more")
	d.redact(alice, room, topic1)       // a replaced state event: prev_content of topic2 changes
	d.redact(alice, room, red1.EventID) // a redaction: its target's redacted_because changes
	d.redact(alice, room, topic2)       // the current state event
	d.do(machine.CmdMembership, bob, "D", &machine.Membership{RoomID: room, Target: bob, Membership: "leave"})
	d.say(alice, room, "alone")
	return d, room
}

// TestAtHistoryEqualsReplay answers every question at every position from
// the live store's history and from a replay of the log up to there: the
// two must agree exactly, redactions that came later included.
func TestAtHistoryEqualsReplay(t *testing.T) {
	for _, version := range []string{"10", "11"} {
		t.Run("v"+version, func(t *testing.T) {
			d, room := history(t, version)
			snap := d.snapshot()
			e := env(t)
			head, _ := rlog.ReadHead(snap)
			var created uint64
			for seq := uint64(1); seq <= head.Seq; seq++ {
				for _, what := range audit.RoomQuestions {
					h, err := e.RoomAt(snap, seq, room, what, audit.AtOptions{Limit: 50})
					if created == 0 {
						if err == nil {
							created = seq
						} else {
							continue
						}
					}
					if err != nil {
						t.Fatalf("%s at %d: %v", what, seq, err)
					}
					r, err := e.RoomAt(snap, seq, room, what, audit.AtOptions{Limit: 50, Replay: true})
					if err != nil {
						t.Fatalf("%s at %d by replay: %v", what, seq, err)
					}
					hj, _ := json.Marshal(h.Events)
					rj, _ := json.Marshal(r.Events)
					if string(hj) != string(rj) {
						t.Fatalf("%s at %d:\nhistory %s\nreplay  %s", what, seq, hj, rj)
					}
				}
			}
			if created == 0 {
				t.Fatal("the room never existed")
			}
			// Before the room existed: a clear answer.
			if _, err := e.RoomAt(snap, created-1, room, "state", audit.AtOptions{}); err == nil || !strings.Contains(err.Error(), "did not exist") {
				t.Fatalf("state before the room: %v", err)
			}
		})
	}
}

func TestUserAt(t *testing.T) {
	d, room := history(t, "11")
	login := d.do(machine.CmdLogin, alice, "", &machine.Login{DeviceID: "LAPTOP", DisplayName: "laptop"})
	otk := func(id string) machine.UploadedKey {
		return machine.UploadedKey{Algorithm: "signed_curve25519", KeyID: id, Key: json.RawMessage(`"key-` + id + `"`)}
	}
	uploaded := d.do(machine.CmdUploadKeys, alice, "LAPTOP", &machine.UploadKeys{
		DeviceKeys:   json.RawMessage(`{"algorithms":[],"device_id":"LAPTOP","keys":{"ed25519:LAPTOP":"e"},"signatures":{},"user_id":"` + alice + `"}`),
		OneTimeKeys:  []machine.UploadedKey{otk("A"), otk("B")},
		FallbackKeys: []machine.UploadedKey{otk("F")},
	})
	claimed := d.do(machine.CmdClaimKeys, bob, "D", &machine.ClaimKeys{Claims: []machine.KeyClaim{{UserID: alice, DeviceID: "LAPTOP", Algorithm: "signed_curve25519"}}})
	logout := d.do(machine.CmdLogout, alice, "LAPTOP", &machine.Logout{})
	// The profile, changed twice (the first change also sets a field the
	// second deletes).
	named := d.do(machine.CmdSetProfileField, alice, "D", &machine.ProfileField{Key: "displayname", Value: json.RawMessage(`"Alice"`)})
	d.do(machine.CmdSetProfileField, alice, "D", &machine.ProfileField{Key: "m.tz", Value: json.RawMessage(`"Europe/London"`)})
	between := d.say(alice, room, "between the changes")
	renamed := d.do(machine.CmdSetProfileField, alice, "D", &machine.ProfileField{Key: "displayname", Value: json.RawMessage(`"Alice Cooper"`)})
	d.do(machine.CmdDeleteProfileField, alice, "D", &machine.ProfileField{Key: "m.tz"})
	snap := d.snapshot()
	e := env(t)
	devices := func(seq uint64) []string {
		a, err := e.UserAt(snap, seq, alice, "devices")
		if err != nil {
			t.Fatal(err)
		}
		var ids []string
		for _, dv := range a.Devices {
			ids = append(ids, dv.DeviceID)
		}
		return ids
	}
	if got := devices(login.Seq); strings.Join(got, ",") != "D,LAPTOP" {
		t.Errorf("devices after login: %v", got)
	}
	if got := devices(logout.Seq); strings.Join(got, ",") != "D" {
		t.Errorf("devices after logout: %v", got)
	}
	if _, err := e.UserAt(snap, 1, bob, "devices"); err == nil {
		t.Error("devices before registration answered")
	}
	a, err := e.UserAt(snap, logout.Seq, bob, "rooms")
	if err != nil || len(a.Rooms) != 1 || a.Rooms[0] != (audit.UserRoom{RoomID: room, Membership: "leave"}) {
		t.Errorf("bob's rooms: %+v %v", a, err)
	}
	// Keys, from a replay of the e2ekeys projection: uploaded, one
	// claimed, then dropped with the device.
	laptopKeys := func(seq uint64) *audit.DeviceKeys {
		a, err := e.UserAt(snap, seq, alice, "keys")
		if err != nil {
			t.Fatal(err)
		}
		if a.Method != "replay" {
			t.Errorf("keys answered by %s", a.Method)
		}
		for _, dk := range a.Keys {
			if dk.DeviceID == "LAPTOP" {
				return &dk
			}
		}
		return nil
	}
	if k := laptopKeys(login.Seq); k == nil || k.Identity != nil || len(k.OneTimeKeyCounts) != 0 {
		t.Errorf("keys before the upload: %+v", k)
	}
	if k := laptopKeys(uploaded.Seq); k == nil || k.Identity == nil || k.OneTimeKeyCounts["signed_curve25519"] != 2 ||
		len(k.FallbackKeys) != 1 || k.FallbackKeys[0].Used {
		t.Errorf("keys after the upload: %+v", k)
	}
	if k := laptopKeys(claimed.Seq); k == nil || k.OneTimeKeyCounts["signed_curve25519"] != 1 {
		t.Errorf("keys after a claim: %+v", k)
	}
	if k := laptopKeys(logout.Seq); k != nil {
		t.Errorf("keys after the logout: %+v", k)
	}
	// Profiles, from the profiles projection's history.
	profile := func(seq uint64) string {
		a, err := e.UserAt(snap, seq, alice, "profile")
		if err != nil {
			t.Fatal(err)
		}
		if a.Method != "history" {
			t.Errorf("profile answered by %s", a.Method)
		}
		j, _ := json.Marshal(a.Profile)
		return string(j)
	}
	for _, c := range []struct {
		seq  uint64
		want string
	}{
		{logout.Seq, `{"displayname":"alice"}`}, // the default: the localpart
		{named.Seq, `{"displayname":"Alice"}`},
		{between.Seq, `{"displayname":"Alice","m.tz":"Europe/London"}`},
		{renamed.Seq, `{"displayname":"Alice Cooper","m.tz":"Europe/London"}`},
		{renamed.Seq + 1, `{"displayname":"Alice Cooper"}`},
	} {
		if got := profile(c.seq); got != c.want {
			t.Errorf("profile at %d: %s, want %s", c.seq, got, c.want)
		}
	}
	if _, err := e.UserAt(snap, 1, bob, "profile"); err == nil || !strings.Contains(err.Error(), "not registered") {
		t.Errorf("profile before registration: %v", err)
	}
}

func TestResolve(t *testing.T) {
	d, _ := history(t, "11")
	snap := d.snapshot()
	head, _ := rlog.ReadHead(snap)
	at := func(seq uint64) string {
		rec, err := rlog.Get(snap, seq)
		if err != nil {
			t.Fatal(err)
		}
		return time.UnixMilli(rec.Time).UTC().Format(time.RFC3339Nano)
	}
	for _, c := range []struct {
		spec  string
		first bool
		want  uint64
	}{
		{"5", false, 5},
		{"s7", false, 7},
		{at(6), false, lastWithTime(t, snap, 6)},
		{at(6), true, firstWithTime(t, snap, 6)},
		{"2001-01-01T00:00:00Z", false, 0},
		{"2100-01-01T00:00:00Z", false, head.Seq},
		{"2100-01-01T00:00:00Z", true, head.Seq + 1},
	} {
		got, err := audit.Resolve(snap, c.spec, c.first)
		if err != nil || got != c.want {
			t.Errorf("Resolve(%q, first=%v) = %d, %v; want %d", c.spec, c.first, got, err, c.want)
		}
	}
	if _, err := audit.Resolve(snap, fmt.Sprint(head.Seq+1), false); err == nil {
		t.Error("a position beyond the head resolved")
	}
	if _, err := audit.Resolve(snap, "yesterday", false); err == nil {
		t.Error("garbage resolved")
	}
}

// lastWithTime/firstWithTime: the records of one command share its time.
func lastWithTime(t *testing.T, r pebble.Reader, seq uint64) uint64 {
	rec, _ := rlog.Get(r, seq)
	for {
		next, err := rlog.Get(r, seq+1)
		if err != nil || next.Time != rec.Time {
			return seq
		}
		seq++
	}
}

func firstWithTime(t *testing.T, r pebble.Reader, seq uint64) uint64 {
	rec, _ := rlog.Get(r, seq)
	for seq > 1 {
		prev, err := rlog.Get(r, seq-1)
		if err != nil || prev.Time != rec.Time {
			return seq
		}
		seq--
	}
	return seq
}

func TestRecordsAndTrails(t *testing.T) {
	d, room := history(t, "11")
	d.do(machine.CmdTyping, alice, "D", &machine.Typing{RoomID: room, Typing: true, Timeout: 1000})
	snap := d.snapshot()
	e := env(t)
	collect := func(f audit.Filter) []*audit.Entry {
		var out []*audit.Entry
		if err := e.Records(snap, f, func(en *audit.Entry) error { out = append(out, en); return nil }); err != nil {
			t.Fatal(err)
		}
		return out
	}
	head, _ := rlog.ReadHead(snap)
	if all := collect(audit.Filter{}); uint64(len(all)) != head.Seq {
		t.Fatalf("%d records, head %d", len(all), head.Seq)
	}
	for _, en := range collect(audit.Filter{User: alice}) {
		if en.Actor != alice && en.Actor != "" {
			t.Errorf("alice's trail holds %d by %s", en.Seq, en.Actor)
		}
	}
	trail := collect(audit.Filter{User: alice})
	if trail[0].Type != "account.registered" {
		t.Errorf("alice's trail starts with %s", trail[0].Type)
	}
	types := map[string]bool{}
	for _, en := range collect(audit.Filter{Room: room}) {
		types[en.Type] = true
		if en.RoomID != room {
			t.Errorf("room trail holds %d of %q", en.Seq, en.RoomID)
		}
	}
	if !types["room.event"] || !types["typing.set"] {
		t.Errorf("room trail types %v", types)
	}
	cps := collect(audit.Filter{Types: []string{"log.*"}})
	if len(cps) == 0 || cps[0].Type != "log.checkpoint" || !strings.Contains(string(cps[0].Body), `"projections":[{"name":"accounts"`) {
		t.Fatalf("checkpoints: %+v", cps)
	}
	reg := collect(audit.Filter{Types: []string{"account.registered"}})
	if len(reg) != 2 || !strings.Contains(string(reg[0].Body), `"user_id":"@alice:localhost"`) {
		t.Fatalf("registrations: %s", reg[0].Body)
	}
	last, err := e.Last(snap, audit.Filter{Actor: alice}, 2)
	if err != nil || len(last) != 2 || last[1].Seq < last[0].Seq {
		t.Fatalf("last 2 of alice: %+v %v", last, err)
	}
	// Hashes in the export are the chain's.
	for _, en := range collect(audit.Filter{From: 3, To: 4}) {
		h, err := rlog.StoredHash(snap, en.Seq)
		if err != nil || h.String() != en.Hash {
			t.Errorf("record %d exported hash %s, stored %s", en.Seq, en.Hash, h)
		}
	}
}

func TestRebuildInPlace(t *testing.T) {
	d, _ := history(t, "11")
	dir := d.dir
	if err := d.m.Close(); err != nil {
		t.Fatal(err)
	}
	db, err := machine.OpenStateWritable(dir)
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	e := env(t)
	before, err := e.Engine.Digests(db)
	if err != nil {
		t.Fatal(err)
	}
	folds, _ := projections.ReadFolds(db, e.Engine)
	// relations stored by an older version of its code: the report says so.
	if err := db.Set(append([]byte{0x03}, "relations"...), []byte{0, 0, 0, 0}, pebble.Sync); err != nil {
		t.Fatal(err)
	}
	rep, err := e.RebuildInPlace(db, []string{"relations"})
	if err != nil {
		t.Fatal(err)
	}
	if strings.Join(rep.Rebuilt, ",") != "accounts,rooms,filters,cluster,directory,relations" {
		t.Errorf("rebuilt %v", rep.Rebuilt)
	}
	for _, p := range rep.Projections {
		if p.Stale != (p.Name == "relations") {
			t.Errorf("%s reported stale %v", p.Name, p.Stale)
		}
	}
	if stale, err := e.Engine.Stale(db); err != nil || len(stale) != 0 {
		t.Errorf("stale after the rebuild: %v %v", stale, err)
	}
	after, _ := e.Engine.Digests(db)
	folds2, _ := projections.ReadFolds(db, e.Engine)
	for name := range before {
		if before[name] != after[name] {
			t.Errorf("%s changed", name)
		}
	}
	for i := range folds {
		if folds[i] != folds2[i] {
			t.Errorf("fold of %s changed", folds[i].Name)
		}
	}
	if _, err := e.RebuildInPlace(db, []string{"nope"}); err == nil {
		t.Error("an unknown projection was rebuilt")
	}
	rep2, err := e.Verify(db, audit.VerifyOptions{})
	if err != nil || !rep2.OK {
		t.Fatalf("verify after rebuild: %v %+v", err, rep2)
	}
}

// TestVerifyFromCheckpoint: a verify caches its state at the last
// checkpoint; a later one resumes there, checks only the new records, and
// refuses a cache whose history was since rewritten.
func TestVerifyFromCheckpoint(t *testing.T) {
	d, room := history(t, "11")
	for i := range 20 {
		d.say(alice, room, fmt.Sprint("more ", i))
	}
	e := env(t)
	e.CacheDir = t.TempDir()
	rep, err := e.Verify(d.snapshot(), audit.VerifyOptions{})
	if err != nil || !rep.OK || rep.Replay.CachedAt == 0 {
		t.Fatalf("first verify: %v ok=%v cached at %d", err, rep.OK, rep.Replay.CachedAt)
	}
	cached := rep.Replay.CachedAt
	for i := range 15 {
		d.say(alice, room, fmt.Sprint("newer ", i))
	}
	snap := d.snapshot()
	head, _ := rlog.ReadHead(snap)
	rep, err = e.Verify(snap, audit.VerifyOptions{FromCheckpoint: true})
	if err != nil || !rep.OK {
		t.Fatalf("resumed verify: %v %+v", err, rep)
	}
	if rep.Replay.From != cached || rep.Chain.From != cached || rep.Replay.Records != head.Seq-cached+1 {
		t.Fatalf("resumed from %d (chain %d), %d records; cached at %d, head %d", rep.Replay.From, rep.Chain.From, rep.Replay.Records, cached, head.Seq)
	}
	if rep.Replay.CachedAt <= cached {
		t.Errorf("the resumed verify did not cache a newer checkpoint (%d)", rep.Replay.CachedAt)
	}
	// A full verify and a resumed one agree on every digest.
	full, _ := e.Verify(snap, audit.VerifyOptions{})
	for i := range full.Projections {
		if full.Projections[i].Rebuilt != rep.Projections[i].Rebuilt {
			t.Errorf("%s: full %s, resumed %s", full.Projections[i].Name, full.Projections[i].Rebuilt, rep.Projections[i].Rebuilt)
		}
	}
	// --against a head published before the cache: checked from record 1.
	pub := rlog.Position{Seq: 5}
	pub.Hash, _ = rlog.StoredHash(snap, 5)
	rep, err = e.Verify(snap, audit.VerifyOptions{FromCheckpoint: true, Against: &pub})
	if err != nil || !rep.OK || rep.Chain.From != 1 || !rep.Against.OK {
		t.Fatalf("against an early head: %v %+v", err, rep)
	}

	// Another log (a different history) never uses this cache.
	other, _ := history(t, "10")
	e2 := env(t)
	e2.CacheDir = e.CacheDir
	rep, err = e2.Verify(other.snapshot(), audit.VerifyOptions{FromCheckpoint: true})
	if err != nil || !rep.OK || rep.Replay.From != 1 {
		t.Fatalf("another log resumed from %d: %v %+v", rep.Replay.From, err, rep.Notes)
	}
}
