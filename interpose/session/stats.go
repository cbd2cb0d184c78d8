package session

// Supervised counts the process trees that joined the session and are (or
// were) supervised: one per Run, one per program that connected to a
// bootstrap socket and handed over its listener. Children that inherit a
// filter do not count. Zero after Close.
func (s *Session) Supervised() int {
	s.mu.Lock()
	defer s.mu.Unlock()
	return len(s.keepers)
}
