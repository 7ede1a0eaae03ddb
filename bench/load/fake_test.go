package main

// An in-memory, just-enough fake homeserver so the scenarios' control flow
// (UIA registration, 429 retry, long-poll re-polling, pagination tokens) is
// tested without a real server.

import (
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"net/http/httptest"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"chronicle/bench/internal/loadgen"
)

type fakeEvent struct {
	pos  int
	room string
	ev   map[string]any
}

type fakeHS struct {
	mu      sync.Mutex
	wake    chan struct{} // closed and replaced on every new event
	users   map[string]string
	born    map[string]time.Time       // token -> registration time
	bornOn  map[string]string          // token -> node it was registered on
	members map[string]map[string]bool // room -> user set
	events  []fakeEvent
	n429    int // sends answered with 429 (once per 10 sends)
}

func newFakeHS() *fakeHS {
	return &fakeHS{wake: make(chan struct{}), users: map[string]string{}, born: map[string]time.Time{}, bornOn: map[string]string{}, members: map[string]map[string]bool{}}
}

func writeJSONResp(w http.ResponseWriter, code int, v any) {
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(code)
	_ = json.NewEncoder(w).Encode(v)
}

func (f *fakeHS) user(r *http.Request) string {
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.users[strings.TrimPrefix(r.Header.Get("Authorization"), "Bearer ")]
}

// appendLocked adds an event and wakes parked syncs. Caller holds f.mu.
func (f *fakeHS) appendLocked(room, sender, typ string) string {
	id := fmt.Sprintf("$e%d", len(f.events)+1)
	f.events = append(f.events, fakeEvent{pos: len(f.events) + 1, room: room,
		ev: map[string]any{"event_id": id, "type": typ, "sender": sender}})
	close(f.wake)
	f.wake = make(chan struct{})
	return id
}

// handler serves the fake; node names the node registrations go through.
func (f *fakeHS) handler(node string) http.Handler {
	mux := http.NewServeMux()
	mux.HandleFunc("GET /_matrix/client/versions", func(w http.ResponseWriter, r *http.Request) {
		writeJSONResp(w, 200, map[string]any{"versions": []string{"v1.11"}})
	})
	mux.HandleFunc("POST /_matrix/client/v3/register", func(w http.ResponseWriter, r *http.Request) {
		var req struct {
			Username string         `json:"username"`
			Auth     map[string]any `json:"auth"`
		}
		_ = json.NewDecoder(r.Body).Decode(&req)
		if req.Auth == nil {
			writeJSONResp(w, 401, map[string]any{"session": "s1", "flows": []any{map[string]any{"stages": []string{"m.login.dummy"}}}})
			return
		}
		if req.Auth["type"] != "m.login.dummy" || req.Auth["session"] != "s1" {
			writeJSONResp(w, 400, map[string]any{"errcode": "M_BAD_JSON", "error": "bad auth"})
			return
		}
		uid := "@" + req.Username + ":fake"
		f.mu.Lock()
		tok := fmt.Sprintf("tok%d", len(f.users))
		f.users[tok] = uid
		f.born[tok] = time.Now()
		f.bornOn[tok] = node
		f.mu.Unlock()
		writeJSONResp(w, 200, map[string]any{"user_id": uid, "access_token": tok, "device_id": "D"})
	})
	mux.HandleFunc("POST /_matrix/client/v3/createRoom", func(w http.ResponseWriter, r *http.Request) {
		u := f.user(r)
		f.mu.Lock()
		room := fmt.Sprintf("!r%d:fake", len(f.members)+1)
		f.members[room] = map[string]bool{u: true}
		f.appendLocked(room, u, "m.room.create")
		f.appendLocked(room, u, "m.room.member")
		f.mu.Unlock()
		writeJSONResp(w, 200, map[string]any{"room_id": room})
	})
	mux.HandleFunc("POST /_matrix/client/v3/join/{room}", func(w http.ResponseWriter, r *http.Request) {
		u, room := f.user(r), r.PathValue("room")
		f.mu.Lock()
		f.members[room][u] = true
		f.appendLocked(room, u, "m.room.member")
		f.mu.Unlock()
		writeJSONResp(w, 200, map[string]any{"room_id": room})
	})
	mux.HandleFunc("PUT /_matrix/client/v3/rooms/{room}/send/{type}/{txn}", func(w http.ResponseWriter, r *http.Request) {
		u, room := f.user(r), r.PathValue("room")
		f.mu.Lock()
		if len(f.events)%10 == 0 && f.n429 < 3 {
			f.n429++
			f.mu.Unlock()
			writeJSONResp(w, 429, map[string]any{"errcode": "M_LIMIT_EXCEEDED", "retry_after_ms": 1})
			return
		}
		if !f.members[room][u] {
			f.mu.Unlock()
			writeJSONResp(w, 403, map[string]any{"errcode": "M_FORBIDDEN", "error": "not in room"})
			return
		}
		id := f.appendLocked(room, u, r.PathValue("type"))
		f.mu.Unlock()
		writeJSONResp(w, 200, map[string]any{"event_id": id})
	})
	mux.HandleFunc("GET /_matrix/client/v3/sync", f.sync)
	mux.HandleFunc("GET /_matrix/client/v3/account/whoami", func(w http.ResponseWriter, r *http.Request) {
		writeJSONResp(w, 200, map[string]any{"user_id": f.user(r)})
	})
	mux.HandleFunc("GET /_matrix/client/v3/rooms/{room}/messages", func(w http.ResponseWriter, r *http.Request) {
		room := r.PathValue("room")
		limit, _ := strconv.Atoi(r.URL.Query().Get("limit"))
		f.mu.Lock()
		from := len(f.events)
		if s := r.URL.Query().Get("from"); s != "" {
			from, _ = strconv.Atoi(s)
		}
		chunk := []map[string]any{}
		i := from - 1
		for ; i >= 0 && len(chunk) < limit; i-- {
			if f.events[i].room == room {
				chunk = append(chunk, f.events[i].ev)
			}
		}
		f.mu.Unlock()
		resp := map[string]any{"chunk": chunk, "start": strconv.Itoa(from)}
		if i >= 0 {
			resp["end"] = strconv.Itoa(i + 1)
		}
		writeJSONResp(w, 200, resp)
	})
	return mux
}

// lagging is node `node` of the same fake cluster. It learns of access
// tokens issued through other nodes only `lag` after they were issued, like
// a follower that has not applied the registration yet.
func (f *fakeHS) lagging(node string, lag time.Duration) http.Handler {
	h := f.handler(node)
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		tok := strings.TrimPrefix(r.Header.Get("Authorization"), "Bearer ")
		f.mu.Lock()
		born, ok := f.born[tok]
		local := f.bornOn[tok] == node
		f.mu.Unlock()
		if ok && !local && time.Since(born) < lag {
			writeJSONResp(w, 401, map[string]any{"errcode": "M_UNKNOWN_TOKEN", "error": "unknown token"})
			return
		}
		h.ServeHTTP(w, r)
	})
}

func (f *fakeHS) sync(w http.ResponseWriter, r *http.Request) {
	u := f.user(r)
	since, _ := strconv.Atoi(r.URL.Query().Get("since"))
	timeout, _ := strconv.Atoi(r.URL.Query().Get("timeout"))
	deadline := time.After(time.Duration(timeout) * time.Millisecond)
	for {
		f.mu.Lock()
		join := map[string]any{}
		for room, m := range f.members {
			if !m[u] {
				continue
			}
			evs := []map[string]any{}
			for _, e := range f.events[since:] {
				if e.room == room {
					evs = append(evs, e.ev)
				}
			}
			if since == 0 || len(evs) > 0 {
				join[room] = map[string]any{"timeline": map[string]any{"events": evs}}
			}
		}
		next, wake := len(f.events), f.wake
		f.mu.Unlock()
		if len(join) > 0 || since == 0 || timeout == 0 {
			writeJSONResp(w, 200, map[string]any{"next_batch": strconv.Itoa(next), "rooms": map[string]any{"join": join}})
			return
		}
		since = next // nothing relevant; wait for the next event
		select {
		case <-wake:
		case <-deadline:
			writeJSONResp(w, 200, map[string]any{"next_batch": strconv.Itoa(next)})
			return
		}
	}
}

func TestRunAgainstFake(t *testing.T) {
	f := newFakeHS()
	srv := httptest.NewServer(f.handler("n1"))
	defer srv.Close()
	cfg := Config{Base: srv.URL, Config: loadgen.Config{Users: 3, Sends: 40, Levels: []int{1, 4}, Rooms: 4, MsgsPerRoom: 3,
		Pages: 250, SyncIters: 5, InitialSyncs: 2, SetupWorkers: 4}, DataDir: t.TempDir()}
	res := run(context.Background(), cfg)
	if len(res.Errors) > 0 {
		t.Fatalf("errors: %v", res.Errors)
	}
	if res.Register.Latency.N != 3 {
		t.Errorf("registered %d", res.Register.Latency.N)
	}
	if len(res.Send) != 2 || res.Send[1].Sends != 40 || res.Send[1].Concurrency != 4 {
		t.Errorf("send = %+v", res.Send)
	}
	if res.SyncWake.Latency.N != 5 {
		t.Errorf("sync wake = %+v", res.SyncWake)
	}
	if res.InitialSync.JoinedRooms != 4 || res.InitialSync.Bytes == 0 {
		t.Errorf("initial sync = %+v", res.InitialSync)
	}
	if p := res.Paginate; p.Events < 250 || p.Messages != 250 || p.Pages < 3 {
		t.Errorf("paginate = %+v", p)
	}
	if res.Retries429 == 0 {
		t.Error("expected the fake's 429s to be retried")
	}
	table := buildTable(res)
	var sb strings.Builder
	for _, r := range table {
		if len(r) != len(header) {
			t.Errorf("row %v has %d columns", r, len(r))
		}
		sb.WriteString(strings.Join(r, " | ") + "\n")
	}
	t.Log("\n" + sb.String())
}

// TestRunAgainstFakeCluster points the benchmark at two "nodes" sharing one
// fake's state; the second learns of new tokens late, as a follower would.
func TestRunAgainstFakeCluster(t *testing.T) {
	f := newFakeHS()
	n1 := httptest.NewServer(f.handler("n1"))
	defer n1.Close()
	n2 := httptest.NewServer(f.lagging("n2", 30*time.Millisecond))
	defer n2.Close()
	cfg := Config{Base: n1.URL + "," + n2.URL + "/", Config: loadgen.Config{Users: 3, Sends: 40, Levels: []int{4}, Rooms: 2,
		MsgsPerRoom: 2, Pages: 120, SyncIters: 3, InitialSyncs: 1, SetupWorkers: 4}, Only: "register,send,sync"}
	res := run(context.Background(), cfg)
	if len(res.Errors) > 0 {
		t.Fatalf("errors: %v", res.Errors)
	}
	if len(res.Send) != 1 || res.Send[0].Sends != 40 || res.Send[0].Nodes != 2 {
		t.Errorf("send = %+v", res.Send)
	}
	s := res.SyncWake
	if s.Latency.N != 3 || !s.CrossNode || s.SenderBase != n1.URL || s.ReceiverBase != n2.URL {
		t.Errorf("sync wake = %+v", s)
	}
	table := buildTable(res)
	var found bool
	for _, r := range table {
		found = found || r[0] == "sync wake-up (cross-node)"
	}
	if !found {
		t.Errorf("no cross-node sync row in %v", table)
	}
}
