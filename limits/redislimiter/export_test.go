package redislimiter

import (
	"context"
	"time"
)

// EnableDebugMax makes the acquire script record the highest counts it ever
// granted in the "{Prefix}:debug" hash ("cap", "acct:<account>").
func EnableDebugMax(cfg *Config) { cfg.debugMax = true }

// Freeze stops the limiter's clock at now: the scripts use it instead of
// Redis TIME until Unfreeze, so that tests compute exact minutes.
func (l *Limiter) Freeze(now time.Time) { l.frozenMs.Store(now.UnixMilli()) }

// Advance moves the limiter's clock forward by d (whole milliseconds): the
// frozen time when frozen, else the offset added to Redis TIME.
func (l *Limiter) Advance(d time.Duration) {
	if l.frozenMs.Load() != 0 {
		l.frozenMs.Add(d.Milliseconds())
		return
	}
	l.offsetMs.Add(d.Milliseconds())
}

// SetNow sets the offset added to Redis TIME so that the limiter's clock
// reads now at this moment, and runs on from there.
func (l *Limiter) SetNow(ctx context.Context, now time.Time) error {
	t, err := l.client.Time(ctx).Result()
	if err != nil {
		return err
	}
	l.offsetMs.Store(now.UnixMilli() - t.UnixMilli())
	return nil
}

// Names returns the keys and the service-wide member of a session.
func (l *Limiter) Names(account, sessionID string) (slots, run, used, member string) {
	n := l.names(account, sessionID)
	return n.slots, n.run, n.used, n.member
}

// OnQueued calls fn, with l's lock held, each time a call joins the queue
// because every flusher is out; fn learns how many calls wait.
func (l *Limiter) OnQueued(fn func(n int)) {
	l.mu.Lock()
	l.hooks.queued = fn
	l.mu.Unlock()
}

// OnSend calls fn before each batch is sent, with its number of calls, on
// the flusher's goroutine: fn may block to hold the batch.
func (l *Limiter) OnSend(fn func(n int)) {
	l.mu.Lock()
	l.hooks.send = fn
	l.mu.Unlock()
}
