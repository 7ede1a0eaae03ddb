package pushrules

import (
	"testing"

	mpr "maunium.net/go/mautrix/pushrules"
)

type countRoom struct{ n int }

func (r countRoom) GetOwnDisplayname() string { return "" }
func (r countRoom) GetMemberCount() int       { return r.n }

// The parsed room_member_count agrees with mautrix's evaluation.
func TestMemberCountMatchesMautrix(t *testing.T) {
	for _, is := range []string{"2", "==2", ">2", ">=2", "<2", "<=2", "", "=2", "2x", "-1", " 2", ">=10", "<<2", "99999999999999999999"} {
		c := parseMemberCount(is)
		cond := &mpr.PushCondition{Kind: mpr.KindRoomMemberCount, MemberCountCondition: is}
		for n := range 12 {
			if got, want := c.matches(n), cond.Match(countRoom{n}, nil); got != want {
				t.Errorf("is %q, %d members: %v, mautrix %v", is, n, got, want)
			}
		}
	}
}
