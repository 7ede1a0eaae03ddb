package projections_test

import (
	"bytes"
	"crypto/sha256"
	"encoding/binary"
	"encoding/json"
	"fmt"
	"log/slog"
	"reflect"
	"strings"
	"testing"

	"github.com/cockroachdb/pebble/v2"

	rlog "chronicle/log"
	"chronicle/projections"
	"chronicle/projections/accounts"
	"chronicle/projections/facts"
	"chronicle/projections/rooms"
	"chronicle/raft/machine"
)

var quiet = slog.New(slog.DiscardHandler)

type quietPebble struct{}

func (quietPebble) Infof(string, ...any)         {}
func (quietPebble) Errorf(string, ...any)        {}
func (quietPebble) Fatalf(f string, args ...any) { panic(fmt.Sprintf(f, args...)) }

func openDB(t *testing.T, dir string) *pebble.DB {
	t.Helper()
	db, err := pebble.Open(dir, &pebble.Options{Logger: quietPebble{}})
	if err != nil {
		t.Fatal(err)
	}
	return db
}

func openMachine(t *testing.T, dir string) *machine.Machine {
	t.Helper()
	m, err := machine.Open(dir, machine.Config{ServerName: "localhost", Logger: quiet})
	if err != nil {
		t.Fatal(err)
	}
	return m
}

// applyWorkload applies a small mixed workload: accounts, sessions, two
// rooms, memberships, state and messages.
func applyWorkload(t *testing.T, m *machine.Machine) {
	t.Helper()
	idx := m.AppliedIndex()
	do := func(typ, actor, device string, payload any) *machine.Result {
		t.Helper()
		idx++
		c, err := machine.NewCommand(typ, 1_700_000_000_000+int64(idx), actor, device, payload)
		if err != nil {
			t.Fatal(err)
		}
		res, err := m.Apply(idx, c)
		if err != nil || res == nil {
			t.Fatalf("index %d: %+v %v", idx, res, err)
		}
		if res.Err != nil {
			t.Fatalf("index %d %s: %v", idx, typ, res.Err)
		}
		return res
	}
	users := []string{"@alice:localhost", "@bob:localhost", "@carol:localhost"}
	for _, u := range users {
		do(machine.CmdRegister, "", "", &machine.Register{UserID: u, DeviceID: "D", TokenHash: sha256.Sum256([]byte(u))})
		do(machine.CmdLogin, u, "", &machine.Login{DeviceID: "E", TokenHash: sha256.Sum256([]byte(u + "E"))})
	}
	do(machine.CmdLogout, users[2], "E", &machine.Logout{})
	name := "room"
	r1 := do(machine.CmdCreateRoom, users[0], "D", &machine.CreateRoom{Preset: "public_chat", Name: &name, Invite: []string{users[1]}}).RoomID
	r2 := do(machine.CmdCreateRoom, users[1], "D", &machine.CreateRoom{Preset: "private_chat", Invite: []string{users[2]}}).RoomID
	for _, u := range users[1:] {
		do(machine.CmdMembership, u, "", &machine.Membership{RoomID: r1, Target: u, Membership: "join"})
	}
	do(machine.CmdMembership, users[2], "", &machine.Membership{RoomID: r2, Target: users[2], Membership: "join"})
	for i := range 30 {
		room, u := r1, users[i%3]
		if i%4 == 0 {
			room, u = r2, users[1+i%2]
		}
		do(machine.CmdSendEvent, u, "D", &machine.SendEvent{RoomID: room, Type: "m.room.message",
			Content: json.RawMessage(fmt.Sprintf(`{"body":"%d"}`, i)), TxnID: fmt.Sprint(i)})
	}
	do(machine.CmdFilter, users[0], "", &machine.CreateFilter{Filter: json.RawMessage(`{"room":{"timeline":{"limit":10}}}`)})
	do(machine.CmdFilter, users[0], "", &machine.CreateFilter{Filter: json.RawMessage(`{}`)})
	do(machine.CmdFilter, users[1], "", &machine.CreateFilter{Filter: json.RawMessage(`{"presence":{"not_types":["*"]}}`)})
	sk := ""
	do(machine.CmdSendEvent, users[0], "D", &machine.SendEvent{RoomID: r1, Type: "m.room.topic", StateKey: &sk, Content: json.RawMessage(`{"topic":"t"}`)})
	// A thread reply, for the relations projection.
	root := do(machine.CmdSendEvent, users[0], "D", &machine.SendEvent{RoomID: r1, Type: "m.room.message", Content: json.RawMessage(`{"body":"root"}`)}).EventID
	do(machine.CmdSendEvent, users[1], "D", &machine.SendEvent{RoomID: r1, Type: "m.room.message",
		Content: json.RawMessage(`{"body":"reply","m.relates_to":{"rel_type":"m.thread","event_id":"` + root + `"}}`)})
	do(machine.CmdMembership, users[2], "", &machine.Membership{RoomID: r1, Target: users[2], Membership: "leave"})
	// Profiles, for the profiles projection: a rename (also a join in r1
	// and r2), a custom field set and removed.
	do(machine.CmdSetProfileField, users[1], "D", &machine.ProfileField{Key: "displayname", Value: json.RawMessage(`"Bob"`)})
	do(machine.CmdSetProfileField, users[1], "D", &machine.ProfileField{Key: "m.tz", Value: json.RawMessage(`"Europe/Paris"`)})
	do(machine.CmdDeleteProfileField, users[1], "D", &machine.ProfileField{Key: "m.tz"})
	// The cluster registry and the data /sync carries.
	do(machine.CmdNodeAnnounce, "", "", &machine.NodeAnnounce{NodeID: "n1", RaftAddr: "127.0.0.1:9008", URL: "http://127.0.0.1:8008"})
	do(machine.CmdAccountData, users[0], "D", &machine.AccountData{Type: "org.example", Content: json.RawMessage(`{"a":1}`)})
	do(machine.CmdReceipt, users[1], "D", &machine.Receipt{RoomID: r1, Type: "m.read", EventID: root})
	do(machine.CmdTyping, users[1], "D", &machine.Typing{RoomID: r1, Typing: true, Timeout: 30000})
	do(machine.CmdPresence, users[1], "D", &machine.Presence{Presence: "online"})
	do(machine.CmdSendToDevice, users[0], "D", &machine.SendToDevice{Type: "m.test", TxnID: "1",
		Messages: map[string]map[string]json.RawMessage{users[1]: {"*": json.RawMessage(`{"x":1}`)}}})
	// A report, for the reports projection.
	do(machine.CmdReport, users[1], "", &machine.Report{RoomID: r1, EventID: root, Reason: "test"})
	// A push rule, for the pushrules projection (the messages above fill
	// the notifications projection).
	do(machine.CmdPushRulePut, users[1], "D", &machine.PushRulePut{Kind: "override", RuleID: "quiet", Actions: json.RawMessage(`[]`),
		Conditions: json.RawMessage(`[{"kind":"event_match","key":"content.body","pattern":"shh"}]`)})
	// End-to-end encryption keys, for the e2ekeys projection.
	do(machine.CmdUploadKeys, users[0], "D", &machine.UploadKeys{OneTimeKeys: []machine.UploadedKey{
		{Algorithm: "signed_curve25519", KeyID: "A", Key: json.RawMessage(`"a"`)}, {Algorithm: "signed_curve25519", KeyID: "B", Key: json.RawMessage(`"b"`)}}})
	do(machine.CmdClaimKeys, users[1], "D", &machine.ClaimKeys{Claims: []machine.KeyClaim{{UserID: users[0], DeviceID: "D", Algorithm: "signed_curve25519"}}})
	// A room key backup, for the keybackup projection.
	v := do(machine.CmdCreateKeyBackup, users[1], "D", &machine.KeyBackupVersion{Algorithm: "m.megolm_backup.v1.curve25519-aes-sha2", AuthData: json.RawMessage(`{"public_key":"k"}`)}).KeyBackup.Version
	do(machine.CmdPutRoomKeys, users[1], "D", &machine.PutRoomKeys{Version: v, Keys: []facts.BackedUpRoomKey{
		{RoomID: r1, SessionID: "s", SessionData: json.RawMessage(`{"ciphertext":"c"}`)}}})
}

func digestsOf(t *testing.T, r pebble.Reader) map[string][32]byte {
	t.Helper()
	d, err := machine.NewEngine().Digests(r)
	if err != nil {
		t.Fatal(err)
	}
	return d
}

func machineDigests(t *testing.T, m *machine.Machine) map[string][32]byte {
	t.Helper()
	var d map[string][32]byte
	if err := m.View(func(r pebble.Reader) error { d = digestsOf(t, r); return nil }); err != nil {
		t.Fatal(err)
	}
	return d
}

func versionKey(name string) []byte { return append([]byte{0x03}, name...) }

// built returns a closed state store holding the workload, and its digests.
func built(t *testing.T) (string, map[string][32]byte) {
	t.Helper()
	dir := t.TempDir()
	m := openMachine(t, dir)
	applyWorkload(t, m)
	d := machineDigests(t, m)
	if err := m.Close(); err != nil {
		t.Fatal(err)
	}
	return dir, d
}

// corrupt scribbles over every projection's key space.
func corrupt(t *testing.T, db *pebble.DB) {
	t.Helper()
	b := db.NewBatch()
	for _, p := range machine.NewEngine().Projections() {
		b.Set([]byte{p.Prefix(), 'z', 'z'}, []byte("junk"), nil)
		b.Set([]byte{p.Prefix()}, nil, nil)
	}
	// Drop a real key from each projection too.
	for _, p := range machine.NewEngine().Projections() {
		it, _ := db.NewIter(&pebble.IterOptions{LowerBound: []byte{p.Prefix(), 0x01}, UpperBound: []byte{p.Prefix() + 1}})
		if !it.First() {
			t.Fatalf("projection %s is empty", p.Name())
		}
		b.Delete(bytes.Clone(it.Key()), nil)
		it.Close()
	}
	if err := b.Commit(pebble.Sync); err != nil {
		t.Fatal(err)
	}
}

func TestOpenRebuildsOnVersionChange(t *testing.T) {
	for _, tc := range []struct {
		name  string
		write func(b *pebble.Batch)
	}{
		{"rooms version bumped", func(b *pebble.Batch) { b.Set(versionKey("rooms"), []byte{0, 0, 0, 99}, nil) }},
		{"accounts version bumped", func(b *pebble.Batch) { b.Set(versionKey("accounts"), []byte{0, 0, 0, 0}, nil) }},
		{"version key missing", func(b *pebble.Batch) { b.Delete(versionKey("accounts"), nil) }},
		{"version value malformed", func(b *pebble.Batch) { b.Set(versionKey("rooms"), []byte{1}, nil) }},
	} {
		t.Run(tc.name, func(t *testing.T) {
			dir, want := built(t)
			db := openDB(t, dir)
			if stale, err := machine.NewEngine().Stale(db); err != nil || len(stale) != 0 {
				t.Fatalf("fresh store reported stale %v (%v)", stale, err)
			}
			corrupt(t, db)
			b := db.NewBatch()
			tc.write(b)
			if err := b.Commit(pebble.Sync); err != nil {
				t.Fatal(err)
			}
			if stale, err := machine.NewEngine().Stale(db); err != nil || len(stale) != 1 {
				t.Fatalf("stale = %v (%v), want one projection", stale, err)
			}
			if got := digestsOf(t, db); reflect.DeepEqual(got, want) {
				t.Fatal("corruption did not change the digests")
			}
			if err := db.Close(); err != nil {
				t.Fatal(err)
			}

			m := openMachine(t, dir) // rebuilds
			if got := machineDigests(t, m); !reflect.DeepEqual(got, want) {
				t.Fatalf("digests after rebuild differ from the original")
			}
			if err := m.View(func(r pebble.Reader) error {
				stale, err := m.Engine().Stale(r)
				if len(stale) != 0 {
					t.Errorf("still stale after rebuild: %v", stale)
				}
				return err
			}); err != nil {
				t.Fatal(err)
			}
			// The rebuilt machine keeps working.
			c, _ := machine.NewCommand(machine.CmdRegister, 1, "", "", &machine.Register{UserID: "@late:localhost", InhibitLogin: true})
			if res, err := m.Apply(m.AppliedIndex()+1, c); err != nil || res.Err != nil {
				t.Fatalf("apply after rebuild: %+v %v", res, err)
			}
			m.Close()
		})
	}
}

func TestRebuildGivesIdenticalDigests(t *testing.T) {
	dir, want := built(t)
	db := openDB(t, dir)
	defer db.Close()
	e := machine.NewEngine()
	// Rebuilding an intact store changes nothing.
	if err := e.Rebuild(db, quiet); err != nil {
		t.Fatal(err)
	}
	if got := digestsOf(t, db); !reflect.DeepEqual(got, want) {
		t.Fatalf("rebuild of an intact store changed digests")
	}
	// Rebuilding a scribbled-over store restores exactly the folded state.
	corrupt(t, db)
	if err := e.Rebuild(db, quiet); err != nil {
		t.Fatal(err)
	}
	if got := digestsOf(t, db); !reflect.DeepEqual(got, want) {
		t.Fatalf("rebuild did not restore the digests")
	}
	if _, err := rlog.VerifyChain(db); err != nil {
		t.Fatalf("rebuild touched the log: %v", err)
	}
}

// fake is a projection that owns a prefix and folds nothing.
type fake struct {
	name   string
	prefix byte
	apply  func(w projections.Writer, rec *rlog.Record) error
}

func (f fake) Name() string    { return f.name }
func (f fake) Version() uint32 { return 7 }
func (f fake) Prefix() byte    { return f.prefix }
func (f fake) Apply(w projections.Writer, rec *rlog.Record) error {
	if f.apply == nil {
		return nil
	}
	return f.apply(w, rec)
}

func TestNewEngineRejectsSharedAndReservedPrefixes(t *testing.T) {
	if _, err := projections.NewEngine(fake{name: "a", prefix: 0x30}, fake{name: "b", prefix: 0x31}, fake{name: "c", prefix: 0x30}); err == nil {
		t.Error("shared prefix accepted")
	} else if !strings.Contains(err.Error(), "a") || !strings.Contains(err.Error(), "c") {
		t.Errorf("error %q does not name both projections", err)
	}
	if _, err := projections.NewEngine(accounts.Projection{}, fake{name: "clash", prefix: accounts.Prefix}); err == nil {
		t.Error("prefix shared with accounts accepted")
	}
	for p := range 0x10 {
		if _, err := projections.NewEngine(fake{name: "low", prefix: byte(p)}); err == nil {
			t.Errorf("reserved prefix %#x accepted", p)
		}
	}
	if _, err := projections.NewEngine(fake{name: "ok", prefix: 0x10}, fake{name: "ok2", prefix: 0xfe}); err != nil {
		t.Errorf("valid prefixes refused: %v", err)
	}
	if _, err := projections.NewEngine(); err != nil {
		t.Errorf("empty engine refused: %v", err)
	}
	e := machine.NewEngine()
	names := map[string]bool{}
	for _, p := range e.Projections() {
		names[p.Name()] = true
	}
	if ps := e.Projections(); len(ps) < 2 || ps[0].Name() != "accounts" || ps[1].Name() != "rooms" || len(names) != len(ps) {
		t.Errorf("machine engine order %v", names)
	}
	if accounts.Prefix != 0x10 || rooms.Prefix != 0x20 {
		t.Errorf("projection prefixes moved: %#x %#x", accounts.Prefix, rooms.Prefix)
	}
}

// Prefix 0xff would have prefix+1 wrap to 0x00: Digest and Rebuild would
// use an upper bound below the lower bound, and WriteSnapshot (upper bound
// 0xff) would never copy the key space.
func TestPrefixFFIsRefused(t *testing.T) {
	if _, err := projections.NewEngine(fake{name: "last", prefix: 0xff}); err == nil {
		t.Fatal("NewEngine accepted prefix 0xff, whose key space has no one-byte upper bound")
	}
}

func digest(t *testing.T, r pebble.Reader, p projections.Projection) [32]byte {
	t.Helper()
	d, err := projections.Digest(r, p)
	if err != nil {
		t.Fatal(err)
	}
	return d
}

func TestDigestCoversEveryByte(t *testing.T) {
	db := openDB(t, t.TempDir())
	defer db.Close()
	p := fake{name: "p", prefix: 0x30}
	if got, want := digest(t, db, p), sha256.Sum256(nil); got != want {
		t.Fatalf("empty projection digest %x, want sha256 of nothing", got)
	}
	entries := []struct{ k, v string }{
		{"\x30a", "1"}, {"\x30abc\x00def", "value two"}, {"\x30\xff\xfe", ""}, {"\x30z\x00\x01", "\x00\x01\x02"},
	}
	for _, e := range entries {
		db.Set([]byte(e.k), []byte(e.v), pebble.Sync)
	}
	// Neighbours' key spaces do not count.
	base := digest(t, db, p)
	db.Set([]byte{0x2f, 0xff}, []byte("neighbour"), pebble.Sync)
	db.Set([]byte{0x31}, []byte("neighbour"), pebble.Sync)
	db.Set([]byte{0x03, 'p'}, []byte{0, 0, 0, 7}, pebble.Sync)
	if digest(t, db, p) != base {
		t.Fatal("keys outside the prefix changed the digest")
	}

	seen := map[[32]byte]string{base: "original"}
	check := func(what string) {
		t.Helper()
		d := digest(t, db, p)
		if prev, dup := seen[d]; dup {
			t.Errorf("%s: digest equals that of %s", what, prev)
		}
		seen[d] = what
	}
	for i, e := range entries {
		// Every byte of the key (past the prefix) and of the value.
		for j := 1; j < len(e.k); j++ {
			k := []byte(e.k)
			k[j] ^= 0x01
			db.Delete([]byte(e.k), pebble.Sync)
			db.Set(k, []byte(e.v), pebble.Sync)
			check(fmt.Sprintf("entry %d key byte %d flipped", i, j))
			db.Delete(k, pebble.Sync)
			db.Set([]byte(e.k), []byte(e.v), pebble.Sync)
		}
		for j := range len(e.v) {
			v := []byte(e.v)
			v[j] ^= 0x80
			db.Set([]byte(e.k), v, pebble.Sync)
			check(fmt.Sprintf("entry %d value byte %d flipped", i, j))
			db.Set([]byte(e.k), []byte(e.v), pebble.Sync)
		}
		db.Set([]byte(e.k), append([]byte(e.v), 0), pebble.Sync)
		check(fmt.Sprintf("entry %d value extended", i))
		db.Delete([]byte(e.k), pebble.Sync)
		check(fmt.Sprintf("entry %d deleted", i))
		db.Set([]byte(e.k), []byte(e.v), pebble.Sync)
		if digest(t, db, p) != base {
			t.Fatalf("restoring entry %d did not restore the digest", i)
		}
	}
	// Moving the boundary between key and value changes the digest.
	db.Delete([]byte("\x30a"), pebble.Sync)
	db.Set([]byte("\x30a1"), nil, pebble.Sync)
	check("key/value boundary moved")
	db.Delete([]byte("\x30a1"), pebble.Sync)
	db.Set([]byte("\x30a"), []byte("1"), pebble.Sync)
	// An added empty key changes it too.
	db.Set([]byte{0x30}, nil, pebble.Sync)
	check("bare prefix key added")
	// Digests by name, for every projection.
	e, _ := projections.NewEngine(p, fake{name: "q", prefix: 0x31})
	all, err := e.Digests(db)
	if err != nil || len(all) != 2 || all["p"] != digest(t, db, p) || all["q"] != digest(t, db, fake{name: "q", prefix: 0x31}) {
		t.Fatalf("Digests = %x (%v)", all, err)
	}
}

func TestEngineAppliesInOrderThroughTheBatch(t *testing.T) {
	db := openDB(t, t.TempDir())
	defer db.Close()
	var order []string
	first := fake{name: "first", prefix: 0x40, apply: func(w projections.Writer, rec *rlog.Record) error {
		order = append(order, "first")
		return w.Set([]byte{0x40, byte(rec.Seq)}, []byte(rec.Type), nil)
	}}
	second := fake{name: "second", prefix: 0x41, apply: func(w projections.Writer, rec *rlog.Record) error {
		order = append(order, "second")
		// A later projection reads the earlier one's write in the same batch.
		v, closer, err := w.Get([]byte{0x40, byte(rec.Seq)})
		if err != nil {
			return err
		}
		defer closer.Close()
		if rec.Type == "boom" {
			return fmt.Errorf("refused")
		}
		return w.Set([]byte{0x41, byte(rec.Seq)}, append([]byte("saw "), v...), nil)
	}}
	e, err := projections.NewEngine(first, second)
	if err != nil {
		t.Fatal(err)
	}
	b := db.NewIndexedBatch()
	if err := e.Apply(b, &rlog.Record{Seq: 1, Type: "x"}); err != nil {
		t.Fatal(err)
	}
	if err := b.Commit(pebble.Sync); err != nil {
		t.Fatal(err)
	}
	v, closer, err := db.Get([]byte{0x41, 1})
	if err != nil || string(v) != "saw x" {
		t.Fatalf("second projection stored %q (%v)", v, err)
	}
	closer.Close()
	if !reflect.DeepEqual(order, []string{"first", "second"}) {
		t.Fatalf("apply order %v", order)
	}
	err = e.Apply(db.NewIndexedBatch(), &rlog.Record{Seq: 2, Type: "boom"})
	if err == nil || !strings.Contains(err.Error(), "second") || !strings.Contains(err.Error(), "record 2") {
		t.Fatalf("error %v does not name the projection and record", err)
	}
	// WriteVersions then Stale.
	if stale, _ := e.Stale(db); len(stale) != 2 {
		t.Fatalf("stale before versions written: %v", stale)
	}
	if err := e.WriteVersions(db); err != nil {
		t.Fatal(err)
	}
	if stale, _ := e.Stale(db); len(stale) != 0 {
		t.Fatalf("stale after versions written: %v", stale)
	}
	v, closer, err = db.Get(versionKey("first"))
	if err != nil || binary.BigEndian.Uint32(v) != 7 {
		t.Fatalf("version of first: %x (%v)", v, err)
	}
	closer.Close()
	if !projections.HasPrefix([]byte{0x40, 9}, first) || projections.HasPrefix([]byte{0x41}, first) {
		t.Fatal("HasPrefix")
	}
}
