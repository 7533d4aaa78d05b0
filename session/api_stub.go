package session

// TEMPORARY: the exported API of session/, bodies to be implemented.

import (
	"context"
	"time"

	"github.com/streamsession/streamsession/fsm"
	"github.com/streamsession/streamsession/limits"
)

// Account is the tenant a session belongs to.
type Account struct {
	Name string
	Plan limits.Plan
}

// Avatar is an avatar a session can stream.
type Avatar struct {
	ID           string
	Owner        string // account name; empty for a public avatar
	Public       bool
	Active       bool
	Default      bool
	DefaultVoice string // empty when none is configured
}

// AvatarCatalog resolves avatars. Implementations are safe for concurrent use.
type AvatarCatalog interface {
	// Resolve returns the avatar account may use for id ("" means the
	// default avatar): 10012 when unknown, 10013 when another account's
	// private avatar or inactive.
	Resolve(ctx context.Context, account, id string) (Avatar, error)
	// List returns the avatars account may see (public ones and its own).
	List(ctx context.Context, account string) ([]Avatar, error)
}

// Avatars is an AvatarCatalog over a fixed list.
type Avatars []Avatar

func (a Avatars) Resolve(ctx context.Context, account, id string) (Avatar, error) {
	panic("unimplemented")
}
func (a Avatars) List(ctx context.Context, account string) ([]Avatar, error) {
	panic("unimplemented")
}

// Reason says what moved a session to closing/closed.
type Reason int

const (
	ReasonNone     Reason = iota
	ReasonStop            // streaming.stop
	ReasonIdle            // idle timeout
	ReasonDuration        // session duration limit
	ReasonJoin            // join timeout
	ReasonShutdown        // Manager.Close
)

func (r Reason) String() string { panic("unimplemented") }

// CreateOptions are the session settings from streaming.new.
type CreateOptions struct {
	AvatarID string
	// IdleTimeout is activity_idle_timeout: zero means the default (120 s);
	// outside 30 s–3600 s Create fails with 400175.
	IdleTimeout        time.Duration
	DisableIdleTimeout bool
}

// Info is a snapshot of one session.
type Info struct {
	ID                 string
	Account            string
	AvatarID           string
	State              fsm.State
	Epoch              uint64 // grows by one per transition
	Paid               bool
	CreatedAt          time.Time
	StartedAt          time.Time // zero until started
	ClosedAt           time.Time // zero until closed
	IdleTimeout        time.Duration
	DisableIdleTimeout bool
	DurationLimit      time.Duration // the plan's; 0 when none
	Reason             Reason        // why it closed
}

// Event is one transition, as subscribers see it.
type Event struct {
	SessionID string
	Account   string
	From, To  fsm.State
	Epoch     uint64
	At        time.Time
	Reason    Reason
}

// Config configures a Manager; zero fields take the documented defaults.
type Config struct {
	Limiter     limits.Limiter // required
	Avatars     AvatarCatalog  // required
	JoinTimeout time.Duration  // default 5 minutes
	Retention   time.Duration  // default 10 minutes
}

// Manager runs sessions. Safe for concurrent use by multiple goroutines.
type Manager struct{}

func NewManager(cfg Config) (*Manager, error) { panic("unimplemented") }

func (m *Manager) Create(ctx context.Context, acct Account, opts CreateOptions) (Info, error) {
	panic("unimplemented")
}
func (m *Manager) Get(ctx context.Context, account, id string) (Info, error) { panic("unimplemented") }
func (m *Manager) List(ctx context.Context, account string) ([]Info, error)  { panic("unimplemented") }
func (m *Manager) Start(ctx context.Context, account, id string) (Info, error) {
	panic("unimplemented")
}
func (m *Manager) Join(ctx context.Context, account, id string) (Info, error) {
	panic("unimplemented")
}
func (m *Manager) Command(ctx context.Context, account, id string, cmd fsm.Command) (Info, error) {
	panic("unimplemented")
}
func (m *Manager) Touch(ctx context.Context, account, id string) error { panic("unimplemented") }
func (m *Manager) Stop(ctx context.Context, account, id string) (Info, error) {
	panic("unimplemented")
}
func (m *Manager) Subscribe(fn func(Event)) (cancel func()) { panic("unimplemented") }
func (m *Manager) Close(ctx context.Context) error          { panic("unimplemented") }

// Guard is a client's view of one remote session.
type Guard struct{}

func (g *Guard) Observe(s fsm.State)         { panic("unimplemented") }
func (g *Guard) State() fsm.State            { panic("unimplemented") }
func (g *Guard) Check(cmd fsm.Command) error { panic("unimplemented") }
