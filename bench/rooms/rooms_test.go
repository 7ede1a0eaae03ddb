package main

import (
	"testing"

	"chronicle/api/apitest"
)

// TestScenariosAgainstChronicle runs every scenario, with tiny numbers,
// against a real in-process server.
func TestScenariosAgainstChronicle(t *testing.T) {
	srv := apitest.Start(t, "")
	cfg := Config{Base: srv.URL, Rooms: 5, Joins: 6, Events: 250, Senders: 4, Members: 12, Concurrency: 3, Workers: 4, Reps: 2}
	res := run(t.Context(), cfg)
	if len(res.Errors) > 0 {
		t.Fatalf("errors: %v", res.Errors)
	}
	if res.Register == nil || res.Register.N != 13 {
		t.Errorf("register = %+v, want 13 users", res.Register)
	}
	if res.Create == nil || res.Create.N != 5 || res.Join == nil || res.Join.N != 6 {
		t.Errorf("create %+v, join %+v", res.Create, res.Join)
	}
	if m := res.Messages; m == nil || m.Fill.N != 250 || m.EventsSeen < 250 || m.Pages < 3 || m.Newest.N == 0 || m.Oldest.N == 0 {
		t.Errorf("messages = %+v", m)
	}
	if m := res.Members; m == nil || len(m.Endpoints) < 2 {
		t.Fatalf("members = %+v", m)
	}
	for _, e := range res.Members.Endpoints {
		if !e.Missing && (e.Entries < 13 || e.Latency.N != 2) {
			t.Errorf("%s: %+v", e.Name, e)
		}
	}
	if rows := buildTable(res); len(rows) < 10 {
		t.Errorf("table has %d rows", len(rows))
	}
}
