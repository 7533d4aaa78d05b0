package observe

import (
	"context"
	"log/slog"
	"sync"
	"sync/atomic"

	"github.com/prometheus/client_golang/prometheus"
)

// DefaultLogBuffer is how many records an AsyncHandler holds by default.
const DefaultLogBuffer = 4096

// AsyncConfig configures [NewAsyncHandler]. Zero fields take the
// documented defaults.
type AsyncConfig struct {
	// Buffer is how many records may wait for the handler underneath; a
	// record past it is dropped and counted. The default is
	// DefaultLogBuffer (4,096).
	Buffer int
}

// AsyncHandler is a slog.Handler that never makes its caller wait for the
// handler underneath (a full pipe, a slow disk): Handle puts the record in
// a bounded buffer and returns; one goroutine hands the records, in order,
// to the handler underneath. When the buffer is full the record is dropped
// and counted (Dropped, and the metric
// streamsession_log_records_dropped_total of Collector), so a stalled log
// reader costs log lines, never a request or a socket.
//
// Handlers derived with WithAttrs and WithGroup share the buffer, the
// goroutine and the count. Close stops the goroutine. An AsyncHandler is
// safe for concurrent use by multiple goroutines.
type AsyncHandler struct {
	inner slog.Handler
	q     *logQueue
}

// logQueue is what an AsyncHandler and the handlers derived from it share.
type logQueue struct {
	records chan queuedRecord
	dropped atomic.Uint64
	closed  atomic.Bool
	stop    chan struct{}
	done    chan struct{}
	once    sync.Once
}

type queuedRecord struct {
	h slog.Handler
	r slog.Record
}

// NewAsyncHandler returns an AsyncHandler over inner and starts its
// goroutine; call Close to stop it.
func NewAsyncHandler(inner slog.Handler, cfg AsyncConfig) *AsyncHandler {
	if cfg.Buffer <= 0 {
		cfg.Buffer = DefaultLogBuffer
	}
	q := &logQueue{
		records: make(chan queuedRecord, cfg.Buffer),
		stop:    make(chan struct{}),
		done:    make(chan struct{}),
	}
	go q.run()
	return &AsyncHandler{inner: inner, q: q}
}

func (q *logQueue) run() {
	defer close(q.done)
	for {
		select {
		case rec := <-q.records:
			_ = rec.h.Handle(context.Background(), rec.r)
		case <-q.stop:
			for {
				select {
				case rec := <-q.records:
					_ = rec.h.Handle(context.Background(), rec.r)
				default:
					return
				}
			}
		}
	}
}

// Enabled reports whether the handler underneath handles level.
func (h *AsyncHandler) Enabled(ctx context.Context, level slog.Level) bool {
	return h.inner.Enabled(ctx, level)
}

// Handle queues r without waiting; it drops and counts r when the buffer
// is full or the handler is closed. It always returns nil: the handler
// underneath reports its errors to no one.
func (h *AsyncHandler) Handle(_ context.Context, r slog.Record) error {
	if h.q.closed.Load() {
		h.q.dropped.Add(1)
		return nil
	}
	select {
	case h.q.records <- queuedRecord{h: h.inner, r: r.Clone()}:
	default:
		h.q.dropped.Add(1)
	}
	return nil
}

// WithAttrs returns an AsyncHandler over inner.WithAttrs(attrs), sharing
// h's buffer.
func (h *AsyncHandler) WithAttrs(attrs []slog.Attr) slog.Handler {
	return &AsyncHandler{inner: h.inner.WithAttrs(attrs), q: h.q}
}

// WithGroup returns an AsyncHandler over inner.WithGroup(name), sharing
// h's buffer.
func (h *AsyncHandler) WithGroup(name string) slog.Handler {
	return &AsyncHandler{inner: h.inner.WithGroup(name), q: h.q}
}

// Dropped returns how many records were dropped so far.
func (h *AsyncHandler) Dropped() uint64 { return h.q.dropped.Load() }

// Collector returns a counter, streamsession_log_records_dropped_total,
// reading Dropped, for a Prometheus registry.
func (h *AsyncHandler) Collector() prometheus.Collector {
	return prometheus.NewCounterFunc(prometheus.CounterOpts{
		Name: "streamsession_log_records_dropped_total",
		Help: "Log records dropped because the log buffer was full (the log reader was slower than the node).",
	}, func() float64 { return float64(h.q.dropped.Load()) })
}

// Close stops taking records (later ones are dropped and counted), hands
// the buffered ones to the handler underneath, and returns when they are
// handled or ctx is done, whichever comes first. The goroutine ends once
// it has handed on every buffered record: it cannot end while the handler
// underneath blocks. A record handed in while Close runs may be lost
// uncounted. Calling Close again waits the same way.
func (h *AsyncHandler) Close(ctx context.Context) error {
	h.q.once.Do(func() {
		h.q.closed.Store(true)
		close(h.q.stop)
	})
	select {
	case <-h.q.done:
		return nil
	case <-ctx.Done():
		return ctx.Err()
	}
}
