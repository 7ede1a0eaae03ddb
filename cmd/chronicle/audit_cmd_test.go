package main

import (
	"bytes"
	"context"
	"encoding/binary"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"path/filepath"
	"reflect"
	"slices"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/cockroachdb/pebble/v2"

	"chronicle/api/apitest"
	"chronicle/projections/audit"
	"chronicle/raft/machine"
)

// The auditors' commands, end to end: a mixed workload through a real
// server, then verify, log, at, trail and rebuild online and offline.

// cli runs one audit command and returns its stdout.
func cli(t testing.TB, run func(context.Context, []string, *bytes.Buffer, *bytes.Buffer) error, args ...string) (string, error) {
	t.Helper()
	var out, errw bytes.Buffer
	err := run(context.Background(), append(args, "--progress", "off"), &out, &errw)
	return out.String(), err
}

func cliOK(t testing.TB, run func(context.Context, []string, *bytes.Buffer, *bytes.Buffer) error, args ...string) string {
	t.Helper()
	out, err := cli(t, run, args...)
	if err != nil {
		t.Fatalf("%v: %v\n%s", args, err, out)
	}
	return out
}

func verifyRun(ctx context.Context, args []string, out, errw *bytes.Buffer) error {
	return runVerify(ctx, args, out, errw)
}
func logRun(ctx context.Context, args []string, out, errw *bytes.Buffer) error {
	return runLog(ctx, args, out, errw)
}
func atRun(ctx context.Context, args []string, out, errw *bytes.Buffer) error {
	return runAt(ctx, args, out, errw)
}
func trailRun(ctx context.Context, args []string, out, errw *bytes.Buffer) error {
	return runTrail(ctx, args, out, errw)
}
func rebuildRun(_ context.Context, args []string, out, errw *bytes.Buffer) error {
	return runRebuild(args, out, errw)
}

// opEvent sends an event (state when stateKey is not nil) and returns its
// ID.
func opEvent(t testing.TB, base, token, roomID, evType string, stateKey *string, txn string, content any) string {
	t.Helper()
	path := "/rooms/" + url.PathEscape(roomID) + "/send/" + evType + "/" + txn
	method := http.MethodPut
	if stateKey != nil {
		path = "/rooms/" + url.PathEscape(roomID) + "/state/" + evType + "/" + url.PathEscape(*stateKey)
	}
	var res struct {
		EventID string `json:"event_id"`
	}
	if _, err := opMatrixCall(method, base, path, token, content, &res); err != nil {
		t.Fatalf("send %s: %v", evType, err)
	}
	return res.EventID
}

func opRedact(t testing.TB, base, token, roomID, eventID, txn string) string {
	t.Helper()
	var res struct {
		EventID string `json:"event_id"`
	}
	if _, err := opMatrixCall(http.MethodPut, base, "/rooms/"+url.PathEscape(roomID)+"/redact/"+url.PathEscape(eventID)+"/"+txn, token,
		map[string]any{"reason": "audit test"}, &res); err != nil {
		t.Fatalf("redact %s: %v", eventID, err)
	}
	return res.EventID
}

type syncEvent struct {
	EventID  string          `json:"event_id"`
	Type     string          `json:"type"`
	StateKey *string         `json:"state_key"`
	Sender   string          `json:"sender"`
	Content  json.RawMessage `json:"content"`
	Unsigned struct {
		PrevContent     json.RawMessage `json:"prev_content"`
		RedactedBecause *struct {
			EventID string `json:"event_id"`
		} `json:"redacted_because"`
	} `json:"unsigned"`
}

type syncAnswer struct {
	NextBatch string `json:"next_batch"`
	Rooms     struct {
		Join map[string]struct {
			State    struct{ Events []syncEvent } `json:"state"`
			Timeline struct{ Events []syncEvent } `json:"timeline"`
		} `json:"join"`
	} `json:"rooms"`
}

func sameJSON(a, b json.RawMessage) bool {
	var x, y any
	if len(a) == 0 || len(b) == 0 {
		return len(a) == len(b)
	}
	if json.Unmarshal(a, &x) != nil || json.Unmarshal(b, &y) != nil {
		return false
	}
	return reflect.DeepEqual(x, y)
}

// compareEvents fails unless the audit answer's events are what the
// client saw: same IDs in the same order, same content, prev_content and
// redaction.
func compareEvents(t *testing.T, what string, got []audit.ClientEvent, want []syncEvent) {
	t.Helper()
	if len(got) != len(want) {
		t.Fatalf("%s: %d events, the client saw %d", what, len(got), len(want))
	}
	for i := range want {
		g, w := got[i], want[i]
		if g.EventID != w.EventID || g.Type != w.Type || g.Sender != w.Sender || !reflect.DeepEqual(g.StateKey, w.StateKey) {
			t.Errorf("%s[%d]: %s %s by %s, the client saw %s %s by %s", what, i, g.EventID, g.Type, g.Sender, w.EventID, w.Type, w.Sender)
			continue
		}
		if !sameJSON(g.Content, w.Content) {
			t.Errorf("%s[%d] %s: content %s, the client saw %s", what, i, g.EventID, g.Content, w.Content)
		}
		if !sameJSON(g.Unsigned.PrevContent, w.Unsigned.PrevContent) {
			t.Errorf("%s[%d] %s: prev_content %s, the client saw %s", what, i, g.EventID, g.Unsigned.PrevContent, w.Unsigned.PrevContent)
		}
		if (g.Unsigned.RedactedBecause == nil) != (w.Unsigned.RedactedBecause == nil) {
			t.Errorf("%s[%d] %s: redacted %v, the client saw redacted %v", what, i, g.EventID, g.Unsigned.RedactedBecause != nil, w.Unsigned.RedactedBecause != nil)
		}
	}
}

// stateAtToken is the room state a client holds after an initial sync:
// the state block, then the timeline's state events.
func stateAtToken(room struct {
	State    struct{ Events []syncEvent } `json:"state"`
	Timeline struct{ Events []syncEvent } `json:"timeline"`
}) []syncEvent {
	type key struct{ t, sk string }
	byKey := map[key]syncEvent{}
	for _, ev := range append(slices.Clone(room.State.Events), room.Timeline.Events...) {
		if ev.StateKey != nil {
			byKey[key{ev.Type, *ev.StateKey}] = ev
		}
	}
	var out []syncEvent
	for _, ev := range byKey {
		out = append(out, ev)
	}
	slices.SortFunc(out, func(a, b syncEvent) int {
		if c := strings.Compare(a.Type, b.Type); c != 0 {
			return c
		}
		return strings.Compare(*a.StateKey, *b.StateKey)
	})
	return out
}

func decodeAnswer(t *testing.T, s string) *audit.Answer {
	t.Helper()
	var a audit.Answer
	if err := json.Unmarshal([]byte(s), &a); err != nil {
		t.Fatalf("decode answer: %v\n%s", err, s)
	}
	return &a
}

func decodeReport(t *testing.T, s string) *audit.VerifyReport {
	t.Helper()
	var r audit.VerifyReport
	if err := json.Unmarshal([]byte(s), &r); err != nil {
		t.Fatalf("decode report: %v\n%s", err, s)
	}
	return &r
}

// workloadState is what the workload leaves to check.
type workloadState struct {
	room, token                          string
	passwords, tokens                    []string
	aliceTimeline, aliceState            []syncEvent
	redactedMsg, topic1                  string
	headAfter                            string
	sync                                 syncAnswer
	aliceDevicesAtToken, aliceDevicesNow int
}

// runWorkload drives registrations, a second device, a room with
// messages, a redaction, typing, receipts, then takes a sync token and
// changes things after it (a new topic, the old one redacted, a leave, a
// logout).
func runWorkload(t *testing.T, base string) *workloadState {
	t.Helper()
	ws := &workloadState{}
	alice := opRegister(t, base, "alice")
	bob := opRegister(t, base, "bob")
	laptop := opLogin(t, base, "alice")
	ws.tokens = []string{alice, bob, laptop}
	ws.passwords = []string{opPassword("alice"), opPassword("bob")}
	room := opCreateRoom(t, base, alice, true)
	ws.room = room
	opJoin(t, base, bob, room)
	setDisplayName(t, base, alice, "@alice:localhost", "Alice")
	empty := ""
	ws.topic1 = opEvent(t, base, alice, room, "m.room.topic", &empty, "", map[string]any{"topic": "first topic"})
	var msgs []string
	for i := range 30 {
		tok := alice
		if i%3 == 1 {
			tok = bob
		}
		msgs = append(msgs, opEvent(t, base, tok, room, "m.room.message", nil, fmt.Sprint("m", i), map[string]any{"msgtype": "m.text", "body": fmt.Sprint("message ", i)}))
	}
	if _, err := opMatrixCall(http.MethodPut, base, "/rooms/"+url.PathEscape(room)+"/typing/"+url.PathEscape("@bob:localhost"), bob,
		map[string]any{"typing": true, "timeout": 30000}, nil); err != nil {
		t.Fatalf("typing: %v", err)
	}
	if _, err := opMatrixCall(http.MethodPost, base, "/rooms/"+url.PathEscape(room)+"/receipt/m.read/"+url.PathEscape(msgs[27]), bob, map[string]any{}, nil); err != nil {
		t.Fatalf("receipt: %v", err)
	}
	// A message in the last ten, redacted before the token.
	ws.redactedMsg = msgs[25]
	opRedact(t, base, alice, room, ws.redactedMsg, "r1")
	opEvent(t, base, alice, room, "m.room.message", nil, "m-last", map[string]any{"msgtype": "m.text", "body": "last before the token"})

	// The client's view at a token.
	if _, err := opMatrixCall(http.MethodGet, base, "/sync", alice, nil, &ws.sync); err != nil {
		t.Fatalf("sync: %v", err)
	}
	jr, ok := ws.sync.Rooms.Join[room]
	if !ok {
		t.Fatalf("sync has no joined room %s", room)
	}
	ws.aliceState = stateAtToken(jr)
	ws.aliceTimeline = jr.Timeline.Events
	ws.aliceDevicesAtToken = 2

	// After the token: history the point-in-time answers must not see.
	opEvent(t, base, alice, room, "m.room.topic", &empty, "", map[string]any{"topic": "second topic"})
	opRedact(t, base, alice, room, ws.topic1, "r2")                                         // the topic alice saw, redacted later
	opRedact(t, base, alice, room, ws.aliceTimeline[len(ws.aliceTimeline)-1].EventID, "r3") // and the last message she saw
	if _, err := opMatrixCall(http.MethodPost, base, "/rooms/"+url.PathEscape(room)+"/leave", bob, map[string]any{}, nil); err != nil {
		t.Fatalf("leave: %v", err)
	}
	if _, err := opMatrixCall(http.MethodPost, base, "/logout", laptop, map[string]any{}, nil); err != nil {
		t.Fatalf("logout: %v", err)
	}
	ws.aliceDevicesNow = 1
	setDisplayName(t, base, alice, "@alice:localhost", "Alice Cooper")
	for i := range 20 {
		opEvent(t, base, alice, room, "m.room.message", nil, fmt.Sprint("late", i), map[string]any{"msgtype": "m.text", "body": fmt.Sprint("late ", i)})
	}
	return ws
}

// checkPointInTime compares at's answers with what the client saw.
func checkPointInTime(t *testing.T, ws *workloadState, src ...string) {
	t.Helper()
	token := ws.sync.NextBatch
	ans := decodeAnswer(t, cliOK(t, atRun, append([]string{token, "room", ws.room, "state", "--json"}, src...)...))
	if ans.Method != "history" {
		t.Errorf("state answered by %s", ans.Method)
	}
	compareEvents(t, "state at "+token, ans.Events, ws.aliceState)
	var topic audit.ClientEvent
	for _, ev := range ans.Events {
		if ev.Type == "m.room.topic" {
			topic = ev
		}
	}
	if !strings.Contains(string(topic.Content), "first topic") {
		t.Errorf("topic at %s: %s (redacted later, it must read as it did then)", token, topic.Content)
	}
	// The same answer from a replay of the log.
	replayed := decodeAnswer(t, cliOK(t, atRun, append([]string{token, "room", ws.room, "state", "--json", "--replay"}, src...)...))
	compareEvents(t, "replayed state at "+token, replayed.Events, ws.aliceState)

	tl := decodeAnswer(t, cliOK(t, atRun, append([]string{token, "room", ws.room, "timeline", "--json", "--limit", strconv.Itoa(len(ws.aliceTimeline))}, src...)...))
	compareEvents(t, "timeline at "+token, tl.Events, ws.aliceTimeline)

	members := decodeAnswer(t, cliOK(t, atRun, append([]string{token, "room", ws.room, "members", "--json"}, src...)...))
	var wantMembers []syncEvent
	for _, ev := range ws.aliceState {
		if ev.Type == "m.room.member" {
			wantMembers = append(wantMembers, ev)
		}
	}
	compareEvents(t, "members at "+token, members.Events, wantMembers)

	rooms := decodeAnswer(t, cliOK(t, atRun, append([]string{token, "user", "@bob:localhost", "rooms", "--json"}, src...)...))
	if !reflect.DeepEqual(rooms.Rooms, []audit.UserRoom{{RoomID: ws.room, Membership: "join"}}) {
		t.Errorf("bob's rooms at %s: %+v", token, rooms.Rooms)
	}
	roomsNow := decodeAnswer(t, cliOK(t, atRun, append([]string{strings.Split(ws.headAfter, ":")[0], "user", "@bob:localhost", "rooms", "--json"}, src...)...))
	if !reflect.DeepEqual(roomsNow.Rooms, []audit.UserRoom{{RoomID: ws.room, Membership: "leave"}}) {
		t.Errorf("bob's rooms now: %+v", roomsNow.Rooms)
	}
	devs := decodeAnswer(t, cliOK(t, atRun, append([]string{token, "user", "@alice:localhost", "devices", "--json"}, src...)...))
	if len(devs.Devices) != ws.aliceDevicesAtToken || devs.Method != "replay" {
		t.Errorf("alice's devices at %s: %+v (%s)", token, devs.Devices, devs.Method)
	}
	devsNow := decodeAnswer(t, cliOK(t, atRun, append([]string{strings.Split(ws.headAfter, ":")[0], "user", "@alice:localhost", "devices", "--json"}, src...)...))
	if len(devsNow.Devices) != ws.aliceDevicesNow {
		t.Errorf("alice's devices now: %+v", devsNow.Devices)
	}
	// Profiles from their history: the name alice had at the token, not
	// the one she took after it.
	profile := decodeAnswer(t, cliOK(t, atRun, append([]string{token, "user", "@alice:localhost", "profile", "--json"}, src...)...))
	if got := string(profile.Profile["displayname"]); got != `"Alice"` || profile.Method != "history" {
		t.Errorf("alice's profile at %s: %+v (%s)", token, profile.Profile, profile.Method)
	}
	now := cliOK(t, atRun, append([]string{strings.Split(ws.headAfter, ":")[0], "user", "@alice:localhost", "profile"}, src...)...)
	if !strings.Contains(now, `displayname  "Alice Cooper"`) {
		t.Errorf("alice's profile now:\n%s", now)
	}
}

// setDisplayName changes a user's displayname through the client API.
func setDisplayName(t *testing.T, base, token, userID, name string) {
	t.Helper()
	if _, err := opMatrixCall(http.MethodPut, base, "/profile/"+url.PathEscape(userID)+"/displayname", token, map[string]any{"displayname": name}, nil); err != nil {
		t.Fatalf("set displayname of %s: %v", userID, err)
	}
}

func TestAuditCommands(t *testing.T) {
	// Verify caches its replayed state in the user cache directory: keep
	// it in the test's.
	t.Setenv("XDG_CACHE_HOME", t.TempDir())
	srv := apitest.StartCheckpointing(t, "", 25)
	ws := runWorkload(t, srv.URL)
	online := []string{"--node", srv.URL, "--secret", apitest.Secret}
	offline := []string{"--data", srv.Dir}
	cache := t.TempDir()

	// Online, against the running node.
	ws.headAfter = strings.TrimSpace(cliOK(t, logRun, append([]string{"head"}, online...)...))
	if _, err := audit.ParseHead(ws.headAfter); err != nil {
		t.Fatalf("log head printed %q: %v", ws.headAfter, err)
	}
	rep := decodeReport(t, cliOK(t, verifyRun, append(online, "--json")...))
	if !rep.OK || rep.Replay.CheckpointsChecked == 0 {
		t.Fatalf("online verify: ok=%v %s, %d checkpoints", rep.OK, rep.Failure, rep.Replay.CheckpointsChecked)
	}
	checkPointInTime(t, ws, online...)
	onlineExport := cliOK(t, logRun, append([]string{"export"}, online...)...)
	onlineTrail := cliOK(t, trailRun, append([]string{"user", "@alice:localhost", "--json"}, online...)...)
	if _, err := cli(t, logRun, "head", "--node", srv.URL, "--secret", "wrong"); err == nil {
		t.Fatal("log head with a wrong secret worked")
	}

	srv.Stop()

	// Offline, on the stopped node's data directory.
	if h := strings.TrimSpace(cliOK(t, logRun, append([]string{"head"}, offline...)...)); h != ws.headAfter {
		t.Fatalf("offline head %s, online %s", h, ws.headAfter)
	}
	out := cliOK(t, verifyRun, append(offline, "--cache", cache)...)
	if !strings.Contains(out, "verify OK") {
		t.Fatalf("verify output:\n%s", out)
	}
	checkPointInTime(t, ws, offline...)

	// Export: every record, bodies decoded, and no secret.
	export := cliOK(t, logRun, append([]string{"export"}, offline...)...)
	if export != onlineExport {
		t.Errorf("online and offline exports differ")
	}
	lines := strings.Split(strings.TrimSpace(export), "\n")
	head, _ := audit.ParseHead(ws.headAfter)
	if uint64(len(lines)) != head.Seq {
		t.Errorf("export has %d lines, the log %d records", len(lines), head.Seq)
	}
	types := map[string]int{}
	for _, l := range lines {
		var e audit.Entry
		if err := json.Unmarshal([]byte(l), &e); err != nil {
			t.Fatalf("export line %q: %v", l, err)
		}
		types[e.Type]++
		if e.Body == nil {
			t.Errorf("record %d (%s) exported without a decoded body", e.Seq, e.Type)
		}
	}
	for _, want := range []string{"account.registered", "session.started", "session.ended", "room.event", "typing.set", "receipt.set", "log.checkpoint"} {
		if types[want] == 0 {
			t.Errorf("export holds no %s record (types %v)", want, types)
		}
	}
	for _, secret := range append(slices.Clone(ws.passwords), ws.tokens...) {
		if strings.Contains(export, secret) {
			t.Errorf("the export contains the secret %q", secret)
		}
	}
	if strings.Contains(export, "$2a$") || strings.Contains(export, "$argon2") {
		t.Error("the export shows a password hash")
	}

	// show/tail tables and filters.
	show := cliOK(t, logRun, append([]string{"show", "--type", "room.*", "--actor", "@bob:localhost"}, offline...)...)
	if !strings.Contains(show, "room.event") || strings.Contains(show, "@alice:localhost  ") {
		t.Errorf("log show filtered by type and actor:\n%s", show)
	}
	tail := cliOK(t, logRun, append([]string{"tail", "-n", "3", "--json"}, offline...)...)
	if n := len(strings.Split(strings.TrimSpace(tail), "\n")); n != 3 {
		t.Errorf("tail -n 3 printed %d lines", n)
	}
	onlineTail := cliOK(t, logRun, append([]string{"tail", "-n", "3", "--json"}, offline...)...)
	if onlineTail != tail {
		t.Error("online and offline tails differ")
	}
	byRoom := cliOK(t, logRun, append([]string{"export", "--room", ws.room, "--from", "1", "--to", strconv.FormatUint(head.Seq, 10)}, offline...)...)
	for _, l := range strings.Split(strings.TrimSpace(byRoom), "\n") {
		var e audit.Entry
		json.Unmarshal([]byte(l), &e)
		if e.RoomID != ws.room {
			t.Errorf("--room kept record %d of room %q", e.Seq, e.RoomID)
		}
	}

	// Trails.
	trail := cliOK(t, trailRun, append([]string{"user", "@alice:localhost", "--json"}, offline...)...)
	if trail != onlineTrail {
		t.Error("online and offline trails differ")
	}
	for _, want := range []string{`"account.registered"`, `"session.started"`, `"session.ended"`, `"room.event"`} {
		if !strings.Contains(trail, want) {
			t.Errorf("alice's trail has no %s", want)
		}
	}
	if strings.Contains(trail, `"actor":"@bob:localhost"`) {
		t.Error("alice's trail holds bob's records")
	}
	roomTrail := cliOK(t, trailRun, append([]string{"room", ws.room}, offline...)...)
	for _, want := range []string{"typing.set", "receipt.set", "room.event", "POSITION", "TIME"} {
		if !strings.Contains(roomTrail, want) {
			t.Errorf("the room's trail has no %s:\n%s", want, roomTrail)
		}
	}

	// --against: the published head holds; a rewritten one does not.
	cliOK(t, verifyRun, append(offline, "--against", ws.headAfter)...)
	bad := []byte(ws.headAfter)
	bad[len(bad)-1] ^= 1
	if bad[len(bad)-1] > 'f' || (bad[len(bad)-1] > '9' && bad[len(bad)-1] < 'a') {
		bad[len(bad)-1] = '0'
	}
	if _, err := cli(t, verifyRun, append(offline, "--against", string(bad))...); err == nil || !strings.Contains(err.Error(), "rewritten") {
		t.Errorf("verify against a wrong hash: %v", err)
	}

	// --from-checkpoint resumes from the state the first verify cached.
	rep = decodeReport(t, cliOK(t, verifyRun, append(offline, "--cache", cache, "--from-checkpoint", "--json")...))
	if !rep.OK || rep.Replay.From <= 1 || rep.Chain.From <= 1 {
		t.Errorf("verify --from-checkpoint: ok=%v replay from %d, chain from %d, notes %v", rep.OK, rep.Replay.From, rep.Chain.From, rep.Notes)
	}

	// rebuild changes nothing on a sound store.
	digests := func() map[string]string {
		r := decodeReport(t, cliOK(t, verifyRun, append(offline, "--no-cache", "--json")...))
		m := map[string]string{}
		for _, p := range r.Projections {
			m[p.Name] = p.Live + "/" + p.FoldLive
		}
		return m
	}
	before := digests()
	out = cliOK(t, rebuildRun, append(offline, "--json")...)
	var rr audit.RebuildReport
	if err := json.Unmarshal([]byte(out), &rr); err != nil {
		t.Fatal(err)
	}
	if rr.Records != head.Seq || len(rr.Rebuilt) != len(machine.NewEngine().Projections()) {
		t.Errorf("rebuild: %d records, rebuilt %v", rr.Records, rr.Rebuilt)
	}
	for _, p := range rr.Projections {
		if p.Changed {
			t.Errorf("rebuild changed %s", p.Name)
		}
	}
	if after := digests(); !reflect.DeepEqual(before, after) {
		t.Errorf("digests changed by a rebuild:\n%v\n%v", before, after)
	}
	out = cliOK(t, rebuildRun, append(offline, "--projection", "rooms")...)
	if !strings.Contains(out, "accounts, rooms") || !strings.Contains(out, "records/s") {
		t.Errorf("rebuild --projection rooms:\n%s", out)
	}

	// Damage: a flipped byte in one record, then a projection corrupted.
	stateDir := filepath.Join(srv.Dir, "state")
	const k = 17
	key := binary.BigEndian.AppendUint64([]byte{0x01}, k)
	orig := rawGet(t, stateDir, key)
	flipped := bytes.Clone(orig)
	flipped[len(flipped)/3] ^= 0x20
	rawSet(t, stateDir, key, flipped)
	out, err := cli(t, verifyRun, offline...)
	if err == nil || !strings.Contains(err.Error(), fmt.Sprintf("record %d", k)) || !strings.Contains(out, fmt.Sprintf("BROKEN at record %d", k)) {
		t.Errorf("verify with record %d damaged: %v\n%s", k, err, out)
	}
	rawSet(t, stateDir, key, orig)

	junk := []byte{0x20, 'z', 'j', 'u', 'n', 'k'}
	rawSet(t, stateDir, junk, []byte("junk"))
	out, err = cli(t, verifyRun, offline...)
	if err == nil || !strings.Contains(err.Error(), "projection rooms differs") {
		t.Errorf("verify with rooms corrupted: %v\n%s", err, out)
	}
	// A rebuild repairs it, and says it changed something.
	out = cliOK(t, rebuildRun, append(offline, "--projection", "rooms")...)
	if !strings.Contains(out, "CHANGED") {
		t.Errorf("rebuild of a corrupted projection:\n%s", out)
	}
	cliOK(t, verifyRun, offline...)
}

func rawGet(t *testing.T, dir string, key []byte) []byte {
	t.Helper()
	db, err := pebble.Open(dir, machine.StoreOptions())
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	v, closer, err := db.Get(key)
	if err != nil {
		t.Fatal(err)
	}
	defer closer.Close()
	return bytes.Clone(v)
}

func rawSet(t *testing.T, dir string, key, value []byte) {
	t.Helper()
	db, err := pebble.Open(dir, machine.StoreOptions())
	if err != nil {
		t.Fatal(err)
	}
	if err := db.Set(key, value, pebble.Sync); err != nil {
		t.Fatal(err)
	}
	if err := db.Close(); err != nil {
		t.Fatal(err)
	}
}

// syncBuffer is a bytes.Buffer safe for one writer and one reader.
type syncBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (s *syncBuffer) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.Write(p)
}

func (s *syncBuffer) String() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.String()
}

// TestLogTailFollowOnline: tail --follow long-polls the node and prints
// records as they are written.
func TestLogTailFollowOnline(t *testing.T) {
	srv := apitest.Start(t, "")
	tok := opRegister(t, srv.URL, "carol")
	room := opCreateRoom(t, srv.URL, tok, false)
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	var out syncBuffer
	done := make(chan error, 1)
	go func() {
		done <- runLog(ctx, []string{"tail", "--follow", "-n", "1", "--room", room, "--node", srv.URL, "--secret", apitest.Secret, "--progress", "off"}, &out, io.Discard)
	}()
	for i := range 3 {
		opSend(t, srv.URL, tok, room, fmt.Sprint("f", i), fmt.Sprint("followed ", i))
	}
	if err := waitFor(10*time.Second, func() bool { return strings.Count(out.String(), "m.room.message") >= 3 }); err != nil {
		t.Fatalf("tail --follow printed:\n%s", out.String())
	}
	cancel()
	if err := <-done; err != nil {
		t.Fatalf("tail --follow: %v", err)
	}
	if !strings.Contains(out.String(), "POSITION") || strings.Count(out.String(), "POSITION") != 1 {
		t.Errorf("the table header should come once:\n%s", out.String())
	}
}
