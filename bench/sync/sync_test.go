package main

import (
	"testing"

	"chronicle/api/apitest"
)

// TestScenariosAgainstChronicle runs every scenario, with tiny numbers,
// against a real in-process server.
func TestScenariosAgainstChronicle(t *testing.T) {
	srv := apitest.Start(t, "")
	cfg := Config{Base: srv.URL, LargeRooms: 12, SmallRooms: 3, Msgs: 2, Iters: 5, InitialSyncs: 2, Limits: []int{10, 20},
		Idle: 20, IdlePerRoom: 5, WakeIters: 5, Workers: 4}
	res := run(t.Context(), cfg)
	if len(res.Errors) > 0 {
		t.Fatalf("errors: %v", res.Errors)
	}
	if len(res.Incremental) != 2 || res.Incremental[1].Rooms != 12 || res.Incremental[1].Latency.N != 5 || res.Incremental[1].RoomCounts != "1×5" {
		t.Errorf("incremental = %+v", res.Incremental)
	}
	if len(res.Initial) != 4 || res.Initial[3].JoinedRooms != 12 || res.Initial[3].Limit != 20 {
		t.Errorf("initial = %+v", res.Initial)
	}
	if w := res.Wake; w == nil || w.IdleParked != 20 || w.Latency.N != 5 || w.Baseline == nil || w.IdleRoomWakes != 0 {
		t.Errorf("wake = %+v", w)
	} else if w.ServerWaiters < 20 {
		t.Errorf("server reports %d parked syncs, want at least the 20 idle ones", w.ServerWaiters)
	}
	if rows := buildTable(res); len(rows) < 10 {
		t.Errorf("table has %d rows", len(rows))
	}
}
