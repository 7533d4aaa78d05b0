package session

import (
	"context"
	"flag"
	"fmt"
	"slices"
	"strconv"
	"sync"
	"testing"
	"time"

	"testing/synctest"

	"pgregory.net/rapid"

	sserrors "github.com/streamsession/streamsession/errors"
	"github.com/streamsession/streamsession/fsm"
	"github.com/streamsession/streamsession/limits"
)

// atLeastChecks raises rapid's number of checks to n for one test unless
// -rapid.checks was given on the command line.
func atLeastChecks(t *testing.T, n int) {
	set := false
	flag.Visit(func(f *flag.Flag) { set = set || f.Name == "rapid.checks" })
	if set {
		return
	}
	f := flag.Lookup("rapid.checks")
	old := f.Value.String()
	if cur, _ := strconv.Atoi(old); cur >= n {
		return
	}
	if err := f.Value.Set(strconv.Itoa(n)); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = f.Value.Set(old) })
}

// The model: a plain description of what the Manager must do, written
// independently of it (no Store, no fsm.Machine, no heap).

var modelPlans = map[string]limits.Plan{
	"a": {Name: "pro", MaxConcurrent: 3},
	"b": {Name: "trial", MaxConcurrent: 2, Trial: true, MonthlyMinutes: 300, SessionDurationLimit: 600 * time.Second},
}

const (
	modelCapacity  = 4
	modelJoin      = 5 * time.Minute
	modelRetention = 10 * time.Minute
)

type modelSession struct {
	id, account                        string
	state                              fsm.State // fsm.Unknown once forgotten
	created, started, closed, activity time.Time
	idle                               time.Duration
	disableIdle                        bool
	durationLimit                      time.Duration
	reason                             Reason
	epoch                              uint64
	history                            []fsm.State // every To, in order
}

func (s *modelSession) move(to fsm.State) {
	s.state = to
	s.epoch++
	s.history = append(s.history, to)
}

// deadline returns the session's next timer, as docs/wire.md describes it.
func (s *modelSession) deadline() (time.Time, Reason, bool) {
	type cand struct {
		at     time.Time
		reason Reason
	}
	var cs []cand // in tie-break order: join, duration, idle
	switch s.state {
	case fsm.New, fsm.Connecting:
		cs = append(cs, cand{s.created.Add(modelJoin), ReasonJoin})
	}
	if (s.state == fsm.Connecting || s.state == fsm.Connected) && s.durationLimit > 0 {
		cs = append(cs, cand{s.started.Add(s.durationLimit), ReasonDuration})
	}
	if s.state == fsm.Connected && !s.disableIdle {
		cs = append(cs, cand{s.activity.Add(s.idle), ReasonIdle})
	}
	if s.state == fsm.Closed {
		cs = append(cs, cand{s.closed.Add(modelRetention), ReasonNone})
	}
	if len(cs) == 0 {
		return time.Time{}, ReasonNone, false
	}
	best := cs[0]
	for _, c := range cs[1:] {
		if c.at.Before(best.at) {
			best = c
		}
	}
	return best.at, best.reason, true
}

type model struct {
	now      time.Time
	sessions []*modelSession
}

func (m *model) holding(account string) int {
	n := 0
	for _, s := range m.sessions {
		if s.state >= fsm.New && s.state < fsm.Closed && (account == "" || s.account == account) {
			n++
		}
	}
	return n
}

func (m *model) closeAt(s *modelSession, at time.Time, reason Reason) {
	s.move(fsm.Closing)
	s.move(fsm.Closed)
	s.closed, s.reason = at, reason
}

// advance moves time to to, firing every timer due by then in order.
func (m *model) advance(to time.Time) {
	for {
		var (
			next   *modelSession
			at     time.Time
			reason Reason
		)
		for _, s := range m.sessions {
			if d, r, ok := s.deadline(); ok && !d.After(to) && (next == nil || d.Before(at)) {
				next, at, reason = s, d, r
			}
		}
		if next == nil {
			break
		}
		if next.state == fsm.Closed {
			next.move(fsm.Unknown) // forgotten
		} else {
			m.closeAt(next, at, reason)
		}
	}
	m.now = to
}

// stateCode is the code a call gets on a session in state s when the call
// is not allowed there.
func stateCode(s fsm.State) sserrors.Code {
	if s == fsm.Unknown {
		return sserrors.CodeSessionNotFound
	}
	return sserrors.Code(10000 + int(s))
}

// allowed is the command policy of docs/wire.md, written out again.
func allowed(s fsm.State, cmd fsm.Command) bool {
	switch cmd {
	case fsm.CmdStart:
		return s == fsm.New
	case fsm.CmdICE:
		return s == fsm.New || s == fsm.Connecting
	case fsm.CmdStop:
		return s == fsm.New || s == fsm.Connecting || s == fsm.Connected
	}
	return s == fsm.Connected
}

// modelMachine drives a Manager and the model side by side.
type modelMachine struct {
	m   *Manager
	lim *fakeLimiter
	log *eventLog
	mod *model
	ctx context.Context
}

func (mm *modelMachine) pick(t *rapid.T) (account, id string, s *modelSession) {
	n := len(mm.mod.sessions)
	i := rapid.IntRange(0, n+1).Draw(t, "session")
	switch {
	case i < n:
		s = mm.mod.sessions[i]
		return s.account, s.id, s
	case i == n || n == 0:
		return "a", "ffffffffffffffffffffffffffffffff", nil
	default:
		s = mm.mod.sessions[rapid.IntRange(0, n-1).Draw(t, "foreign")]
		return map[string]string{"a": "b", "b": "a"}[s.account], s.id, nil // another account's: unknown to it
	}
}

func (mm *modelMachine) expectCode(t *rapid.T, what string, err error, want sserrors.Code) {
	if got := codeOf(err); got != want {
		t.Fatalf("%s = %v (code %d), want code %d", what, err, got, want)
	}
}

func (mm *modelMachine) create(t *rapid.T) {
	account := rapid.SampledFrom([]string{"a", "b"}).Draw(t, "account")
	idle := rapid.SampledFrom([]time.Duration{0, 30 * time.Second, 45 * time.Second, time.Hour, 10 * time.Second, 4000 * time.Second}).Draw(t, "idle")
	disable := rapid.Bool().Draw(t, "disableIdle")
	avatar := rapid.SampledFrom([]string{"", "Wayne_20240711", "nobody", "retired"}).Draw(t, "avatar")
	info, err := mm.m.Create(mm.ctx, Account{Name: account, Plan: modelPlans[account]}, CreateOptions{AvatarID: avatar, IdleTimeout: idle, DisableIdleTimeout: disable})

	var want sserrors.Code
	switch {
	case idle != 0 && (idle < 30*time.Second || idle > time.Hour):
		want = sserrors.CodeInvalidParameter
	case avatar == "nobody":
		want = sserrors.CodeStreamingAvatarNotFound
	case avatar == "retired":
		want = sserrors.CodeAvatarNotAllowed
	case mm.mod.holding(account) >= modelPlans[account].MaxConcurrent:
		want = sserrors.CodeConcurrentLimitReached
	case mm.mod.holding("") >= modelCapacity:
		want = sserrors.CodeSessionFull
	}
	mm.expectCode(t, "Create", err, want)
	if want != 0 {
		return
	}
	if idle == 0 {
		idle = DefaultIdleTimeout
	}
	s := &modelSession{id: info.ID, account: account, state: fsm.New, created: mm.mod.now, idle: idle,
		disableIdle: disable, durationLimit: modelPlans[account].SessionDurationLimit, epoch: 1, history: []fsm.State{fsm.New}}
	mm.mod.sessions = append(mm.mod.sessions, s)
	mm.compare(t, s, info)
}

// do runs one call on a picked session and checks it against the model.
func (mm *modelMachine) do(t *rapid.T, call string) {
	account, id, s := mm.pick(t)
	state := fsm.Unknown
	if s != nil {
		state = s.state
	}
	now := mm.mod.now
	var (
		info Info
		err  error
		want sserrors.Code
	)
	switch call {
	case "start":
		info, err = mm.m.Start(mm.ctx, account, id)
		if !allowed(state, fsm.CmdStart) {
			want = stateCode(state)
		} else {
			s.move(fsm.Connecting)
			s.started = now
		}
	case "join":
		info, err = mm.m.Join(mm.ctx, account, id)
		switch state {
		case fsm.Connecting:
			s.move(fsm.Connected)
			s.activity = now
		case fsm.Connected:
			s.activity = now
		default:
			want = stateCode(state)
		}
	case "touch":
		err = mm.m.Touch(mm.ctx, account, id)
		if state == fsm.Connected {
			s.activity = now
		} else {
			want = stateCode(state)
		}
	case "stop":
		info, err = mm.m.Stop(mm.ctx, account, id)
		if !allowed(state, fsm.CmdStop) {
			want = stateCode(state)
		} else {
			mm.mod.closeAt(s, now, ReasonStop)
		}
	case "command":
		cmd := rapid.SampledFrom([]fsm.Command{fsm.CmdICE, fsm.CmdTask, fsm.CmdInterrupt, fsm.CmdKeepAlive, fsm.CmdStartListening, fsm.CmdStopListening}).Draw(t, "cmd")
		info, err = mm.m.Command(mm.ctx, account, id, cmd)
		switch {
		case !allowed(state, cmd):
			want = stateCode(state)
		case cmd == fsm.CmdTask || cmd == fsm.CmdKeepAlive || cmd == fsm.CmdInterrupt:
			s.activity = now
		}
	case "get":
		info, err = mm.m.Get(mm.ctx, account, id)
		if state == fsm.Unknown {
			want = sserrors.CodeSessionNotFound
		}
	}
	mm.expectCode(t, call, err, want)
	if want == 0 && call != "touch" {
		mm.compare(t, s, info)
	}
}

// compare checks an Info against the model's session.
func (mm *modelMachine) compare(t *rapid.T, s *modelSession, got Info) {
	want := Info{
		ID: s.id, Account: s.account, AvatarID: "Wayne_20240711", State: s.state, Epoch: s.epoch,
		Paid: !modelPlans[s.account].Trial, PlanName: modelPlans[s.account].Name, CreatedAt: s.created, StartedAt: s.started, ClosedAt: s.closed,
		LastActivity: s.activity, IdleTimeout: s.idle, DisableIdleTimeout: s.disableIdle,
		DurationLimit: s.durationLimit, Reason: s.reason,
	}
	if !equalInfo(want, got) {
		t.Fatalf("session %s:\n got %+v\nwant %+v", s.id[:8], got, want)
	}
}

func equalInfo(a, b Info) bool {
	times := [][2]time.Time{{a.CreatedAt, b.CreatedAt}, {a.StartedAt, b.StartedAt}, {a.ClosedAt, b.ClosedAt}, {a.LastActivity, b.LastActivity}}
	for _, p := range times {
		if !p[0].Equal(p[1]) {
			return false
		}
	}
	a.CreatedAt, a.StartedAt, a.ClosedAt, a.LastActivity = time.Time{}, time.Time{}, time.Time{}, time.Time{}
	b.CreatedAt, b.StartedAt, b.ClosedAt, b.LastActivity = time.Time{}, time.Time{}, time.Time{}, time.Time{}
	return a == b
}

func (mm *modelMachine) advance(t *rapid.T) {
	d := rapid.SampledFrom([]time.Duration{time.Second, 10 * time.Second, 29 * time.Second, 30 * time.Second,
		45 * time.Second, time.Minute, 119 * time.Second, 2 * time.Minute, 299 * time.Second, 5 * time.Minute,
		10 * time.Minute, 601 * time.Second}).Draw(t, "advance")
	time.Sleep(d)
	synctest.Wait()
	mm.mod.advance(mm.mod.now.Add(d))
}

func (mm *modelMachine) list(t *rapid.T) {
	account := rapid.SampledFrom([]string{"a", "b"}).Draw(t, "account")
	got, err := mm.m.List(mm.ctx, account)
	if err != nil {
		t.Fatal(err)
	}
	var want []string
	for _, s := range mm.mod.sessions { // in creation order
		if s.account == account && s.state.Open() {
			want = append(want, s.id)
		}
	}
	var ids []string
	for _, i := range got {
		ids = append(ids, i.ID)
	}
	if !slices.Equal(want, ids) {
		t.Fatalf("List(%s) = %v, want %v", account, ids, want)
	}
}

// check holds after every action: every session is where the model says,
// and the limiter holds exactly the slots of the sessions not closed.
func (mm *modelMachine) check(t *rapid.T) {
	held := 0
	for _, s := range mm.mod.sessions {
		info, err := mm.m.Get(mm.ctx, s.account, s.id)
		if s.state == fsm.Unknown {
			mm.expectCode(t, "Get (forgotten)", err, sserrors.CodeSessionNotFound)
		} else {
			mm.expectCode(t, "Get", err, 0)
			mm.compare(t, s, info)
		}
		if holds := mm.lim.holds(s.id); holds != (s.state >= fsm.New && s.state < fsm.Closed) {
			t.Fatalf("session %s in %s: limiter holds its slot = %v", s.id[:8], s.state, holds)
		}
		if s.state >= fsm.New && s.state < fsm.Closed {
			held++
		}
		if n := mm.lim.releaseCount(s.id); n > 1 {
			t.Fatalf("session %s released %d times", s.id[:8], n)
		}
	}
	if got := mm.lim.heldCount(); got != held {
		t.Fatalf("limiter holds %d slots, want %d", got, held)
	}
}

// finish closes the manager and checks every session's events against the
// model's history (plus the shutdown of those still open).
func (mm *modelMachine) finish(t *rapid.T) {
	if err := mm.m.Close(mm.ctx); err != nil {
		t.Fatal(err)
	}
	for _, s := range mm.mod.sessions {
		if s.state.Open() {
			mm.mod.closeAt(s, mm.mod.now, ReasonShutdown)
		}
		var got []fsm.State
		for i, e := range mm.log.of(s.id) {
			if e.Epoch != uint64(i+1) {
				t.Fatalf("session %s: event %d has epoch %d", s.id[:8], i, e.Epoch)
			}
			got = append(got, e.To)
		}
		if !slices.Equal(s.history, got) {
			t.Fatalf("session %s: events %v, want %v", s.id[:8], got, s.history)
		}
		if s.state != fsm.Unknown && mm.lim.releaseCount(s.id) != 1 {
			t.Fatalf("session %s released %d times, want once", s.id[:8], mm.lim.releaseCount(s.id))
		}
	}
	if n := mm.lim.heldCount(); n != 0 {
		t.Fatalf("%d slots held after Close", n)
	}
}

func runModel(t *rapid.T, storeCfg MemoryStoreConfig) {
	lim := newFakeLimiter(modelCapacity)
	m, err := NewManager(Config{Limiter: lim, Avatars: testAvatars, JoinTimeout: modelJoin, Retention: modelRetention,
		Store: NewMemoryStore(storeCfg)})
	if err != nil {
		t.Fatal(err)
	}
	log := &eventLog{}
	m.Subscribe(log.add)
	mm := &modelMachine{m: m, lim: lim, log: log, mod: &model{now: time.Now()}, ctx: context.Background()}
	actions := map[string]func(*rapid.T){
		"":        mm.check,
		"create":  mm.create,
		"advance": mm.advance,
		"list":    mm.list,
	}
	for _, call := range []string{"start", "join", "touch", "stop", "command", "get"} {
		actions[call] = func(t *rapid.T) { mm.do(t, call) }
	}
	defer func() {
		if !t.Failed() {
			mm.finish(t)
		} else {
			_ = m.Close(context.Background())
		}
	}()
	t.Repeat(actions)
}

// TestManagerAgainstModel is the model-based property test: random
// creations, calls, activity and time jumps (firing every timer) against a
// plain model of docs/wire.md, comparing states, codes, times, slots and events.
// It runs 10,000 sequences on each kind of MemoryStore unless -rapid.checks
// says otherwise.
func TestManagerAgainstModel(t *testing.T) {
	atLeastChecks(t, 10000)
	for name, cfg := range map[string]MemoryStoreConfig{
		"table":    {},
		"machines": {MachinePerSession: true},
	} {
		t.Run(name, func(t *testing.T) {
			rapid.Check(t, func(t *rapid.T) {
				rapid.SyncTest(t, func(t *rapid.T) { runModel(t, cfg) })
			})
		})
	}
}

// TestManagerAgainstModelConcurrent: several goroutines, each with its own
// account and model, drive their sessions at once (real time, timers too
// long to fire), while all of them also race on one shared session; every
// goroutine's answers match its model, and the shared session goes forward
// through each state once and releases its slot once.
func TestManagerAgainstModelConcurrent(t *testing.T) {
	rapid.Check(t, func(t *rapid.T) {
		type step struct {
			call string
			pick int
			cmd  fsm.Command
		}
		workers := rapid.IntRange(2, 6).Draw(t, "workers")
		programs := make([][]step, workers)
		for w := range programs {
			programs[w] = rapid.SliceOfN(rapid.Custom(func(t *rapid.T) step {
				return step{
					call: rapid.SampledFrom([]string{"create", "start", "join", "touch", "stop", "command", "shared"}).Draw(t, "call"),
					pick: rapid.IntRange(0, 7).Draw(t, "pick"),
					cmd:  rapid.SampledFrom(fsm.Commands()).Draw(t, "cmd"),
				}
			}), 1, 40).Draw(t, fmt.Sprintf("program%d", w))
		}

		lim := newFakeLimiter(1000)
		m, err := NewManager(Config{Limiter: lim, Avatars: testAvatars})
		if err != nil {
			t.Fatal(err)
		}
		log := &eventLog{}
		m.Subscribe(log.add)
		ctx := context.Background()
		shared, err := m.Create(ctx, Account{Name: "shared", Plan: paidPlan}, CreateOptions{})
		if err != nil {
			t.Fatal(err)
		}

		var wg sync.WaitGroup
		failures := make([]string, workers)
		for w, prog := range programs {
			wg.Go(func() {
				account := fmt.Sprintf("w%d", w)
				plan := limits.Plan{Name: "pro", MaxConcurrent: 3}
				var ids []string
				states := map[string]fsm.State{}
				fail := func(format string, args ...any) {
					if failures[w] == "" {
						failures[w] = fmt.Sprintf(format, args...)
					}
				}
				for i, st := range prog {
					var id string
					if len(ids) > 0 {
						id = ids[st.pick%len(ids)]
					}
					state := states[id]
					var err error
					var want sserrors.Code
					switch st.call {
					case "create":
						var info Info
						info, err = m.Create(ctx, Account{Name: account, Plan: plan}, CreateOptions{})
						open := 0
						for _, s := range states {
							if s.Open() {
								open++
							}
						}
						if open >= plan.MaxConcurrent {
							want = sserrors.CodeConcurrentLimitReached
						} else if err == nil {
							ids = append(ids, info.ID)
							states[info.ID] = fsm.New
						}
					case "shared":
						switch st.pick % 3 {
						case 0:
							_, _ = m.Start(ctx, "shared", shared.ID)
						case 1:
							_, _ = m.Join(ctx, "shared", shared.ID)
						default:
							_, _ = m.Stop(ctx, "shared", shared.ID)
						}
						continue
					default:
						if id == "" {
							continue
						}
						cmd := map[string]fsm.Command{"start": fsm.CmdStart, "stop": fsm.CmdStop, "touch": fsm.CmdKeepAlive, "join": 0, "command": st.cmd}[st.call]
						switch st.call {
						case "join":
							_, err = m.Join(ctx, account, id)
							if state == fsm.Connecting {
								states[id] = fsm.Connected
							} else if state != fsm.Connected {
								want = stateCode(state)
							}
						case "touch":
							err = m.Touch(ctx, account, id)
							if state != fsm.Connected {
								want = stateCode(state)
							}
						default:
							_, err = m.Command(ctx, account, id, cmd)
							if !allowed(state, cmd) {
								want = stateCode(state)
							} else if cmd == fsm.CmdStart {
								states[id] = fsm.Connecting
							} else if cmd == fsm.CmdStop {
								states[id] = fsm.Closed
							}
						}
					}
					if got := codeOf(err); got != want {
						fail("worker %d step %d %s: %v, want code %d", w, i, st.call, err, want)
					}
				}
				for id, s := range states {
					if lim.holds(id) != (s != fsm.Closed) {
						fail("worker %d: session in %s: slot held = %v", w, s, lim.holds(id))
					}
				}
			})
		}
		wg.Wait()
		if err := m.Close(ctx); err != nil {
			t.Fatal(err)
		}
		for _, f := range failures {
			if f != "" {
				t.Fatal(f)
			}
		}
		from := fsm.Unknown
		for i, e := range log.of(shared.ID) {
			if e.Epoch != uint64(i+1) || e.From != from || e.To <= e.From {
				t.Fatalf("shared session: event %d %+v after %s", i, e, from)
			}
			from = e.To
		}
		if from != fsm.Closed || lim.releaseCount(shared.ID) != 1 || lim.heldCount() != 0 {
			t.Fatalf("shared session ends %s, released %d times; %d slots held", from, lim.releaseCount(shared.ID), lim.heldCount())
		}
	})
}
