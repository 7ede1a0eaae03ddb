package machine

import (
	"bytes"
	"encoding/json"
	"sort"

	"chronicle/projections/accountdata"
	"chronicle/projections/accounts"
	"chronicle/projections/facts"
	"chronicle/projections/presence"
	"chronicle/projections/rooms"
	"chronicle/projections/todevice"
	"chronicle/projections/typing"
)

// Commands for the per-user and ephemeral data /sync carries.
const (
	CmdAccountData  = "account_data"
	CmdTag          = "tag"
	CmdReceipt      = "receipt"
	CmdReadMarkers  = "read_markers"
	CmdTyping       = "typing"
	CmdTypingExpire = "typing_expire"
	CmdPresence     = "presence"
	CmdSendToDevice = "send_to_device"
	CmdToDeviceAck  = "to_device_ack"
)

// AccountData sets one account data entry (RoomID "" for global).
type AccountData struct {
	RoomID  string          `msgpack:"r"`
	Type    string          `msgpack:"t"`
	Content json.RawMessage `msgpack:"c"`
}

// Tag adds (with Content, e.g. {"order":0.5}) or removes a room tag.
type Tag struct {
	RoomID  string          `msgpack:"r"`
	Tag     string          `msgpack:"t"`
	Content json.RawMessage `msgpack:"c"`
	Delete  bool            `msgpack:"d"`
}

// Receipt moves the actor's receipt in a room.
type Receipt struct {
	RoomID   string `msgpack:"r"`
	Type     string `msgpack:"t"`
	EventID  string `msgpack:"e"`
	ThreadID string `msgpack:"th"`
}

// ReadMarkers sets the fully-read marker and receipts together.
type ReadMarkers struct {
	RoomID      string `msgpack:"r"`
	FullyRead   string `msgpack:"f"`
	Read        string `msgpack:"rd"`
	ReadPrivate string `msgpack:"rp"`
}

// Typing starts (Timeout ms) or stops typing.
type Typing struct {
	RoomID  string `msgpack:"r"`
	Typing  bool   `msgpack:"y"`
	Timeout int64  `msgpack:"t"`
}

// TypingExpire stops every typing notification whose timeout passed by the
// command's time; the leader submits it when one is due.
type TypingExpire struct{}

// Presence sets the actor's presence.
type Presence struct {
	Presence  string `msgpack:"p"`
	StatusMsg string `msgpack:"m"`
}

// SendToDevice queues messages: user -> device ("*" for all) -> content.
type SendToDevice struct {
	Type     string                                `msgpack:"t"`
	TxnID    string                                `msgpack:"x"`
	Messages map[string]map[string]json.RawMessage `msgpack:"m"`
}

// ToDeviceAck drops the actor's device's messages up to a position.
type ToDeviceAck struct {
	UpTo uint64 `msgpack:"p"`
}

// decideUserData handles the commands above; ok is false for other types.
func (x *applyCtx) decideUserData() (res *Result, ok bool, err error) {
	switch x.cmd.Type {
	case CmdAccountData:
		res, err = x.accountData()
	case CmdTag:
		res, err = x.tag()
	case CmdReceipt:
		res, err = x.receipt()
	case CmdReadMarkers:
		res, err = x.readMarkers()
	case CmdTyping:
		res, err = x.typing()
	case CmdTypingExpire:
		res, err = x.typingExpire()
	case CmdPresence:
		res, err = x.presence()
	case CmdSendToDevice:
		res, err = x.sendToDevice()
	case CmdToDeviceAck:
		res, err = x.toDeviceAck()
	default:
		return nil, false, nil
	}
	return res, true, err
}

func (x *applyCtx) accountData() (*Result, error) {
	var p AccountData
	if rej := x.payload(&p); rej != nil {
		return &Result{Err: rej}, nil
	}
	if !isJSONObject(p.Content) {
		return &Result{Err: reject(KindBadJSON, "account data content must be a JSON object")}, nil
	}
	return &Result{}, x.emit(facts.TypeAccountDataSet, &facts.AccountDataSet{UserID: x.cmd.Actor, RoomID: p.RoomID, Type: p.Type, Content: p.Content})
}

func (x *applyCtx) tag() (*Result, error) {
	var p Tag
	if rej := x.payload(&p); rej != nil {
		return &Result{Err: rej}, nil
	}
	cur, err := accountdata.Get(x.b, x.cmd.Actor, p.RoomID, "m.tag")
	if err != nil {
		return nil, err
	}
	var content struct {
		Tags map[string]json.RawMessage `json:"tags"`
	}
	if len(cur) > 0 {
		_ = json.Unmarshal(cur, &content)
	}
	if content.Tags == nil {
		content.Tags = map[string]json.RawMessage{}
	}
	if p.Delete {
		delete(content.Tags, p.Tag)
	} else {
		if !isJSONObject(p.Content) {
			return &Result{Err: reject(KindBadJSON, "tag content must be a JSON object")}, nil
		}
		content.Tags[p.Tag] = p.Content
	}
	raw, err := json.Marshal(content) // map keys sort: deterministic
	if err != nil {
		return nil, err
	}
	return &Result{}, x.emit(facts.TypeAccountDataSet, &facts.AccountDataSet{UserID: x.cmd.Actor, RoomID: p.RoomID, Type: "m.tag", Content: raw})
}

// joinedTo refuses users not joined to the room.
func (x *applyCtx) joinedTo(roomID string) (*Rejection, error) {
	m, err := rooms.GetMembership(x.b, x.cmd.Actor, roomID)
	if err != nil {
		return nil, err
	}
	if m == nil || m.Membership != "join" {
		return reject(KindForbidden, "you are not in room %s", roomID), nil
	}
	return nil, nil
}

// eventIn refuses event IDs that are not events of the room.
func (x *applyCtx) eventIn(roomID, eventID string) (*Rejection, error) {
	ref, err := rooms.LocateEvent(x.b, eventID)
	if err != nil {
		return nil, err
	}
	if ref == nil || ref.RoomID != roomID {
		return reject(KindNotFound, "unknown event %s", eventID), nil
	}
	return nil, nil
}

func (x *applyCtx) receipt() (*Result, error) {
	var p Receipt
	if rej := x.payload(&p); rej != nil {
		return &Result{Err: rej}, nil
	}
	if rej, err := x.joinedTo(p.RoomID); rej != nil || err != nil {
		return &Result{Err: rej}, err
	}
	if rej, err := x.eventIn(p.RoomID, p.EventID); rej != nil || err != nil {
		return &Result{Err: rej}, err
	}
	return &Result{}, x.emit(facts.TypeReceiptSet, &facts.ReceiptSet{RoomID: p.RoomID, UserID: x.cmd.Actor, Type: p.Type, EventID: p.EventID, ThreadID: p.ThreadID})
}

func (x *applyCtx) readMarkers() (*Result, error) {
	var p ReadMarkers
	if rej := x.payload(&p); rej != nil {
		return &Result{Err: rej}, nil
	}
	if rej, err := x.joinedTo(p.RoomID); rej != nil || err != nil {
		return &Result{Err: rej}, err
	}
	for _, id := range []string{p.FullyRead, p.Read, p.ReadPrivate} {
		if id == "" {
			continue
		}
		if rej, err := x.eventIn(p.RoomID, id); rej != nil || err != nil {
			return &Result{Err: rej}, err
		}
	}
	if p.FullyRead != "" {
		raw, _ := json.Marshal(map[string]string{"event_id": p.FullyRead})
		if err := x.emit(facts.TypeAccountDataSet, &facts.AccountDataSet{UserID: x.cmd.Actor, RoomID: p.RoomID, Type: "m.fully_read", Content: raw}); err != nil {
			return nil, err
		}
	}
	for _, rc := range []struct{ typ, id string }{{"m.read", p.Read}, {"m.read.private", p.ReadPrivate}} {
		if rc.id == "" {
			continue
		}
		if err := x.emit(facts.TypeReceiptSet, &facts.ReceiptSet{RoomID: p.RoomID, UserID: x.cmd.Actor, Type: rc.typ, EventID: rc.id}); err != nil {
			return nil, err
		}
	}
	return &Result{}, nil
}

// maxTypingTimeout caps a client's typing timeout.
const maxTypingTimeout = 120_000

func (x *applyCtx) typing() (*Result, error) {
	var p Typing
	if rej := x.payload(&p); rej != nil {
		return &Result{Err: rej}, nil
	}
	if rej, err := x.joinedTo(p.RoomID); rej != nil || err != nil {
		return &Result{Err: rej}, err
	}
	f := &facts.TypingSet{RoomID: p.RoomID, UserID: x.cmd.Actor, Typing: p.Typing}
	if p.Typing {
		f.Expires = x.cmd.Time + min(max(p.Timeout, 0), maxTypingTimeout)
	}
	return &Result{}, x.emit(facts.TypeTypingSet, f)
}

func (x *applyCtx) typingExpire() (*Result, error) {
	due, _, err := typing.ExpiredBy(x.b, x.cmd.Time)
	if err != nil {
		return nil, err
	}
	for _, e := range due {
		if err := x.emit(facts.TypeTypingSet, &facts.TypingSet{RoomID: e.RoomID, UserID: e.UserID}); err != nil {
			return nil, err
		}
	}
	return &Result{}, nil
}

func (x *applyCtx) presence() (*Result, error) {
	var p Presence
	if rej := x.payload(&p); rej != nil {
		return &Result{Err: rej}, nil
	}
	switch p.Presence {
	case "online", "unavailable", "offline":
	default:
		return &Result{Err: reject(KindInvalidParam, "unknown presence %q", p.Presence)}, nil
	}
	cur, err := presence.Get(x.b, x.cmd.Actor)
	if err != nil {
		return nil, err
	}
	// Only changes are written (activity alone, on every sync, would
	// otherwise fill the log); last_active moves with each change.
	if cur != nil && cur.Presence == p.Presence && cur.StatusMsg == p.StatusMsg {
		return &Result{}, nil
	}
	return &Result{}, x.emit(facts.TypePresenceSet, &facts.PresenceSet{UserID: x.cmd.Actor, Presence: p.Presence, StatusMsg: p.StatusMsg, LastActive: x.cmd.Time})
}

func (x *applyCtx) sendToDevice() (*Result, error) {
	var p SendToDevice
	if rej := x.payload(&p); rej != nil {
		return &Result{Err: rej}, nil
	}
	seen, err := todevice.TxnSeen(x.b, x.cmd.Actor, x.cmd.Device, p.TxnID)
	if err != nil {
		return nil, err
	}
	if seen {
		return &Result{}, nil // a retry: already queued once
	}
	first := true
	users := make([]string, 0, len(p.Messages))
	for u := range p.Messages {
		users = append(users, u)
	}
	sort.Strings(users) // map order must not reach the log
	for _, user := range users {
		byDevice := p.Messages[user]
		devices := make([]string, 0, len(byDevice))
		for d := range byDevice {
			devices = append(devices, d)
		}
		sort.Strings(devices)
		for _, d := range devices {
			content := byDevice[d]
			targets := []string{d}
			if d == "*" {
				if targets, err = accounts.DeviceIDs(x.b, user); err != nil {
					return nil, err
				}
			} else if dev, err := accounts.GetDevice(x.b, user, d); err != nil {
				return nil, err
			} else if dev == nil {
				continue // unknown devices are skipped, as the spec allows
			}
			for _, target := range targets {
				if err := x.emit(facts.TypeToDeviceSent, &facts.ToDeviceSent{
					Sender: x.cmd.Actor, SenderDevice: x.cmd.Device, TxnID: p.TxnID, UserID: user, DeviceID: target,
					Type: p.Type, Content: bytes.Clone(content), FirstOfRequest: first,
				}); err != nil {
					return nil, err
				}
				first = false
			}
		}
	}
	if first {
		// Nothing to deliver: still remember the txn so a retry is a no-op.
		return &Result{}, x.emit(facts.TypeToDeviceSent, &facts.ToDeviceSent{Sender: x.cmd.Actor, SenderDevice: x.cmd.Device, TxnID: p.TxnID, FirstOfRequest: true})
	}
	return &Result{}, nil
}

func (x *applyCtx) toDeviceAck() (*Result, error) {
	var p ToDeviceAck
	if rej := x.payload(&p); rej != nil {
		return &Result{Err: rej}, nil
	}
	has, err := todevice.HasUpTo(x.b, x.cmd.Actor, x.cmd.Device, p.UpTo)
	if err != nil || !has {
		return &Result{}, err
	}
	return &Result{}, x.emit(facts.TypeToDeviceDropped, &facts.ToDeviceDropped{UserID: x.cmd.Actor, DeviceID: x.cmd.Device, UpTo: p.UpTo})
}
