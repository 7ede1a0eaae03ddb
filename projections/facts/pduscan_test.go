package facts

import (
	jsonv2 "encoding/json/v2"
	"reflect"
	"testing"
)

var pduSeeds = []string{
	`{"auth_events":["$GMQdz4gH3Mc3Tr_-0KUI0oiD7YSLpzpl5rAhGmIDXYU","$nZWkrgT2r2WKQ0EEc2Tttw2SX2XFSA2-q3r086UqQ1Q"],"content":{"msgtype":"m.text","body":"message 49883 from @user15:bench.example: the quick brown fox"},"depth":6246,"hashes":{"sha256":"1GPeeWPtaxCQSgrQgC1aum8UZvVA+kqzgafjf7G8UBM"},"origin_server_ts":1735689949524,"prev_events":["$nFrC2xJckBcMbNquoTYndaUKiX7k5ktXrgNoJFxScv0"],"room_id":"!-XEX88sk4d2A8WcwCKxrEV-ya6xRe_0bRtU7noWZU80","sender":"@user15:bench.example","type":"m.room.message"}`,
	`{"content":{"membership":"join","displayname":"A \"quoted\" \\ name \u00e9"},"depth":3,"origin_server_ts":-5,"sender":"@a:b","state_key":"@a:b","type":"m.room.member","unsigned":{"x":[1,[2,{"y":"}"}]]}}`,
	`{"content":{},"depth":0,"origin_server_ts":0,"redacts":"$x","sender":"@a:b","state_key":null,"type":"m.room.redaction"}`,
	` { "type" : "m.room.name" , "state_key" : "" , "content" : { "name" : "x" } , "depth" : 12 } `,
	`{}`,
	`{"type":"a\u0062"}`,
	`{"type":"x","type":"y"}`,
	`{"depth":1.5}`,
	`{"depth":1e3}`,
	`{"depth":01}`,
	`{"depth":99999999999999999999}`,
	`{"content":null}`,
	`{"content":[1]}`,
	`{"state_key":5}`,
	`{"sender":"@a:b"} x`,
	`{"a":true,"b":false,"c":null,"d":-1.5e-3,"type":"t"}`,
	`{"a":"\\","type":"t"}`,
	"{\"type\":\"\xff\"}",
	`{"type":"t",}`,
	`[]`,
	`{"type":"t"`,
	`{"content":{"a":"b}"}}`,
}

// checkScan compares scanPDU with encoding/json/v2 on one input: where
// both accept it, they must read the same fields. (scanPDU does not
// validate what it skips: it is only given PDUs the machine wrote.)
func checkScan(t *testing.T, in []byte) {
	var fast PDUFields
	if !scanPDU(in, &fast) {
		return
	}
	var want PDUFields
	if err := jsonv2.Unmarshal(in, &want, pduOptions); err != nil {
		return
	}
	if !reflect.DeepEqual(fast, want) {
		t.Fatalf("%q:\nscanPDU %+v\njson    %+v", in, fast, want)
	}
}

func TestScanPDUMatchesJSON(t *testing.T) {
	accepted := 0
	for _, s := range pduSeeds {
		checkScan(t, []byte(s))
		var p PDUFields
		if scanPDU([]byte(s), &p) {
			accepted++
		}
	}
	// The machine's own shapes must take the fast path.
	for _, s := range pduSeeds[:5] {
		var p PDUFields
		if !scanPDU([]byte(s), &p) {
			t.Errorf("fast path refused %s", s)
		}
	}
	if accepted == len(pduSeeds) {
		t.Error("every seed accepted: the fallback is never tested")
	}
}

func FuzzScanPDU(f *testing.F) {
	for _, s := range pduSeeds {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, in []byte) { checkScan(t, in) })
}
