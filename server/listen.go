package server

import (
	"container/list"
	"log"
	"net"
	"net/http"
	"sync"
	"sync/atomic"
	"syscall"
	"time"
)

// Defaults of [HTTPConfig] and [LimitConnections].
const (
	// DefaultMaxHeaderBytes bounds a request's line and headers; a request
	// over it answers 431.
	DefaultMaxHeaderBytes = 64 << 10
	// DefaultReadHeaderTimeout is how long a client has to send a request's
	// line and headers once it began it.
	DefaultReadHeaderTimeout = 10 * time.Second
	// DefaultIdleTimeout is how long a keep-alive connection may wait for
	// its next request.
	DefaultIdleTimeout = 2 * time.Minute
	// fdShare is the share (in percent) of the process's file limit that
	// DefaultMaxConnections gives to connections: the rest is left for
	// the Redis pool, files, and the one connection accepted past the cap
	// while another is shed.
	fdShare = 80
	// maxDefaultConnections bounds DefaultMaxConnections when the file
	// limit is very high (containers often allow a million files): an idle
	// connection costs net/http some 10–20 KiB, so memory, not files, is
	// then what runs out.
	maxDefaultConnections = 50_000
)

// HTTPConfig configures [NewHTTPServer]. Zero fields take the documented
// defaults. It is a plain value.
type HTTPConfig struct {
	// MaxHeaderBytes bounds a request's line and headers: past it (and the
	// few KiB net/http reads ahead) the request answers 431 Request Header
	// Fields Too Large and its connection closes, so that a header that
	// never ends costs at most this much memory. The default is
	// DefaultMaxHeaderBytes (64 KiB).
	MaxHeaderBytes int
	// ReadHeaderTimeout is how long a client has to send a request's line
	// and headers; past it the connection closes. The default is
	// DefaultReadHeaderTimeout (10 s).
	ReadHeaderTimeout time.Duration
	// IdleTimeout closes a keep-alive connection that sends no next request
	// for this long. The default is DefaultIdleTimeout (2 min).
	IdleTimeout time.Duration
	// Limiter, when set, is the listener the server will serve: NewHTTPServer
	// installs its ConnState hook, so that it knows which connections are
	// idle and may shed them.
	Limiter *ConnLimiter
	// ConnState is called after the Limiter's hook, for every change of a
	// connection's state (see http.Server.ConnState).
	ConnState func(net.Conn, http.ConnState)
	// ErrorLog receives net/http's own errors (see http.Server.ErrorLog).
	ErrorLog *log.Logger
}

// NewHTTPServer returns an http.Server for h with the bounds of cfg. The
// caller serves it on cfg.Limiter (or any listener) and shuts it down as
// any http.Server.
func NewHTTPServer(h http.Handler, cfg HTTPConfig) *http.Server {
	if cfg.MaxHeaderBytes <= 0 {
		cfg.MaxHeaderBytes = DefaultMaxHeaderBytes
	}
	if cfg.ReadHeaderTimeout <= 0 {
		cfg.ReadHeaderTimeout = DefaultReadHeaderTimeout
	}
	if cfg.IdleTimeout <= 0 {
		cfg.IdleTimeout = DefaultIdleTimeout
	}
	hs := &http.Server{
		Handler:           h,
		MaxHeaderBytes:    cfg.MaxHeaderBytes,
		ReadHeaderTimeout: cfg.ReadHeaderTimeout,
		IdleTimeout:       cfg.IdleTimeout,
		ErrorLog:          cfg.ErrorLog,
	}
	switch {
	case cfg.Limiter != nil && cfg.ConnState != nil:
		lim, next := cfg.Limiter, cfg.ConnState
		hs.ConnState = func(c net.Conn, st http.ConnState) {
			lim.ConnState(c, st)
			next(c, st)
		}
	case cfg.Limiter != nil:
		hs.ConnState = cfg.Limiter.ConnState
	default:
		hs.ConnState = cfg.ConnState
	}
	return hs
}

// DefaultMaxConnections returns 80% of the process's current limit of
// open files (RLIMIT_NOFILE), at most 50,000: the cap LimitConnections
// takes by default. It is 1,024 when the limit cannot be read. (Go raises
// the soft limit to the hard one when a program starts.)
func DefaultMaxConnections() int {
	var rl syscall.Rlimit
	if err := syscall.Getrlimit(syscall.RLIMIT_NOFILE, &rl); err != nil || rl.Cur == 0 {
		return 1024
	}
	return int(max(1, min(rl.Cur/100*fdShare+rl.Cur%100*fdShare/100, maxDefaultConnections)))
}

// ConnStats counts a ConnLimiter's connections. It is a plain value.
type ConnStats struct {
	// Open is how many accepted connections are not closed yet.
	Open int
	// Idle is how many of them wait between requests (keep-alive) or have
	// not sent their first request.
	Idle int
	// Shed counts the connections closed to make room for a new one.
	Shed uint64
}

// DefaultShedAfter is how long a connection must have been quiet before a
// ConnLimiter may shed it, unless ShedAfter says otherwise.
const DefaultShedAfter = time.Second

// ConnLimiterOption is an optional setting of LimitConnections.
type ConnLimiterOption func(*ConnLimiter)

// ShedAfter sets how long a connection must have been quiet (idle between
// requests, or without a request yet) before it may be shed; the default
// is DefaultShedAfter (1 s). It spares the connections of clients that are
// busy right now: a keep-alive connection between two requests of a burst,
// a connection whose request is on its way. Zero sheds at once.
func ShedAfter(d time.Duration) ConnLimiterOption {
	return func(l *ConnLimiter) { l.shedAfter = max(d, 0) }
}

// ConnLimiter is a listener that keeps at most a fixed number of
// connections open. When a new connection arrives at the cap, it closes
// (sheds) the connection that has been quiet the longest: a keep-alive
// connection waiting for its next request first, then one that has not
// sent its first request (net/http counts a connection busy only once a
// request's headers are read); so a flood of idle or silent connections
// cannot keep a new client from being served. Only a connection quiet for
// ShedAfter (1 s) is shed; until one is, and while every connection
// carries a request or a realtime socket, Accept waits (requests are
// bounded by the server's timeouts), leaving new connections in the
// listen queue.
//
// It knows which connections are quiet from the http.Server's ConnState
// hook: install [ConnLimiter.ConnState] (NewHTTPServer does, with
// HTTPConfig.Limiter). A ConnLimiter is safe for concurrent use by
// multiple goroutines.
type ConnLimiter struct {
	net.Listener
	max       int
	shedAfter time.Duration
	now       func() time.Time
	shed      atomic.Uint64
	// changed is signalled when a slot frees or a connection turns quiet;
	// done is closed by Close.
	changed chan struct{}
	done    chan struct{}

	mu     sync.Mutex
	open   int
	closed bool
	// idle holds the keep-alive connections between requests, fresh the
	// connections yet to send a request, each oldest first.
	idle, fresh list.List
}

// LimitConnections returns a ConnLimiter over ln keeping at most
// maxConns connections open; maxConns ≤ 0 means DefaultMaxConnections().
func LimitConnections(ln net.Listener, maxConns int, opts ...ConnLimiterOption) *ConnLimiter {
	if maxConns <= 0 {
		maxConns = DefaultMaxConnections()
	}
	l := &ConnLimiter{
		Listener: ln, max: maxConns, shedAfter: DefaultShedAfter, now: time.Now,
		changed: make(chan struct{}, 1), done: make(chan struct{}),
	}
	for _, o := range opts {
		o(l)
	}
	return l
}

// Max returns the cap.
func (l *ConnLimiter) Max() int { return l.max }

// Stats returns the current counts.
func (l *ConnLimiter) Stats() ConnStats {
	l.mu.Lock()
	defer l.mu.Unlock()
	return ConnStats{Open: l.open, Idle: l.idle.Len() + l.fresh.Len(), Shed: l.shed.Load()}
}

// Accept waits for a connection and returns it, after making room for it
// when the cap is reached (see ConnLimiter). It returns net.ErrClosed
// once Close was called.
func (l *ConnLimiter) Accept() (net.Conn, error) {
	c, err := l.Listener.Accept()
	if err != nil {
		return nil, err
	}
	var timer *time.Timer
	defer func() {
		if timer != nil {
			timer.Stop()
		}
	}()
	l.mu.Lock()
	for l.open >= l.max && !l.closed {
		victim, wait := l.quietest()
		if victim != nil && wait <= 0 {
			l.shedLocked(victim)
			continue
		}
		l.mu.Unlock()
		var expired <-chan time.Time
		if victim != nil { // the quietest becomes sheddable after wait
			if timer == nil {
				timer = time.NewTimer(wait)
			} else {
				timer.Reset(wait)
			}
			expired = timer.C
		}
		select {
		case <-l.changed:
		case <-expired:
		case <-l.done:
		}
		l.mu.Lock()
	}
	defer l.mu.Unlock()
	if l.closed {
		c.Close()
		return nil, net.ErrClosed
	}
	l.open++
	lc := &limitedConn{Conn: c, l: l, since: l.now()}
	lc.elem, lc.where = l.fresh.PushBack(lc), &l.fresh
	return lc, nil
}

// Close closes the listener; an Accept waiting for room returns
// net.ErrClosed. Connections already accepted stay open.
func (l *ConnLimiter) Close() error {
	l.mu.Lock()
	if !l.closed {
		l.closed = true
		close(l.done)
	}
	l.mu.Unlock()
	return l.Listener.Close()
}

// ConnState is the http.Server.ConnState hook that tells the ConnLimiter
// which connections are quiet. Connections it did not accept are ignored.
func (l *ConnLimiter) ConnState(c net.Conn, st http.ConnState) {
	if u, ok := c.(interface{ NetConn() net.Conn }); ok { // *tls.Conn
		c = u.NetConn()
	}
	lc, ok := c.(*limitedConn)
	if !ok || lc.l != l {
		return
	}
	l.mu.Lock()
	defer l.mu.Unlock()
	if lc.released {
		return
	}
	switch st {
	case http.StateNew:
		if lc.where == &l.fresh {
			return // listed by Accept
		}
		l.unlistLocked(lc)
		lc.since = l.now()
		lc.elem, lc.where = l.fresh.PushBack(lc), &l.fresh
	case http.StateIdle:
		l.unlistLocked(lc)
		lc.since = l.now()
		lc.elem, lc.where = l.idle.PushBack(lc), &l.idle
		l.signal()
	default:
		// Active and hijacked connections are not sheddable; closed ones
		// are released by their Close.
		l.unlistLocked(lc)
	}
}

// quietest returns the connection to shed next: the longest idle
// keep-alive one, else the oldest one without a request; and how long
// until it has been quiet for shedAfter (≤ 0: now). nil when every
// connection is busy.
func (l *ConnLimiter) quietest() (*limitedConn, time.Duration) {
	now := l.now()
	var best *limitedConn
	var wait time.Duration
	for _, q := range []*list.List{&l.idle, &l.fresh} {
		e := q.Front()
		if e == nil {
			continue
		}
		lc := e.Value.(*limitedConn)
		w := l.shedAfter - now.Sub(lc.since)
		if w <= 0 {
			return lc, 0
		}
		if best == nil || w < wait {
			best, wait = lc, w
		}
	}
	return best, wait
}

// shedLocked closes lc to make room. Closing a TCP connection does not
// block, and doing it under the lock keeps the slot for the caller.
func (l *ConnLimiter) shedLocked(lc *limitedConn) {
	l.shed.Add(1)
	lc.Conn.Close()
	l.releaseLocked(lc)
}

// signal wakes an Accept waiting for room.
func (l *ConnLimiter) signal() {
	select {
	case l.changed <- struct{}{}:
	default:
	}
}

func (l *ConnLimiter) unlistLocked(lc *limitedConn) {
	if lc.where != nil {
		lc.where.Remove(lc.elem)
		lc.where, lc.elem = nil, nil
	}
}

// releaseLocked frees lc's slot, once.
func (l *ConnLimiter) releaseLocked(lc *limitedConn) {
	if lc.released {
		return
	}
	lc.released = true
	l.unlistLocked(lc)
	l.open--
	l.signal()
}

// limitedConn is a connection a ConnLimiter accepted; closing it frees its
// slot. Its other fields are guarded by the limiter's mutex.
type limitedConn struct {
	net.Conn
	l        *ConnLimiter
	elem     *list.Element
	where    *list.List
	since    time.Time // when it turned quiet
	released bool
}

// Close closes the connection and frees its slot; calling it again frees
// nothing more.
func (c *limitedConn) Close() error {
	err := c.Conn.Close()
	c.l.mu.Lock()
	c.l.releaseLocked(c)
	c.l.mu.Unlock()
	return err
}
