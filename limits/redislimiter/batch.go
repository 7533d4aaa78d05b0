package redislimiter

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"time"
)

// A call is one decision waiting for, or riding in, a batch: the script's
// kind, the account's keys and the call's own arguments (see batchScript),
// and, once the batch has run, its answer.
type call struct {
	kind     string
	nm       names
	args     []any
	deadline time.Time // zero: none
	done     chan struct{}

	// Set by the flusher before done is closed.
	r1, r2 int64
	err    error
}

// callArgs is the most arguments a kind of call takes (acquire's).
const callArgs = 5

// do sends c in the next batch and waits for its answer or for ctx.
//
// Batching. At most Config.Flushers batches are in flight at once, each sent
// by a goroutine of the Limiter's own. A call made while one is free leaves
// at once, with whatever else is waiting; a call made while all are busy
// waits in the queue and leaves with the others that wait, in one script
// (at most Config.BatchSize calls), as soon as a flusher comes back. So a
// lone call costs one round trip as before, and calls from many goroutines
// share round trips instead of queueing for connections: the throughput
// grows with the load while the latency stays about one round trip.
//
// A call whose ctx ends while it waits in the queue is taken out and never
// sent: it changes nothing in Redis. One whose ctx ends while its batch is in
// flight returns at once with ctx's error; its batch goes on for the others
// (bounded by the latest deadline among them) and may still apply it, as a
// lone script whose caller gave up might (see the package doc, Idempotence).
func (l *Limiter) do(ctx context.Context, c *call) error {
	c.deadline, _ = ctx.Deadline()
	c.done = make(chan struct{})
	l.mu.Lock()
	if l.closed.Load() {
		l.mu.Unlock()
		return errClosed
	}
	l.queue = append(l.queue, c)
	if l.flushing < l.flushers {
		l.flushing++
		b := l.take()
		l.inflight.Add(1)
		go l.flush(b)
	}
	l.mu.Unlock()

	select {
	case <-c.done:
		return c.err
	case <-ctx.Done():
	}
	l.mu.Lock()
	if i := slices.Index(l.queue, c); i >= 0 {
		l.queue = slices.Delete(l.queue, i, i+1)
	}
	l.mu.Unlock()
	select {
	case <-c.done: // answered as ctx ended
		return c.err
	default:
		return ctx.Err()
	}
}

// take removes the next batch from the queue. l.mu is held.
func (l *Limiter) take() []*call {
	n := min(len(l.queue), l.batchSize)
	b := slices.Clone(l.queue[:n])
	rest := copy(l.queue, l.queue[n:])
	clear(l.queue[rest:]) // no stale references behind the calls left
	l.queue = l.queue[:rest]
	return b
}

// flush sends batch b, answers its calls and goes on with the queue until
// it is empty; it runs on a goroutine of its own, counted in l.inflight.
func (l *Limiter) flush(b []*call) {
	defer l.inflight.Done()
	for {
		l.send(b)
		l.mu.Lock()
		if len(l.queue) == 0 {
			l.flushing--
			l.mu.Unlock()
			return
		}
		b = l.take()
		l.mu.Unlock()
	}
}

// send runs one batch in one script and answers every call of it. The
// script's context carries the latest deadline of the calls, and none of
// their values: a go-redis hook that reads a caller's context (tracing)
// sees the batch's.
func (l *Limiter) send(b []*call) {
	ctx := context.Background()
	if latest, ok := latestDeadline(b); ok {
		var cancel context.CancelFunc
		ctx, cancel = context.WithDeadline(ctx, latest)
		defer cancel()
	}
	keys := make([]string, 0, 2+3*len(b))
	keys = append(keys, l.capKey, l.epoch)
	args := make([]any, 0, 4+(1+callArgs)*len(b))
	script := batchScript
	if l.cfg.Clock != nil {
		script = batchScriptAt
		args = append(args, l.cfg.Clock().UnixMilli())
	}
	args = append(args, l.ttlArg, l.capacityArg, l.batchArg)
	for _, c := range b {
		keys = append(keys, c.nm.slots, c.nm.run, c.nm.used)
		args = append(args, c.kind)
		args = append(args, c.args...)
	}
	res, err := script.Run(ctx, l.client, keys, args...).Slice()
	if err == nil && len(res) != 3*len(b) {
		err = fmt.Errorf("redislimiter: the script answered %d values for %d calls", len(res), len(b))
	}
	for i, c := range b {
		if err != nil {
			c.err = err
		} else {
			c.r1, c.r2, c.err = answer(res[3*i : 3*i+3])
		}
		close(c.done)
	}
}

// latestDeadline returns the latest deadline of the calls of b, or false
// when one of them has none.
func latestDeadline(b []*call) (time.Time, bool) {
	var latest time.Time
	for _, c := range b {
		if c.deadline.IsZero() {
			return time.Time{}, false
		}
		if c.deadline.After(latest) {
			latest = c.deadline
		}
	}
	return latest, true
}

// answer reads one call's three values of the script's reply.
func answer(v []any) (int64, int64, error) {
	r1, ok1 := v[0].(int64)
	r2, ok2 := v[1].(int64)
	msg, ok3 := v[2].(string)
	switch {
	case !ok1 || !ok2 || !ok3:
		return 0, 0, fmt.Errorf("redislimiter: unexpected script reply types %T, %T, %T", v[0], v[1], v[2])
	case msg != "":
		return 0, 0, errors.New("redislimiter: script: " + msg)
	}
	return r1, r2, nil
}
