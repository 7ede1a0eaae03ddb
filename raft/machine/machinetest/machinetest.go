// Package machinetest drives a real state machine in tests: real Pebble in
// a temporary directory, commands applied at consecutive Raft indexes with
// times a fixed step apart, so the same test always writes the same log.
// It is the one copy of the driver the projection packages' tests use.
package machinetest

import (
	"log/slog"
	"testing"

	"chronicle/raft/machine"
)

// BaseTime is the time of the command at index 0, in Unix milliseconds.
const BaseTime = 1_700_000_000_000

// Driver applies commands to one machine.
type Driver struct {
	T   testing.TB
	M   *machine.Machine
	Dir string // the state store's directory
	Idx uint64 // the index of the last command applied
	// Step is the time between consecutive commands, in milliseconds.
	Step int64
	// Cmds are the commands applied, in order (to feed a second machine).
	Cmds []*machine.Command
}

// New opens a machine for server name localhost in a temporary directory,
// closed when the test ends.
func New(t testing.TB) *Driver {
	t.Helper()
	dir := t.TempDir()
	m, err := machine.Open(dir, machine.Config{ServerName: "localhost", Logger: slog.New(slog.DiscardHandler)})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { m.Close() })
	return &Driver{T: t, M: m, Dir: dir, Step: 1}
}

// Register registers each user with device "D".
func (d *Driver) Register(users ...string) {
	d.T.Helper()
	for _, u := range users {
		d.Do(machine.CmdRegister, "", &machine.Register{UserID: u, DeviceID: "D"})
	}
}

// Try applies one command by actor's device "D" at the next index and
// returns its result, refused or not.
func (d *Driver) Try(typ, actor string, payload any) *machine.Result {
	d.T.Helper()
	d.Idx++
	c, err := machine.NewCommand(typ, BaseTime+int64(d.Idx)*d.Step, actor, "D", payload)
	if err != nil {
		d.T.Fatal(err)
	}
	res, err := d.M.Apply(d.Idx, c)
	if err != nil {
		d.T.Fatal(err)
	}
	d.Cmds = append(d.Cmds, c)
	return res
}

// Do is Try for a command that must be accepted.
func (d *Driver) Do(typ, actor string, payload any) *machine.Result {
	d.T.Helper()
	res := d.Try(typ, actor, payload)
	if res.Err != nil {
		d.T.Fatalf("index %d %s by %s: %v", d.Idx, typ, actor, res.Err)
	}
	return res
}
