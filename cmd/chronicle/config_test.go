package main

import (
	"testing"
	"time"
)

func TestTURNSettings(t *testing.T) {
	cfg, err := loadConfig("")
	if err != nil {
		t.Fatal(err)
	}
	turn, err := cfg.TURN.apiConfig()
	if err != nil || len(turn.URIs) != 0 || turn.SharedSecret != "" || turn.UserLifetime != time.Hour {
		t.Errorf("default TURN settings %+v (%v): want none, credentials for an hour", turn, err)
	}
	for _, bad := range []TURN{
		{URIs: []string{"stun:stun.example.org"}, SharedSecret: "s"},
		{URIs: []string{"turn:turn.example.org"}, SharedSecret: "s", UserLifetime: "a while"},
		{UserLifetime: "-1h"},
	} {
		if _, err := bad.apiConfig(); err == nil {
			t.Errorf("TURN settings %+v accepted", bad)
		}
	}
}
