package facts

import "sync"

// Bodies maps every record type to a constructor of its body, so that
// tools that read the log without folding it (chronicle log export, the
// audit endpoints) can decode any record. Register a new record type here
// when you add it; a type missing from the map is exported as its raw
// bytes (base64), never guessed at.
var bodies = map[string]func() any{
	TypeAccountRegistered: func() any { return new(AccountRegistered) },
	TypeSessionStarted:    func() any { return new(SessionStarted) },
	TypeSessionEnded:      func() any { return new(SessionEnded) },
	TypeRoomEvent:         func() any { return new(RoomEvent) },
	TypeFilterCreated:     func() any { return new(FilterCreated) },
	TypeNodeAnnounced:     func() any { return new(NodeAnnounced) },
	TypeNodeRemoved:       func() any { return new(NodeRemoved) },
	TypeAliasCreated:      func() any { return new(AliasCreated) },
	TypeAliasDeleted:      func() any { return new(AliasDeleted) },
	TypeRoomVisibilitySet: func() any { return new(RoomVisibilitySet) },
	TypeRoomForgotten:     func() any { return new(RoomForgotten) },
	TypeReportFiled:       func() any { return new(ReportFiled) },
	TypeAccountDataSet:    func() any { return new(AccountDataSet) },
	TypeReceiptSet:        func() any { return new(ReceiptSet) },
	TypeTypingSet:         func() any { return new(TypingSet) },
	TypePresenceSet:       func() any { return new(PresenceSet) },
	TypeToDeviceSent:      func() any { return new(ToDeviceSent) },
	TypeToDeviceDropped:   func() any { return new(ToDeviceDropped) },
	TypePushRuleSet:       func() any { return new(PushRuleSet) },
	TypePushRuleDeleted:   func() any { return new(PushRuleDeleted) },
	TypePushRuleEnabled:   func() any { return new(PushRuleEnabled) },
	TypePushRuleActions:   func() any { return new(PushRuleActions) },
	TypeCheckpoint:        func() any { return new(Checkpoint) },
	// End-to-end encryption keys (keys.go).
	TypeDeviceKeysSet:      func() any { return new(DeviceKeysSet) },
	TypeDeviceKeysDeleted:  func() any { return new(DeviceKeysDeleted) },
	TypeOneTimeKeysAdded:   func() any { return new(OneTimeKeysAdded) },
	TypeOneTimeKeyClaimed:  func() any { return new(OneTimeKeyClaimed) },
	TypeFallbackKeysSet:    func() any { return new(FallbackKeysSet) },
	TypeFallbackKeyUsed:    func() any { return new(FallbackKeyUsed) },
	TypeCrossSigningKeySet: func() any { return new(CrossSigningKeySet) },
	TypeSignatureAdded:     func() any { return new(SignatureAdded) },
	// Room key backups (keybackup.go).
	TypeKeyBackupCreated: func() any { return new(KeyBackupCreated) },
	TypeKeyBackupUpdated: func() any { return new(KeyBackupUpdated) },
	TypeKeyBackupDeleted: func() any { return new(KeyBackupDeleted) },
	TypeRoomKeysBackedUp: func() any { return new(RoomKeysBackedUp) },
	TypeRoomKeysDeleted:  func() any { return new(RoomKeysDeleted) },
	// User profiles (profile.go).
	TypeProfileFieldSet:     func() any { return new(ProfileFieldSet) },
	TypeProfileFieldDeleted: func() any { return new(ProfileFieldDeleted) },
}

var bodiesMu sync.RWMutex

// RegisterBody adds a record type's body constructor (for types defined
// outside this package).
func RegisterBody(typ string, newBody func() any) {
	bodiesMu.Lock()
	defer bodiesMu.Unlock()
	bodies[typ] = newBody
}

// NewBody returns a new, empty body for a record type, or nil when the
// type is unknown.
func NewBody(typ string) any {
	bodiesMu.RLock()
	defer bodiesMu.RUnlock()
	if f := bodies[typ]; f != nil {
		return f()
	}
	return nil
}
