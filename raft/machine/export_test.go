package machine

// WaitersForTest counts the WaitApplied callers still registered.
func (m *Machine) WaitersForTest() int {
	m.mu.Lock()
	defer m.mu.Unlock()
	return len(m.appliedWaiters)
}
