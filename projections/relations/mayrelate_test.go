package relations

import (
	"encoding/json"
	"testing"
)

// mayRelate never rules out content that json.Unmarshal would read an
// m.relates_to member from.
func TestMayRelateKeepsEveryMatch(t *testing.T) {
	for _, content := range []string{
		`{"m.relates_to":{"rel_type":"m.thread","event_id":"$a"}}`,
		`{".":1,"M.RELATES_TO":{"rel_type":"m.thread","event_id":"$a"}}`,
		`{"body":"a.b","m.Relates_To":{"rel_type":"m.thread","event_id":"$a"}}`,
		`{"m.relateſ_to":{"rel_type":"m.thread","event_id":"$a"}}`,
		`{"m\u002erelates_to":{"rel_type":"m.thread","event_id":"$a"}}`,
		`{"m.relates\u005fto":{"rel_type":"m.thread","event_id":"$a"}}`,
	} {
		var c struct {
			RelatesTo json.RawMessage `json:"m.relates_to"`
		}
		if err := json.Unmarshal([]byte(content), &c); err != nil || c.RelatesTo == nil {
			t.Fatalf("%s: json.Unmarshal finds no relation (%v)", content, err)
		}
		if !mayRelate([]byte(content)) {
			t.Errorf("%s: ruled out", content)
		}
		if rel, parent := RelatesTo(json.RawMessage(content)); rel != "m.thread" || parent != "$a" {
			t.Errorf("%s: RelatesTo = %q %q", content, rel, parent)
		}
	}
	for _, content := range []string{`{}`, `{"body":"m.relatesto ... m-relates_to"}`, `.`, `{"a":"x."}`, `{"body":"..m.relates_t"}`} {
		if mayRelate([]byte(content)) {
			t.Errorf("%s: may relate", content)
		}
	}
}
