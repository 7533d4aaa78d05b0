package realtime

import (
	"context"
	"errors"
	"io"
	"net"
	"sync"
	"sync/atomic"
	"time"
	"unicode/utf8"

	"github.com/gorilla/websocket"
	"golang.org/x/time/rate"
)

// ConnConfig configures a Conn. A ConnConfig is a plain value.
type ConnConfig struct {
	// Socket holds the bounds and timings; NewConn applies WithDefaults.
	Socket SocketConfig
	// OnMessage serves one message of the client, from the reader
	// goroutine, one at a time: within the size and rate bounds, and
	// never once the Conn is closing. It may call the Conn.
	OnMessage func(typ int, data []byte)
	// OnClose is called once, from the reader goroutine, when the
	// connection has been dropped (whoever ended it). It may be nil.
	OnClose func()
	// RequireUTF8 closes the socket with 1007 (ReasonInvalidUTF8) on a
	// text frame that is not UTF-8, instead of handing it to OnMessage.
	RequireUTF8 bool
}

// Conn runs one WebSocket for a surface (the Streaming API's realtime
// socket, LiveAvatar's LITE socket): a reader and a writer goroutine
// around a bounded send queue, the ping/pong keep-alive, the size and rate
// bounds, and the close handshake. What the messages mean is the
// surface's: it receives them through ConnConfig.OnMessage and queues its
// own with Send. A Conn is safe for concurrent use by multiple goroutines.
type Conn struct {
	ws        *websocket.Conn
	sock      SocketConfig
	onMessage func(typ int, data []byte)
	onClose   func()
	utf8      bool
	ctx       context.Context
	cancel    context.CancelFunc

	send chan frame
	// urgent carries a close frame that goes before the queued messages
	// (a client that breaks the rules learns why at once).
	urgent     chan frame
	readerDone chan struct{}
	// rate bounds the client's messages; used by the reader only.
	rate      *rate.Limiter
	killOnce  sync.Once
	sentClose atomic.Bool

	mu      sync.Mutex
	closing bool // a close frame is decided: nothing more is queued
}

// frame is one item of a socket's send queue: a text message, or (code
// non-zero) the close frame that ends the queue.
type frame struct {
	data   []byte
	code   int
	reason string
}

// NewConn returns the Conn of ws, not started. The end of parent (a
// surface's Close) drops the connection at once.
func NewConn(parent context.Context, ws *websocket.Conn, cfg ConnConfig) *Conn {
	sock := cfg.Socket.WithDefaults()
	ctx, cancel := context.WithCancel(parent)
	c := &Conn{
		ws:         ws,
		sock:       sock,
		onMessage:  cfg.OnMessage,
		onClose:    cfg.OnClose,
		utf8:       cfg.RequireUTF8,
		ctx:        ctx,
		cancel:     cancel,
		send:       make(chan frame, sock.SendQueue),
		urgent:     make(chan frame, 1),
		readerDone: make(chan struct{}),
		rate:       rate.NewLimiter(rate.Limit(sock.MessageRate), sock.MessageBurst),
	}
	// A writer stuck on a client that does not read, or a reader waiting
	// for a frame, returns at once when the connection is dropped.
	context.AfterFunc(ctx, c.Kill)
	return c
}

// Start runs the reader and the writer. Each calls wg.Done when it ends:
// the caller has added 2 to wg (under its own lock, so that a shutdown
// waiting on wg sees them).
func (c *Conn) Start(wg *sync.WaitGroup) {
	go func() {
		defer wg.Done()
		c.writeLoop()
	}()
	go func() {
		defer wg.Done()
		c.readLoop()
	}()
}

// Context is done once the connection is dropped.
func (c *Conn) Context() context.Context { return c.ctx }

// Send queues msg without blocking. A full queue means the client does not
// read: the socket is closed with 1008 (ReasonSlowReader). Once the Conn
// is closing, msg is dropped.
func (c *Conn) Send(msg []byte) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.closing {
		return
	}
	select {
	case c.send <- frame{data: msg}:
	default:
		c.abortLocked(websocket.ClosePolicyViolation, ReasonSlowReader)
	}
}

// Close queues the close frame code, reason after the messages already
// queued (ahead of them when the queue is full). Only the first close or
// abort counts.
func (c *Conn) Close(code int, reason string) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.closing {
		return
	}
	c.closing = true
	select {
	case c.send <- frame{code: code, reason: reason}:
	default:
		c.urgent <- frame{code: code, reason: reason} // empty: only the first close decision gets here
	}
}

// Abort closes the socket with code and reason ahead of the messages
// queued, which are dropped. Only the first close or abort counts.
func (c *Conn) Abort(code int, reason string) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.abortLocked(code, reason)
}

func (c *Conn) abortLocked(code int, reason string) {
	if c.closing {
		return
	}
	c.closing = true
	c.urgent <- frame{code: code, reason: reason} // empty: only the first close decision gets here
}

// Closing reports whether a close frame is decided.
func (c *Conn) Closing() bool {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.closing
}

// Kill drops the connection at once, with no close frame; both goroutines
// then end.
func (c *Conn) Kill() {
	c.killOnce.Do(func() {
		c.cancel()
		c.ws.Close()
	})
}

func (c *Conn) writeLoop() {
	ping := time.NewTicker(c.sock.PingInterval)
	defer ping.Stop()
	for {
		select {
		case f := <-c.urgent:
			c.writeClose(f)
			return
		default:
		}
		select {
		case f := <-c.urgent:
			c.writeClose(f)
			return
		case f := <-c.send:
			if f.code != 0 {
				c.writeClose(f)
				return
			}
			c.ws.SetWriteDeadline(time.Now().Add(c.sock.WriteTimeout))
			if err := c.ws.WriteMessage(websocket.TextMessage, f.data); err != nil {
				c.Kill()
				return
			}
		case <-ping.C:
			if err := c.ws.WriteControl(websocket.PingMessage, nil, time.Now().Add(c.sock.WriteTimeout)); err != nil {
				c.Kill()
				return
			}
		case <-c.ctx.Done():
			c.Kill()
			return
		}
	}
}

// writeClose sends the close frame f, waits (within CloseGrace) for the
// client's, and drops the connection.
func (c *Conn) writeClose(f frame) {
	c.sentClose.Store(true)
	err := c.ws.WriteControl(websocket.CloseMessage, websocket.FormatCloseMessage(f.code, f.reason), time.Now().Add(c.sock.WriteTimeout))
	if err == nil {
		grace := time.NewTimer(c.sock.CloseGrace)
		select {
		case <-c.readerDone:
		case <-c.ctx.Done():
		case <-grace.C:
		}
		grace.Stop()
	}
	c.Kill()
}

func (c *Conn) readLoop() {
	defer func() {
		close(c.readerDone)
		c.Kill()
		if c.onClose != nil {
			c.onClose()
		}
	}()
	sock := c.sock
	c.ws.SetReadDeadline(time.Now().Add(sock.PongTimeout))
	c.ws.SetPongHandler(func(string) error {
		return c.ws.SetReadDeadline(time.Now().Add(sock.PongTimeout))
	})
	c.ws.SetPingHandler(c.onPing)
	c.ws.SetCloseHandler(func(code int, _ string) error {
		// Answer the client's close unless ours is already on its way.
		if !c.sentClose.Swap(true) {
			c.ws.WriteControl(websocket.CloseMessage, websocket.FormatCloseMessage(code, ReasonClientClosed), time.Now().Add(sock.WriteTimeout))
		}
		return nil
	})
	for {
		typ, r, err := c.ws.NextReader()
		if err != nil {
			return
		}
		// Reading one byte past the bound tells an oversized message
		// without reading the rest of it. (SetReadLimit's close frame
		// carries no reason.)
		data, err := io.ReadAll(io.LimitReader(r, sock.MaxMessageBytes+1))
		if err != nil {
			return
		}
		if int64(len(data)) > sock.MaxMessageBytes {
			c.closeTooBig()
			return
		}
		c.ws.SetReadDeadline(time.Now().Add(sock.PongTimeout))
		if c.Closing() {
			continue // a close frame is on its way: what follows is not served
		}
		switch {
		case c.utf8 && typ == websocket.TextMessage && !utf8.Valid(data):
			c.Abort(websocket.CloseInvalidFramePayloadData, ReasonInvalidUTF8)
		case !c.rate.Allow():
			c.Abort(websocket.ClosePolicyViolation, ReasonTooManyMessages)
		default:
			c.onMessage(typ, data)
		}
	}
}

// closeTooBig sends 1009 at once from the reader, then discards what the
// client still sends (within CloseGrace, until it closes), so that closing
// with unread data does not reset the connection before the client reads
// the 1009.
func (c *Conn) closeTooBig() {
	c.mu.Lock()
	c.closing = true
	c.mu.Unlock()
	if c.sentClose.Swap(true) {
		return
	}
	if c.ws.WriteControl(websocket.CloseMessage, websocket.FormatCloseMessage(websocket.CloseMessageTooBig, ReasonTooBig), time.Now().Add(c.sock.WriteTimeout)) != nil {
		return
	}
	conn := c.ws.NetConn()
	conn.SetReadDeadline(time.Now().Add(c.sock.CloseGrace))
	io.Copy(io.Discard, conn)
}

// onPing answers a client's ping with a pong. A ping counts against the
// message rate like any message (a client over it is closed with 1008),
// so that control frames cannot make the server write without bound.
func (c *Conn) onPing(data string) error {
	c.ws.SetReadDeadline(time.Now().Add(c.sock.PongTimeout))
	if c.Closing() {
		return nil
	}
	if !c.rate.Allow() {
		c.Abort(websocket.ClosePolicyViolation, ReasonTooManyMessages)
		return nil
	}
	err := c.ws.WriteControl(websocket.PongMessage, []byte(data), time.Now().Add(c.sock.WriteTimeout))
	if errors.Is(err, websocket.ErrCloseSent) {
		return nil
	}
	if ne, ok := err.(net.Error); ok && ne.Timeout() {
		return nil
	}
	return err
}
