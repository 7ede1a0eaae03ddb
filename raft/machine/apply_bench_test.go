package machine

import (
	"fmt"
	"testing"
)

// BenchmarkApplySend measures deciding and applying one message send: PDU
// build, auth against current state, record append and projection fold,
// in rooms of 2 and 33 members (the load benchmark's send room).
func BenchmarkApplySend(b *testing.B) {
	for _, members := range []int{2, 33} {
		b.Run(fmt.Sprintf("members=%d", members), func(b *testing.B) { benchmarkApplySend(b, members) })
	}
}

func benchmarkApplySend(b *testing.B, members int) {
	m, err := Open(b.TempDir(), Config{ServerName: "localhost"})
	if err != nil {
		b.Fatal(err)
	}
	defer m.Close()
	idx := uint64(0)
	apply := func(typ, actor, device string, payload any) *Result {
		idx++
		cmd, err := NewCommand(typ, 1700000000000+int64(idx), actor, device, payload)
		if err != nil {
			b.Fatal(err)
		}
		res, err := m.Apply(idx, cmd)
		if err != nil {
			b.Fatal(err)
		}
		if res.Err != nil {
			b.Fatal(res.Err)
		}
		return res
	}
	apply(CmdRegister, "", "", &Register{UserID: "@alice:localhost", DeviceID: "A"})
	room := apply(CmdCreateRoom, "@alice:localhost", "A", &CreateRoom{Preset: "public_chat"}).RoomID
	for i := 1; i < members; i++ {
		u := fmt.Sprintf("@member%d:localhost", i)
		apply(CmdRegister, "", "", &Register{UserID: u, DeviceID: "M"})
		apply(CmdMembership, u, "M", &Membership{RoomID: room, Target: u, Membership: "join"})
	}
	content := []byte(`{"msgtype":"m.text","body":"hello world, this is a benchmark message"}`)
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		apply(CmdSendEvent, "@alice:localhost", "A", &SendEvent{RoomID: room, Type: "m.room.message", Content: content, TxnID: fmt.Sprint("t", i)})
	}
	b.ReportMetric(float64(b.N)/b.Elapsed().Seconds(), "sends/s")
}
