package machine

import (
	"bufio"
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
)

// The auth-rule tables in testdata/authrules are scenarios written from
// the spec's rule text, run through the whole state machine (PDU building,
// auth against current state, append) for every room version they name.
//
// Format, one step per line:
//
//	versions 3-12 | versions 7 8 9   room versions this file runs in
//	users alice bob                  register users
//	create alice private_chat        alice creates the room under test
//	[>=7] member bob knock bob => ok      actor, membership, target
//	send bob m.room.message {"body":"x"} => forbidden
//	state bob m.room.name "" {"name":"x"} => forbidden
//	power alice bob 50 => ok         alice sets bob's power level
//
// A leading [>=N], [<N] or [=N] limits a step to some versions. The part
// after => is ok or a rejection kind (forbidden, not_found, bad_json,
// invalid_param, too_large, bad_state).

var kindNames = map[string]Kind{
	"forbidden": KindForbidden, "not_found": KindNotFound, "bad_json": KindBadJSON,
	"invalid_param": KindInvalidParam, "too_large": KindTooLarge, "bad_state": KindBadState,
	"user_in_use": KindUserInUse, "unsupported_room_version": KindUnsupportedRoomVersion,
}

func TestAuthRuleTables(t *testing.T) {
	files, err := filepath.Glob("testdata/authrules/*.txt")
	if err != nil || len(files) == 0 {
		t.Fatalf("no auth rule tables: %v", err)
	}
	for _, file := range files {
		versions := tableVersions(t, file)
		for _, v := range versions {
			t.Run(fmt.Sprintf("%s/v%d", strings.TrimSuffix(filepath.Base(file), ".txt"), v), func(t *testing.T) {
				runAuthTable(t, file, v)
			})
		}
	}
}

func tableVersions(t *testing.T, file string) []int {
	b, err := os.ReadFile(file)
	if err != nil {
		t.Fatal(err)
	}
	for _, line := range strings.Split(string(b), "\n") {
		f := strings.Fields(line)
		if len(f) < 2 || f[0] != "versions" {
			continue
		}
		var out []int
		for _, p := range f[1:] {
			if lo, hi, ok := strings.Cut(p, "-"); ok {
				a, _ := strconv.Atoi(lo)
				z, _ := strconv.Atoi(hi)
				for v := a; v <= z; v++ {
					out = append(out, v)
				}
			} else if n, err := strconv.Atoi(p); err == nil {
				out = append(out, n)
			}
		}
		return out
	}
	t.Fatalf("%s: no versions line", file)
	return nil
}

// versionApplies evaluates a [>=N] / [<N] / [=N] prefix.
func versionApplies(cond string, v int) bool {
	for _, op := range []string{">=", "<=", ">", "<", "="} {
		if rest, ok := strings.CutPrefix(cond, op); ok {
			n, _ := strconv.Atoi(rest)
			switch op {
			case ">=":
				return v >= n
			case "<=":
				return v <= n
			case ">":
				return v > n
			case "<":
				return v < n
			case "=":
				return v == n
			}
		}
	}
	return false
}

func runAuthTable(t *testing.T, file string, version int) {
	f, err := os.Open(file)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	m := openMachine(t, t.TempDir())
	defer m.Close()
	w := newWorkload(t, m)
	var roomID string
	sc := bufio.NewScanner(f)
	for lineNo := 1; sc.Scan(); lineNo++ {
		line := strings.TrimSpace(sc.Text())
		if i := strings.Index(line, " #"); i >= 0 {
			line = strings.TrimSpace(line[:i])
		}
		if line == "" || strings.HasPrefix(line, "#") || strings.HasPrefix(line, "versions") {
			continue
		}
		if strings.HasPrefix(line, "[") {
			cond, rest, _ := strings.Cut(line[1:], "]")
			if !versionApplies(cond, version) {
				continue
			}
			line = strings.TrimSpace(rest)
		}
		step, expect, hasExpect := strings.Cut(line, "=>")
		step, expect = strings.TrimSpace(step), strings.TrimSpace(expect)
		where := fmt.Sprintf("%s:%d (v%d) %q", filepath.Base(file), lineNo, version, step)
		verb, args, _ := strings.Cut(step, " ")
		var res *Result
		switch verb {
		case "users":
			for _, u := range strings.Fields(args) {
				w.ok(CmdRegister, "", "", &Register{UserID: uid(u), DeviceID: "D" + u})
			}
			continue
		case "create":
			parts := strings.Fields(args)
			cr := &CreateRoom{RoomVersion: strconv.Itoa(version), Preset: parts[1]}
			if version < 12 {
				cr.RoomID = fmt.Sprintf("!auth%d:localhost", lineNo)
			}
			res = w.cmd(CmdCreateRoom, uid(parts[0]), "D"+parts[0], cr)
			roomID = res.RoomID
		case "member":
			p := strings.Fields(args)
			res = w.cmd(CmdMembership, uid(p[0]), "D"+p[0], &Membership{RoomID: roomID, Target: uid(p[2]), Membership: p[1]})
		case "send":
			actor, rest, _ := strings.Cut(args, " ")
			evType, content, _ := strings.Cut(rest, " ")
			res = w.cmd(CmdSendEvent, uid(actor), "D"+actor, &SendEvent{RoomID: roomID, Type: evType, Content: json.RawMessage(content), TxnID: fmt.Sprint("t", lineNo)})
		case "state":
			// state ACTOR TYPE KEY CONTENT; KEY "" is empty, @name expands.
			p := strings.SplitN(args, " ", 4)
			sk := strings.Trim(p[2], `"`)
			if strings.HasPrefix(sk, "@") && !strings.Contains(sk, ":") {
				sk = uid(sk[1:])
			}
			res = w.cmd(CmdSendEvent, uid(p[0]), "D"+p[0], &SendEvent{RoomID: roomID, Type: p[1], StateKey: &sk, Content: json.RawMessage(p[3])})
		case "power":
			// power ACTOR TARGET LEVEL: rewrite users[TARGET] in the current
			// power levels, keeping everything else.
			p := strings.Fields(args)
			res = w.cmd(CmdSendEvent, uid(p[0]), "D"+p[0], powerChange(t, m, roomID, uid(p[1]), p[2]))
		default:
			t.Fatalf("%s: unknown step %q", where, verb)
		}
		if !hasExpect {
			continue
		}
		switch {
		case expect == "ok" && res.Err != nil:
			t.Errorf("%s: rejected (%v), want ok", where, res.Err)
		case expect != "ok" && res.Err == nil:
			t.Errorf("%s: accepted, want %s", where, expect)
		case expect != "ok" && res.Err.Kind != kindNames[expect]:
			t.Errorf("%s: rejected as kind %d (%v), want %s", where, res.Err.Kind, res.Err, expect)
		}
	}
	if err := sc.Err(); err != nil {
		t.Fatal(err)
	}
}

// powerChange builds a power_levels event from the current one with one
// user's level changed.
func powerChange(t *testing.T, m *Machine, roomID, user, level string) *SendEvent {
	t.Helper()
	var content map[string]any
	if err := m.View(func(r pebbleReader) error {
		ev, err := stateEventForTest(r, roomID, "m.room.power_levels")
		if err != nil || ev == nil {
			return err
		}
		return json.Unmarshal(ev, &content)
	}); err != nil {
		t.Fatal(err)
	}
	if content == nil {
		content = map[string]any{}
	}
	users, _ := content["users"].(map[string]any)
	if users == nil {
		users = map[string]any{}
	}
	n, _ := strconv.Atoi(level)
	users[user] = n
	content["users"] = users
	raw, _ := json.Marshal(content)
	sk := ""
	return &SendEvent{RoomID: roomID, Type: "m.room.power_levels", StateKey: &sk, Content: raw}
}
