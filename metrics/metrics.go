package metrics

import (
	"errors"
	"fmt"
	"math"
	"strconv"
	"sync"
	"time"
	"unicode/utf8"

	"github.com/prometheus/client_golang/prometheus"

	sserrors "github.com/streamsession/streamsession/errors"
	"github.com/streamsession/streamsession/fsm"
	"github.com/streamsession/streamsession/server"
	"github.com/streamsession/streamsession/server/realtime"
	"github.com/streamsession/streamsession/session"
)

// Namespace prefixes the name of every family this package registers.
const Namespace = "streamsession"

// DefaultBackend is the backend label of the limiter families when
// Config.Backend is empty.
const DefaultBackend = "memory"

// BackendRedis is the backend label for a node whose limiter is in Redis
// (limits/redislimiter).
const BackendRedis = "redis"

// DefaultLimiterBuckets are the upper bounds, in seconds, of the limiter
// latency histogram when Config.LimiterBuckets is empty: from 100 µs (an
// in-memory decision) to 2.5 s (a Redis call stuck until its deadline), so
// that both backends land inside the range. Treat it as read-only.
var DefaultLimiterBuckets = []float64{
	.0001, .00025, .0005, .001, .0025, .005, .01, .025, .05, .1, .25, .5, 1, 2.5,
}

// Config configures New. Its zero value is valid: every field has a
// documented default.
type Config struct {
	// Backend is the value of the backend label of the limiter families
	// ("memory", "redis"): the limiter the Manager was given. The default
	// is DefaultBackend ("memory"). It must be valid UTF-8.
	Backend string
	// LimiterBuckets are the upper bounds, in seconds and strictly
	// increasing, of the limiter latency histogram. The default is
	// DefaultLimiterBuckets.
	LimiterBuckets []float64
}

// Metrics turns the hooks of a session.Manager and of a server.Server into
// Prometheus metrics. The families, all registered by New:
//
//	streamsession_sessions{state}                          gauge
//	streamsession_session_transitions_total{from,to}       counter
//	streamsession_sessions_closed_total{reason}            counter
//	streamsession_session_refusals_total{code}             counter
//	streamsession_request_refusals_total{code}             counter
//	streamsession_limiter_call_duration_seconds{backend,op} histogram
//	streamsession_limiter_errors_total{backend,op}         counter
//	streamsession_limiter_fail_open_total{backend}         counter
//	streamsession_realtime_sockets                         gauge
//	streamsession_relay_announce_failures_total            counter
//	streamsession_drains_total                             counter
//	streamsession_draining                                 gauge
//	streamsession_background_errors_total{op}              counter
//	streamsession_store_resets_total                       counter
//	streamsession_redis_wait_short_total                   counter
//
// streamsession_sessions is kept from the transitions alone: each Event
// puts its session in the state entered and takes it out of the state this
// node last saw it in, so a session counts in closed until its retention
// window ends (the Event from closed to unknown). A session is taken out
// of a state only if this node counted it there: an Event about a session
// it never heard of (created before the hooks were installed, or before
// this node joined a shared store) only adds it to the state entered, so
// the gauge is never negative. With a Store shared by several nodes, read
// it as "the sessions this node's Manager heard of".
//
// streamsession_store_resets_total counts the times the shared store lost
// its data (StoreReset; a Redis flushed, or restarted without
// persistence).
//
// streamsession_redis_wait_short_total counts the WAITs of
// redis_wait_replicas that ended with fewer replicas than asked, or failed
// (RedisWaitShort): the writes they followed may be lost by a failover.
//
// streamsession_background_errors_total counts the failures of the
// Manager's own goroutines (session.Hooks.OnBackgroundError), by
// session.BackgroundOp ("timer_close", "renew", ...).
//
// Every label value of the sessions, transitions, limiter and background
// families is
// created at zero by New, so that a rate() or an alert sees them from the
// first scrape; refusal codes appear when first counted.
//
// A Metrics is safe for concurrent use by multiple goroutines; its hooks
// only add to counters, never block and never call back.
type Metrics struct {
	backend string

	sessions       *prometheus.GaugeVec
	transitions    *prometheus.CounterVec
	closed         *prometheus.CounterVec
	refusals       *prometheus.CounterVec
	requestRefused *prometheus.CounterVec
	limiterSeconds *prometheus.HistogramVec
	limiterErrors  *prometheus.CounterVec
	failOpen       *prometheus.CounterVec
	sockets        prometheus.Gauge
	unannounced    prometheus.Counter
	drains         prometheus.Counter
	draining       prometheus.Gauge
	background     *prometheus.CounterVec

	// The children the hooks touch, looked up once: a hook then costs an
	// atomic add and no label hashing.
	storeResets prometheus.Counter
	waitShort   prometheus.Counter

	// seenMu guards seen: the state each session was last counted in.
	seenMu sync.Mutex
	seen   map[string]fsm.State

	byState  [numStates]prometheus.Gauge
	byMove   [numStates][numStates]prometheus.Counter
	byOp     [numOps]prometheus.Observer
	errsByOp [numOps]prometheus.Counter
	failOne  prometheus.Counter
}

const (
	numStates = int(fsm.Closed) + 1
	numOps    = int(session.LimiterKeep) + 1
)

// limiterOps are the values of the op label.
var limiterOps = []session.LimiterOp{
	session.LimiterAcquire, session.LimiterStarted, session.LimiterRenew, session.LimiterRelease, session.LimiterKeep,
}

// backgroundOps are the values of the background family's op label.
var backgroundOps = []session.BackgroundOp{
	session.BackgroundDue, session.BackgroundTimerClose, session.BackgroundForget,
	session.BackgroundFinishClose, session.BackgroundRenew, session.BackgroundShutdownClose,
}

// New creates the families, registers them with reg and returns the
// Metrics that feeds them. It fails, registering nothing, when reg is nil,
// Config is invalid (Backend not UTF-8, LimiterBuckets not strictly
// increasing) or a family is already registered with reg (the error then
// wraps a prometheus.AlreadyRegisteredError: one Metrics per registry).
func New(reg prometheus.Registerer, cfg Config) (*Metrics, error) {
	if reg == nil {
		return nil, errors.New("metrics: nil prometheus.Registerer")
	}
	if cfg.Backend == "" {
		cfg.Backend = DefaultBackend
	}
	if !utf8.ValidString(cfg.Backend) {
		return nil, errors.New("metrics: Config.Backend is not valid UTF-8")
	}
	buckets := cfg.LimiterBuckets
	if len(buckets) == 0 {
		buckets = DefaultLimiterBuckets
	}
	if err := checkBuckets(buckets); err != nil {
		return nil, err
	}

	m := &Metrics{
		backend: cfg.Backend,
		sessions: prometheus.NewGaugeVec(prometheus.GaugeOpts{
			Namespace: Namespace,
			Name:      "sessions",
			Help:      "Sessions in each state, kept from the transitions the Manager reported (closed sessions count until their retention window ends).",
		}, []string{"state"}),
		transitions: prometheus.NewCounterVec(prometheus.CounterOpts{
			Namespace: Namespace,
			Name:      "session_transitions_total",
			Help:      "Session transitions, by the state left and the state entered (from unknown: created; to unknown: forgotten after retention).",
		}, []string{"from", "to"}),
		closed: prometheus.NewCounterVec(prometheus.CounterOpts{
			Namespace: Namespace,
			Name:      "sessions_closed_total",
			Help:      "Sessions closed, by what closed them (stop, idle, duration, join, shutdown, lease_lost, ...: the reason clients receive with the closed state).",
		}, []string{"reason"}),
		refusals: prometheus.NewCounterVec(prometheus.CounterOpts{
			Namespace: Namespace,
			Name:      "session_refusals_total",
			Help:      "Session creations refused, by the catalog error code answered (10007 concurrency, 10014 capacity, 10015 trial quota, 400558 limiter unavailable, ...).",
		}, []string{"code"}),
		requestRefused: prometheus.NewCounterVec(prometheus.CounterOpts{
			Namespace: Namespace,
			Name:      "request_refusals_total",
			Help:      "API requests (the realtime socket upgrade included) the server answered with an error, by the catalog error code (400112 unauthorized, 400140 rate limit, ...).",
		}, []string{"code"}),
		limiterSeconds: prometheus.NewHistogramVec(prometheus.HistogramOpts{
			Namespace: Namespace,
			Name:      "limiter_call_duration_seconds",
			Help:      "Duration of the limiter calls (decisions, refusals and failures alike), by backend and method.",
			Buckets:   buckets,
		}, []string{"backend", "op"}),
		limiterErrors: prometheus.NewCounterVec(prometheus.CounterOpts{
			Namespace: Namespace,
			Name:      "limiter_errors_total",
			Help:      "Limiter calls that failed (a refusal is not a failure), by backend and method.",
		}, []string{"backend", "op"}),
		failOpen: prometheus.NewCounterVec(prometheus.CounterOpts{
			Namespace: Namespace,
			Name:      "limiter_fail_open_total",
			Help:      "Sessions admitted without a limiter decision because the backend was unreachable and the limiter fails open.",
		}, []string{"backend"}),
		sockets: prometheus.NewGauge(prometheus.GaugeOpts{
			Namespace: Namespace,
			Name:      "realtime_sockets",
			Help:      "Realtime sockets open on this node.",
		}),
		unannounced: prometheus.NewCounter(prometheus.CounterOpts{
			Namespace: Namespace,
			Name:      "relay_announce_failures_total",
			Help:      "Realtime sockets opened on this node whose announcement the relay did not take, so that the session's sockets on other nodes were not replaced.",
		}),
		drains: prometheus.NewCounter(prometheus.CounterOpts{
			Namespace: Namespace,
			Name:      "drains_total",
			Help:      "Drains this node began (SIGTERM or SIGINT in multi-node mode: sockets closed with 1012, /readyz 503).",
		}),
		draining: prometheus.NewGauge(prometheus.GaugeOpts{
			Namespace: Namespace,
			Name:      "draining",
			Help:      "1 while this node drains before it exits, else 0.",
		}),
		storeResets: prometheus.NewCounter(prometheus.CounterOpts{
			Namespace: Namespace,
			Name:      "store_resets_total",
			Help:      "Times the shared session store was found to have lost its data (Redis flushed, or restarted without persistence); its sessions were closed with reason store_lost.",
		}),
		waitShort: prometheus.NewCounter(prometheus.CounterOpts{
			Namespace: Namespace,
			Name:      "redis_wait_short_total",
			Help:      "WAITs after the writes that create or end a session (redis_wait_replicas) that ended with fewer replicas than asked, or failed: those writes may be lost by a failover.",
		}),
		seen: make(map[string]fsm.State),
		background: prometheus.NewCounterVec(prometheus.CounterOpts{
			Namespace: Namespace,
			Name:      "background_errors_total",
			Help:      "Failures of the session manager's own work (a timer's close, a lease renewal, ...), which no caller sees, by operation.",
		}, []string{"op"}),
	}
	for _, s := range fsm.States() {
		m.byState[s] = m.sessions.WithLabelValues(s.String())
	}
	for _, mv := range moves() {
		m.byMove[mv.from][mv.to] = m.transitions.WithLabelValues(mv.from.String(), mv.to.String())
	}
	for _, op := range limiterOps {
		m.byOp[op] = m.limiterSeconds.WithLabelValues(m.backend, op.String())
		m.errsByOp[op] = m.limiterErrors.WithLabelValues(m.backend, op.String())
	}
	m.failOne = m.failOpen.WithLabelValues(m.backend)
	for _, op := range backgroundOps {
		m.background.WithLabelValues(op.String())
	}

	var done []prometheus.Collector
	for _, c := range []prometheus.Collector{
		m.sessions, m.transitions, m.closed, m.refusals, m.requestRefused, m.limiterSeconds, m.limiterErrors, m.failOpen, m.sockets,
		m.unannounced, m.drains, m.draining, m.background, m.storeResets, m.waitShort,
	} {
		if err := reg.Register(c); err != nil {
			for _, d := range done {
				reg.Unregister(d)
			}
			return nil, fmt.Errorf("metrics: %w", err)
		}
		done = append(done, c)
	}
	return m, nil
}

// checkBuckets refuses what prometheus.NewHistogramVec would panic on.
func checkBuckets(b []float64) error {
	for i, v := range b {
		if math.IsNaN(v) || (math.IsInf(v, 1) && i != len(b)-1) || math.IsInf(v, -1) {
			return fmt.Errorf("metrics: Config.LimiterBuckets[%d] = %v", i, v)
		}
		if i > 0 && v <= b[i-1] {
			return fmt.Errorf("metrics: Config.LimiterBuckets not strictly increasing at index %d (%v after %v)", i, v, b[i-1])
		}
	}
	return nil
}

type move struct{ from, to fsm.State }

// moves lists every transition a session can make, as Events report them:
// its creation, every step fsm.Next allows, and its end of retention.
func moves() []move {
	mv := []move{{fsm.Unknown, fsm.New}}
	for _, s := range fsm.States() {
		for _, ev := range fsm.Events() {
			if to, err := fsm.Next(s, ev); err == nil {
				mv = append(mv, move{s, to})
			}
		}
	}
	return append(mv, move{fsm.Closed, fsm.Unknown})
}

// SessionHooks returns the hooks that feed the session, transition,
// refusal, limiter and background families; set them as session.Config.Hooks (combine
// them with others with observe.JoinHooks). Every hook only adds to a
// metric.
func (m *Metrics) SessionHooks() session.Hooks {
	return session.Hooks{
		OnTransition: m.transition,
		OnRefused:    m.refused,
		OnLimiter:    m.limiter,

		OnBackgroundError: m.backgroundError,
	}
}

// StoreReset counts one loss of the shared store's data
// (streamsession_store_resets_total). Give it to the store's data-loss
// hook (redisstore.Config.OnDataLoss).
func (m *Metrics) StoreReset() { m.storeResets.Inc() }

// RedisWaitShort counts one WAIT that ended short
// (streamsession_redis_wait_short_total). Give it to the OnWaitShort hooks
// of redislimiter.Config and redisstore.Config.
func (m *Metrics) RedisWaitShort(acked int, err error) { m.waitShort.Inc() }

func (m *Metrics) backgroundError(op session.BackgroundOp, _ error) {
	m.background.WithLabelValues(op.String()).Inc()
}

func (m *Metrics) transition(e session.Event) {
	m.seenMu.Lock()
	if prev, ok := m.seen[e.SessionID]; ok {
		if g := m.state(prev); g != nil {
			g.Dec()
		}
	}
	if g := m.state(e.To); g != nil {
		g.Inc()
		m.seen[e.SessionID] = e.To
	} else {
		delete(m.seen, e.SessionID)
	}
	m.seenMu.Unlock()
	if e.To == fsm.Closed {
		m.closed.WithLabelValues(e.Reason.String()).Inc()
	}
	if validState(e.From) && validState(e.To) && m.byMove[e.From][e.To] != nil {
		m.byMove[e.From][e.To].Inc()
		return
	}
	m.transitions.WithLabelValues(e.From.String(), e.To.String()).Inc()
}

// state returns the gauge of s, nil for Unknown (a session outside the
// store) and any value outside the enum.
func (m *Metrics) state(s fsm.State) prometheus.Gauge {
	if s > fsm.Unknown && s <= fsm.Closed {
		return m.byState[s]
	}
	return nil
}

func validState(s fsm.State) bool { return s >= fsm.Unknown && s <= fsm.Closed }

func (m *Metrics) refused(_ session.Account, code sserrors.Code) {
	m.refusals.WithLabelValues(strconv.Itoa(int(code))).Inc()
}

func (m *Metrics) limiter(op session.LimiterOp, d time.Duration, err error) {
	obs, errs := m.opMetrics(op)
	obs.Observe(d.Seconds())
	if err != nil {
		errs.Inc()
	}
}

func (m *Metrics) opMetrics(op session.LimiterOp) (prometheus.Observer, prometheus.Counter) {
	if int(op) < numOps && m.byOp[op] != nil {
		return m.byOp[op], m.errsByOp[op]
	}
	return m.limiterSeconds.WithLabelValues(m.backend, op.String()),
		m.limiterErrors.WithLabelValues(m.backend, op.String())
}

// ServerHooks returns the hooks that keep streamsession_realtime_sockets,
// streamsession_relay_announce_failures_total and
// streamsession_request_refusals_total; set them as server.Config.Hooks
// (combine them with others with observe.JoinServerHooks). A refused
// streaming.new counts there and, when the Manager refused it, in
// streamsession_session_refusals_total too: the two families say which
// layer refused.
func (m *Metrics) ServerHooks() server.Hooks {
	return server.Hooks{
		SocketOpened:   func(realtime.SocketInfo) { m.sockets.Inc() },
		SocketClosed:   func(realtime.SocketInfo) { m.sockets.Dec() },
		AnnounceFailed: func(realtime.AnnounceFailure) { m.unannounced.Inc() },
		Refused: func(r server.Refusal) {
			m.requestRefused.WithLabelValues(strconv.Itoa(int(r.Code))).Inc()
		},
	}
}

// LimiterFailOpen counts one session admitted without a limiter decision.
// Its signature is that of redislimiter.Config.OnFailOpen, where it
// belongs; err is not recorded.
func (m *Metrics) LimiterFailOpen(err error) { m.failOne.Inc() }

// DrainStarted counts one drain of this node and sets
// streamsession_draining to 1 (a node drains once, then exits).
func (m *Metrics) DrainStarted() {
	m.drains.Inc()
	m.draining.Set(1)
}
