package service

import (
	"net"
	"net/http"
	"sync"
)

// connTracker follows the listener's connections (as http.Server.ConnState)
// so that a shutdown closes at once every connection that carries no
// request: one that has sent nothing yet, and an idle keep-alive one.
// http.Server.Shutdown closes idle connections itself but leaves one that
// has sent nothing for up to five seconds, so that anyone who opens a TCP
// connection and stays silent would hold the shutdown until its deadline.
// A connection with a request in flight is left to finish.
//
// A connTracker is safe for concurrent use by multiple goroutines.
type connTracker struct {
	mu      sync.Mutex
	conns   map[net.Conn]http.ConnState
	closing bool
}

func newConnTracker() *connTracker {
	return &connTracker{conns: make(map[net.Conn]http.ConnState)}
}

// track is the http.Server's ConnState hook. Once closeQuiet has run, a
// connection that becomes quiet (its request answered) is closed at once.
func (c *connTracker) track(conn net.Conn, st http.ConnState) {
	c.mu.Lock()
	defer c.mu.Unlock()
	switch st {
	case http.StateNew, http.StateIdle:
		if c.closing {
			delete(c.conns, conn)
			conn.Close()
			return
		}
		c.conns[conn] = st
	case http.StateActive:
		c.conns[conn] = st
	default: // hijacked (a realtime socket, which the Server closes) or closed
		delete(c.conns, conn)
	}
}

// closeQuiet closes every connection that has no request in flight, now
// and from then on.
func (c *connTracker) closeQuiet() {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.closing = true
	for conn, st := range c.conns {
		if st != http.StateActive {
			delete(c.conns, conn)
			conn.Close()
		}
	}
}

// active returns how many connections carry a request.
func (c *connTracker) active() int {
	c.mu.Lock()
	defer c.mu.Unlock()
	n := 0
	for _, st := range c.conns {
		if st == http.StateActive {
			n++
		}
	}
	return n
}
