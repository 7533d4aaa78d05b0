package mediatest

import (
	"context"
	"sync/atomic"
	"time"

	"github.com/streamsession/streamsession/media"
)

// Mortal is a node's view of a Directory that can die as a killed process
// does: once Kill is called, the node neither beats nor looks for orphans;
// every other method goes to the embedded Directory. It is safe for
// concurrent use by multiple goroutines if the embedded Directory is.
type Mortal struct {
	media.Directory
	dead atomic.Bool
}

// Kill makes every later Beat and Orphans do nothing.
func (d *Mortal) Kill() { d.dead.Store(true) }

// Beat beats through the embedded Directory until Kill.
func (d *Mortal) Beat(ctx context.Context, node string, ttl time.Duration) error {
	if d.dead.Load() {
		return nil
	}
	return d.Directory.Beat(ctx, node, ttl)
}

// Orphans asks the embedded Directory until Kill, then finds none.
func (d *Mortal) Orphans(ctx context.Context) ([]media.Held, error) {
	if d.dead.Load() {
		return nil, nil
	}
	return d.Directory.Orphans(ctx)
}
