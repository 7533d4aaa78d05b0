package redisstore

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/streamsession/streamsession/fsm"
	"github.com/streamsession/streamsession/internal/rediswait"
	"github.com/streamsession/streamsession/session"
)

// DataLoss is what a Store found when Redis lost its data. It is a plain
// value.
type DataLoss struct {
	// Sessions is how many sessions this node knew open (new, connecting,
	// connected or closing) that Redis no longer holds: they were delivered
	// closing and closed with session.ReasonStoreLost.
	Sessions int
}

// markerTimeout bounds one look at the marker.
const markerTimeout = 5 * time.Second

// The marker expires markerTTLIntervals loss checks (at least markerMinTTL)
// after the last node looked at it, so that nothing is left in Redis once
// every node is gone. Nodes cut off from Redis for longer than that take
// the marker's return for a loss, which closes nothing that still exists.
const (
	markerTTLIntervals = 30
	markerMinTTL       = time.Minute
)

// watchLoss checks the marker every LossCheckInterval until Close, and
// runs a resync that failed after a reconnection.
func (s *Store) watchLoss() {
	defer s.wg.Done()
	t := time.NewTicker(s.cfg.LossCheckInterval)
	defer t.Stop()
	lossPending := false
	for {
		lost, err := s.checkMarker(markerTimeout)
		if err == nil && lost {
			lossPending = true
		}
		if lossPending || s.resyncPending.Load() {
			s.resyncPending.Store(false)
			if _, err := s.resync(); err != nil {
				s.resyncPending.Store(true)
			} else if lossPending {
				// The listener's resync after a reconnection may have
				// found some of the sessions first: both count here.
				s.mu.Lock()
				n := s.lostSinceReport
				s.lostSinceReport = 0
				s.mu.Unlock()
				if fn := s.cfg.OnDataLoss; fn != nil {
					fn(DataLoss{Sessions: n})
				}
				lossPending = false
			}
		}
		s.finishCutCloses(time.Now())
		select {
		case <-s.stop:
			return
		case <-t.C:
		}
	}
}

// checkMarker reads the marker key, writing a new one when it is missing,
// and reports whether Redis lost its data since the last look: the marker
// vanished, or another node replaced it after it vanished. The first look
// only learns the marker.
func (s *Store) checkMarker(timeout time.Duration) (lost bool, err error) {
	var b [16]byte
	rand.Read(b[:])
	ctx, cancel := context.WithTimeout(context.Background(), timeout)
	defer cancel()
	ttl := markerTTLIntervals * s.cfg.LossCheckInterval.Milliseconds()
	v, err := markerScript.Run(ctx, s.client, []string{s.prefix + "marker"}, hex.EncodeToString(b[:]), max(ttl, markerMinTTL.Milliseconds())).Text()
	if err != nil {
		return false, err
	}
	first := s.marker == ""
	lost = !first && v != s.marker
	s.marker = v
	return lost, nil
}

// waitReplicas waits for Config.WaitReplicas replicas to hold every write
// made so far, when set (see rediswait.Barrier).
func (s *Store) waitReplicas(ctx context.Context) {
	n := s.cfg.WaitReplicas
	if n <= 0 {
		return
	}
	acked, err := rediswait.Barrier(ctx, s.client, s.prefix+"wait", n, s.cfg.WaitTimeout)
	if (err != nil || acked < n) && s.cfg.OnWaitShort != nil {
		s.cfg.OnWaitShort(acked, err)
	}
}

// learn records a session read through Get that the listener has not heard
// of (it was created before this node subscribed), so that its loss is
// noticed too. Nothing is delivered.
func (s *Store) learn(rec session.Record) {
	if rec.State == fsm.Closed || rec.State == fsm.Unknown {
		return
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.notify == nil || s.known[rec.ID] != nil {
		return
	}
	s.known[rec.ID] = &seen{account: rec.Account, state: rec.State, epoch: rec.Epoch, reason: rec.Reason}
}

// markerScript returns the marker, setting it to ARGV[1] when it is
// missing, and renews its expiry. KEYS: 1 marker. ARGV: 1 candidate, 2
// expiry in ms.
var markerScript = redis.NewScript(`
local v = redis.call('GET', KEYS[1])
if v then
  redis.call('PEXPIRE', KEYS[1], ARGV[2])
  return v
end
redis.call('SET', KEYS[1], ARGV[1], 'PX', ARGV[2])
return ARGV[1]
`)
