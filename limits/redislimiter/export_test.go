package redislimiter

// Names returns the keys and the service-wide member of a session.
func (l *Limiter) Names(account, sessionID string) (slots, run, used, member string) {
	n := l.names(account, sessionID)
	return n.slots, n.run, n.used, n.member
}

// Queued returns how many calls wait in the queue for a flusher.
func (l *Limiter) Queued() int {
	l.mu.Lock()
	defer l.mu.Unlock()
	return len(l.queue)
}
