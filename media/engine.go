package media

import (
	"context"
	"errors"
	"fmt"
	"net"
	"sync"
	"time"

	"github.com/pion/ice/v4"
	"github.com/pion/interceptor"
	"github.com/pion/logging"
	"github.com/pion/webrtc/v4"

	sserrors "github.com/streamsession/streamsession/errors"
	"github.com/streamsession/streamsession/fsm"
	"github.com/streamsession/streamsession/session"
)

// DefaultUDPAddr is the address of the one UDP port every peer shares when
// Config.UDPAddr is empty: loopback only, any free port (a demo on one
// machine).
const DefaultUDPAddr = "127.0.0.1:0"

// ICEServer is a STUN or TURN server handed to clients (ice_servers2 on the
// wire, the shape of RTCIceServer). It is a plain value.
type ICEServer struct {
	URLs       []string `json:"urls"`
	Username   string   `json:"username,omitempty"`
	Credential string   `json:"credential,omitempty"`
}

// Config configures an Engine; zero fields take the documented defaults. It
// is a plain value; New copies what it needs.
type Config struct {
	// UDPAddr is the one UDP address all peers share (ICE UDP mux). The
	// default is DefaultUDPAddr. A loopback address also restricts the
	// peers to loopback remote candidates.
	UDPAddr string
	// PublicIP, when set, is the address put in the server's candidates in
	// place of UDPAddr's (a node behind a 1:1 NAT).
	PublicIP string
	// ICEServers are handed to clients with every offer (the server's own
	// peers gather host candidates only). The default is none.
	ICEServers []ICEServer
	// Source renders the avatar. The default is SyntheticAvatar().
	Source Source
	// Hooks observe the peers.
	Hooks Hooks

	// Directory, with several nodes, records that this node holds the peers
	// it makes (as NodeURL), so that the other nodes forward a session's
	// start and candidates here. The default (nil) is a single node.
	Directory Directory
	// NodeURL is this node's base URL as the other nodes reach it
	// ("http://10.0.0.5:8080"); required with Directory.
	NodeURL string
	// HoldFor is how long a Directory record lives: a session still
	// without media after it answers no forwarded call. The default is
	// session.DefaultJoinTimeout (5 minutes); set it to the Manager's
	// JoinTimeout.
	HoldFor time.Duration
	// BeatEvery, with a Directory, is how often this node tells it that it
	// is alive (each beat lasts three periods) and looks for the sessions
	// of nodes that stopped beating (killed): those sessions are closed
	// with session.ReasonMediaLost, their peers being gone. The default is
	// DefaultBeatEvery (5 s): a dead node's sessions close within about 20 s.
	BeatEvery time.Duration
	// ClosedGrace is how long the session of a peer the client closed waits
	// for the client's own streaming.stop before it closes with
	// session.ReasonMediaLost: SDK 1.x's stopAvatar closes its peer, then
	// calls stop, and such a session ends with reason stop. A peer that
	// failed closes its session at once. The default is DefaultClosedGrace;
	// negative means no wait.
	ClosedGrace time.Duration
}

// DefaultClosedGrace is Config.ClosedGrace's default.
const DefaultClosedGrace = 2 * time.Second

// DefaultBeatEvery is Config.BeatEvery's default.
const DefaultBeatEvery = 5 * time.Second

// Hooks let a program observe the Engine (metrics, logs, a console) without
// the library logging. Every hook is optional, called synchronously from
// the Engine's goroutines; it must be fast, must not block, must not call
// the Engine, and must be safe for concurrent use. Hooks never receive a
// session id, only its session.ShortHash.
type Hooks struct {
	// PeerState receives every state of every peer.
	PeerState func(sessionHash string, state webrtc.PeerConnectionState)
	// Error receives every failure of work the Engine does on its own
	// goroutines (moving a session when its peer connects or fails,
	// sending a talking event, the Directory's beats); sessionHash is ""
	// for the node's own work (op "beat", "orphans", "claim",
	// "orphan_close").
	Error func(sessionHash string, op string, err error)
}

// Engine owns the WebRTC peers of a Manager's sessions: one peer per
// session, all on one UDP port. Its peers drive their sessions: a peer
// connected (ICE and DTLS up) joins its session (connecting → connected); a
// peer failed, or closed by the client and not stopped within ClosedGrace,
// closes its session with session.ReasonMediaLost; a session closing for any reason closes its
// peer. A peer only disconnected closes nothing. An Engine is safe for
// concurrent use by multiple goroutines.
type Engine struct {
	mgr     *session.Manager
	api     *webrtc.API
	conn    net.PacketConn
	servers []ICEServer
	source  Source
	hooks   Hooks
	unsub   func()
	dir     Directory
	node    string
	holdFor time.Duration
	stop    chan struct{}  // ends beatLoop
	loop    sync.WaitGroup // beatLoop
	grace   time.Duration  // Config.ClosedGrace

	mu       sync.Mutex
	peers    map[string]*peer
	closed   bool
	draining bool
	gone     chan struct{}         // a token when a peer was forgotten (for Drain)
	pending  map[*peer]*time.Timer // peers closed by their client, in ClosedGrace
	wg       sync.WaitGroup
}

// New opens the shared UDP port and returns an Engine for mgr's sessions.
// It fails when UDPAddr cannot be bound or PublicIP is not an IP address.
// Close releases the port and every peer.
func New(mgr *session.Manager, cfg Config) (*Engine, error) {
	if mgr == nil {
		return nil, errors.New("media: a session.Manager is required")
	}
	if cfg.UDPAddr == "" {
		cfg.UDPAddr = DefaultUDPAddr
	}
	if cfg.PublicIP != "" && net.ParseIP(cfg.PublicIP) == nil {
		return nil, fmt.Errorf("media: Config.PublicIP %q is not an IP address", cfg.PublicIP)
	}
	if cfg.Source == nil {
		cfg.Source = SyntheticAvatar()
	}
	if cfg.Directory != nil && cfg.NodeURL == "" {
		return nil, errors.New("media: Config.NodeURL is required with a Directory")
	}
	if cfg.HoldFor <= 0 {
		cfg.HoldFor = session.DefaultJoinTimeout
	}
	if cfg.BeatEvery <= 0 {
		cfg.BeatEvery = DefaultBeatEvery
	}
	if cfg.ClosedGrace == 0 {
		cfg.ClosedGrace = DefaultClosedGrace
	}
	conn, err := net.ListenPacket("udp4", cfg.UDPAddr)
	if err != nil {
		return nil, fmt.Errorf("media: Config.UDPAddr: %w", err)
	}
	api, err := newAPI(conn, cfg.PublicIP)
	if err != nil {
		conn.Close()
		return nil, err
	}
	e := &Engine{
		mgr:     mgr,
		api:     api,
		conn:    conn,
		servers: append([]ICEServer{}, cfg.ICEServers...),
		source:  cfg.Source,
		hooks:   cfg.Hooks,
		peers:   make(map[string]*peer),
		gone:    make(chan struct{}, 1),
		dir:     cfg.Directory,
		node:    cfg.NodeURL,
		holdFor: cfg.HoldFor,
		grace:   cfg.ClosedGrace,
		pending: make(map[*peer]*time.Timer),
	}
	e.unsub = mgr.Subscribe(e.onSession)
	if e.dir != nil {
		e.stop = make(chan struct{})
		e.loop.Add(1)
		go e.beatLoop(cfg.BeatEvery)
	}
	return e, nil
}

// beatLoop tells the Directory that this node is alive and closes the
// sessions of the nodes that are not, until Close.
func (e *Engine) beatLoop(every time.Duration) {
	defer e.loop.Done()
	t := time.NewTicker(every)
	defer t.Stop()
	for {
		ctx, cancel := context.WithTimeout(context.Background(), every)
		if err := e.dir.Beat(ctx, e.node, 3*every); err != nil {
			e.failNode("beat", err)
		}
		orphans, err := e.dir.Orphans(ctx)
		if err != nil {
			e.failNode("orphans", err)
		}
		for _, h := range orphans {
			if e.Has(h.SessionID) {
				// This node's beat lapsed (a slow Directory), yet it holds
				// the peer: record it again.
				if err := e.dir.Claim(ctx, Held{SessionID: h.SessionID, Account: h.Account, Node: e.node}, e.holdFor); err != nil {
					e.failNode("claim", err)
				}
				continue
			}
			if _, err := e.mgr.StopWithReason(ctx, h.Account, h.SessionID, session.ReasonMediaLost); err != nil && !isStateError(err) {
				e.failNode("orphan_close", err)
			}
		}
		cancel()
		select {
		case <-e.stop:
			return
		case <-t.C:
		}
	}
}

func (e *Engine) failNode(op string, err error) {
	if e.hooks.Error != nil {
		e.hooks.Error("", op, err)
	}
}

// newAPI builds the pion API every peer is made with: VP8 and Opus only,
// NACK and RTCP reports, host candidates on the shared UDP port, no mDNS,
// no logging.
func newAPI(conn net.PacketConn, publicIP string) (*webrtc.API, error) {
	m := &webrtc.MediaEngine{}
	if err := m.RegisterCodec(webrtc.RTPCodecParameters{
		RTPCodecCapability: webrtc.RTPCodecCapability{MimeType: webrtc.MimeTypeVP8, ClockRate: 90000},
		PayloadType:        96,
	}, webrtc.RTPCodecTypeVideo); err != nil {
		return nil, err
	}
	if err := m.RegisterCodec(webrtc.RTPCodecParameters{
		RTPCodecCapability: webrtc.RTPCodecCapability{MimeType: webrtc.MimeTypeOpus, ClockRate: 48000, Channels: 2, SDPFmtpLine: "minptime=10;useinbandfec=1"},
		PayloadType:        111,
	}, webrtc.RTPCodecTypeAudio); err != nil {
		return nil, err
	}
	ir := &interceptor.Registry{}
	if err := webrtc.ConfigureNack(m, ir); err != nil {
		return nil, err
	}
	if err := webrtc.ConfigureRTCPReports(ir); err != nil {
		return nil, err
	}
	se := webrtc.SettingEngine{LoggerFactory: &logging.DefaultLoggerFactory{DefaultLogLevel: logging.LogLevelDisabled}}
	se.SetICEUDPMux(webrtc.NewICEUDPMux(se.LoggerFactory.NewLogger("ice"), conn))
	se.SetNetworkTypes([]webrtc.NetworkType{webrtc.NetworkTypeUDP4})
	se.SetICEMulticastDNSMode(ice.MulticastDNSModeDisabled)
	// A browser's checks usually arrive before its trickled candidates: the
	// pair they make (peer-reflexive) is nominated at once instead of after
	// pion's default second of waiting for a better one; the server has
	// host candidates only, so there is none.
	se.SetPrflxAcceptanceMinWait(0)
	if ip := conn.LocalAddr().(*net.UDPAddr).IP; ip.IsLoopback() {
		se.SetIncludeLoopbackCandidate(true)
		se.SetRemoteIPFilter(func(ip net.IP) bool { return ip.IsLoopback() })
	}
	if publicIP != "" {
		se.SetNAT1To1IPs([]string{publicIP}, webrtc.ICECandidateTypeHost)
	}
	return webrtc.NewAPI(webrtc.WithMediaEngine(m), webrtc.WithInterceptorRegistry(ir), webrtc.WithSettingEngine(se)), nil
}

// UDPAddr returns the address of the shared UDP port.
func (e *Engine) UDPAddr() net.Addr { return e.conn.LocalAddr() }

// ICEServers returns the servers handed to clients, never nil.
func (e *Engine) ICEServers() []ICEServer { return append([]ICEServer{}, e.servers...) }

// Offer makes the peer of a session just created (state new) and returns
// its offer, every candidate gathered. The peer lives until the session
// closes (the join timeout closes a session whose offer is never answered),
// Release, or Close. An Offer for a session that already has a peer
// returns that peer's offer.
func (e *Engine) Offer(ctx context.Context, account, id string) (webrtc.SessionDescription, error) {
	e.mu.Lock()
	if e.closed || e.draining {
		e.mu.Unlock()
		return webrtc.SessionDescription{}, errEngineClosed
	}
	if p := e.peers[id]; p != nil {
		e.mu.Unlock()
		if p.account != account {
			return webrtc.SessionDescription{}, sserrors.ErrSessionNotFound
		}
		return p.offer, nil
	}
	e.mu.Unlock()

	p, err := e.newPeer(ctx, account, id)
	if err != nil {
		return webrtc.SessionDescription{}, err
	}
	e.mu.Lock()
	if e.closed || e.peers[id] != nil {
		e.mu.Unlock()
		p.close()
		return webrtc.SessionDescription{}, errEngineClosed
	}
	e.peers[id] = p
	e.mu.Unlock()
	// The session may have closed while the offer was made: its event was
	// then seen before the peer was known.
	if info, err := e.mgr.Get(ctx, account, id); err != nil || !info.State.Open() {
		e.drop(id)
		if err == nil {
			err = sserrors.SessionState(info.State.String())
		}
		return webrtc.SessionDescription{}, err
	}
	if e.dir != nil {
		if err := e.dir.Claim(ctx, Held{SessionID: id, Account: account, Node: e.node}, e.holdFor); err != nil {
			e.drop(id)
			return webrtc.SessionDescription{}, sserrors.ErrBackendUnavailable.WithCause(err)
		}
	}
	return p.offer, nil
}

// Holder returns the base URL of the node holding the session's peer when
// it is another node (with a Directory), and "" when it is this one or
// none. A Directory failure is 503/400558.
func (e *Engine) Holder(ctx context.Context, id string) (string, error) {
	if e.dir == nil || e.Has(id) {
		return "", nil
	}
	node, err := e.dir.Holder(ctx, id)
	if err != nil {
		return "", sserrors.ErrBackendUnavailable.WithCause(err)
	}
	if node == e.node {
		return "", nil
	}
	return node, nil
}

// Has reports whether the session has a peer on this Engine.
func (e *Engine) Has(id string) bool {
	e.mu.Lock()
	defer e.mu.Unlock()
	return e.peers[id] != nil
}

// PeerState returns the state of the session's peer, and false when it has
// none.
func (e *Engine) PeerState(id string) (webrtc.PeerConnectionState, bool) {
	p := e.get(id)
	if p == nil {
		return 0, false
	}
	return p.pc.ConnectionState(), true
}

func (e *Engine) get(id string) *peer {
	e.mu.Lock()
	defer e.mu.Unlock()
	return e.peers[id]
}

// Start answers the session's offer (streaming.start with sdp): it applies
// the client's answer and the candidates received before it, then moves the
// session to connecting (Manager.Start); the session becomes connected only
// when the peer does. It fails, changing nothing, with 10006 for a session
// without a peer here or of another account, with the state's error when
// the session is not new, and with 400175 when the answer does not fit the
// offer.
func (e *Engine) Start(ctx context.Context, account, id string, answer webrtc.SessionDescription) (session.Info, error) {
	p := e.get(id)
	if p == nil || p.account != account {
		return session.Info{}, sserrors.ErrSessionNotFound
	}
	info, err := e.mgr.Get(ctx, account, id)
	if err != nil {
		return session.Info{}, err
	}
	if err := fsm.Allow(info.State, fsm.CmdStart); err != nil {
		return session.Info{}, err
	}
	if err := p.answer(answer); err != nil {
		return session.Info{}, err
	}
	info, err = e.mgr.Start(ctx, account, id)
	if err != nil {
		return session.Info{}, err // the session moved meanwhile; its close ends the peer
	}
	p.started()
	return info, nil
}

// AddCandidate adds a client candidate (streaming.ice) to the session's
// peer: applied at once after Start, kept until Start before it. An
// end-of-candidates (empty candidate) is accepted. It fails with 10006 for
// a session without a peer here or of another account, and with 400175 for
// a candidate that does not parse or does not fit the offer.
func (e *Engine) AddCandidate(account, id string, c webrtc.ICECandidateInit) error {
	p := e.get(id)
	if p == nil || p.account != account {
		return sserrors.ErrSessionNotFound
	}
	if err := checkCandidate(c); err != nil {
		return err
	}
	return p.addCandidate(c)
}

// Release closes the session's peer without touching the session (a start
// without an answer: the session is then connected by its realtime socket,
// as without media). It does nothing when the session has no peer.
func (e *Engine) Release(id string) { e.drop(id) }

// Say tells the session's peer that the avatar speaks task taskID for d:
// the data channel carries avatar_start_talking now and
// avatar_stop_talking after d, and the Source plays its talking media
// meanwhile. A task spoken while another is ends the other first. It does
// nothing when the session has no connected peer here.
func (e *Engine) Say(id, taskID string, d time.Duration) {
	if p := e.get(id); p != nil {
		p.say(taskID, d)
	}
}

// Hush cuts the session's speech (interrupt): avatar_stop_talking with the
// time spoken, and idle media. It does nothing when nothing is spoken.
func (e *Engine) Hush(id string) {
	if p := e.get(id); p != nil {
		p.hush()
	}
}

// Close closes every peer and the shared UDP port, and stops following
// the Manager. It changes no session: close the Manager first to close them
// (reason shutdown). Calling it again does nothing.
func (e *Engine) Close() error {
	e.mu.Lock()
	if e.closed {
		e.mu.Unlock()
		e.wg.Wait()
		return nil
	}
	e.closed = true
	peers := e.peers
	e.peers = map[string]*peer{}
	for p, t := range e.pending {
		t.Stop() // their sessions close with the Manager, or by their timers
		delete(e.pending, p)
	}
	e.mu.Unlock()
	e.unsub()
	if e.stop != nil {
		close(e.stop)
		e.loop.Wait()
	}
	for _, p := range peers {
		p.close()
		e.release(p)
	}
	e.wg.Wait()
	return e.conn.Close()
}

// forgotten wakes Drain. e.mu is held.
func (e *Engine) forgotten() {
	select {
	case e.gone <- struct{}{}:
	default:
	}
}

// Drain takes this node's media out of a service of several nodes before
// it stops: it refuses new offers (503/400558), waits for the sessions whose
// peers are here to end, and when ctx ends first closes those left with
// session.ReasonShutdown, since a peer connection cannot move to another
// node. It returns nil when every peer had ended, else ctx.Err() once the
// rest are closed. Call it before Manager.Leave; Close still releases the
// port.
func (e *Engine) Drain(ctx context.Context) error {
	e.mu.Lock()
	e.draining = true
	e.mu.Unlock()
	for {
		e.mu.Lock()
		left := make([]*peer, 0, len(e.peers))
		for _, p := range e.peers {
			left = append(left, p)
		}
		e.mu.Unlock()
		if len(left) == 0 {
			return nil
		}
		select {
		case <-e.gone:
			continue
		case <-ctx.Done():
		}
		closeCtx := context.WithoutCancel(ctx)
		for _, p := range left {
			if _, err := e.mgr.StopWithReason(closeCtx, p.account, p.id, session.ReasonShutdown); err != nil && !isStateError(err) {
				e.fail(p, "drain", err)
			}
		}
		return ctx.Err()
	}
}

// onSession closes the peer of a session that is closing or closed.
func (e *Engine) onSession(ev session.Event) {
	if ev.To == fsm.Closing || ev.To == fsm.Closed {
		e.drop(ev.SessionID)
	}
}

// drop forgets the session's peer and closes it in the background (a
// close waits for pion's goroutines). A peer its client closed, waiting
// for the client's stop (ClosedGrace), is forgotten without a loss.
func (e *Engine) drop(id string) {
	e.mu.Lock()
	p := e.peers[id]
	if p == nil {
		e.mu.Unlock()
		return
	}
	delete(e.peers, id)
	e.forgotten()
	if t, ok := e.pending[p]; ok {
		t.Stop()
		delete(e.pending, p)
	}
	p.markClosing()
	e.wg.Add(1)
	e.mu.Unlock()
	go func() {
		defer e.wg.Done()
		p.close()
		e.release(p)
	}()
}

// release forgets the Directory record of a peer that closed.
func (e *Engine) release(p *peer) {
	if e.dir == nil {
		return
	}
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	if err := e.dir.Release(ctx, p.id, e.node); err != nil {
		e.fail(p, "release", err)
	}
}

// closedByClient closes the session of a peer the client closed, after
// ClosedGrace unless the session closed meanwhile (the client's stop).
func (e *Engine) closedByClient(p *peer) {
	if e.grace < 0 {
		e.lost(p)
		return
	}
	p.close()
	e.mu.Lock()
	defer e.mu.Unlock()
	if e.closed {
		return
	}
	e.pending[p] = time.AfterFunc(e.grace, func() {
		e.mu.Lock()
		_, ok := e.pending[p]
		delete(e.pending, p)
		e.mu.Unlock()
		if ok {
			e.lost(p)
		}
	})
}

// lost closes the session of a peer that failed or that the client closed.
func (e *Engine) lost(p *peer) {
	e.mu.Lock()
	if e.peers[p.id] == p {
		delete(e.peers, p.id)
		e.forgotten()
	}
	e.mu.Unlock()
	ctx := context.Background()
	if _, err := e.mgr.StopWithReason(ctx, p.account, p.id, session.ReasonMediaLost); err != nil && !isStateError(err) {
		e.fail(p, "close", err)
	}
	p.close()
	e.release(p)
}

func (e *Engine) fail(p *peer, op string, err error) {
	if e.hooks.Error != nil {
		e.hooks.Error(session.ShortHash(p.id), op, err)
	}
}

// isStateError reports whether err says the session had already moved on
// (closing, closed, forgotten): a race lost, not a failure.
func isStateError(err error) bool {
	switch sserrors.CodeOf(err) {
	case sserrors.CodeSessionStateClosing, sserrors.CodeSessionStateClosed, sserrors.CodeSessionNotFound:
		return true
	}
	// A Manager shutting down is a race lost too; a backend outage
	// (also 400558, so errors.Is(err, session.ErrClosed)) is not.
	return errors.Is(err, session.ErrManagerClosed)
}

var errEngineClosed = sserrors.ErrBackendUnavailable.WithCause(errors.New("media: engine closed"))
