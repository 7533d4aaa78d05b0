package storetest_test

import (
	"context"
	"os"
	"os/exec"
	"regexp"
	"slices"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	"go.uber.org/goleak"

	"github.com/streamsession/streamsession/fsm"
	"github.com/streamsession/streamsession/session"
	"github.com/streamsession/streamsession/session/storetest"
)

func TestMain(m *testing.M) {
	goleak.VerifyTestMain(m)
}

// TestMemoryStore runs the suite against MemoryStore, in its default form,
// with one shard (every session under one lock) and with a looplab machine
// per session.
func TestMemoryStore(t *testing.T) {
	for name, cfg := range map[string]session.MemoryStoreConfig{
		"default":             {},
		"one shard":           {Shards: 1},
		"machine per session": {MachinePerSession: true},
	} {
		t.Run(name, func(t *testing.T) {
			storetest.Run(t, func(t *testing.T) session.Store { return session.NewMemoryStore(cfg) })
		})
	}
}

// Broken stores: each breaks one rule of the contract; the suite must fail
// on it, in the cases named.
var broken = map[string]struct {
	wrap  func(s *session.MemoryStore) session.Store
	fails []string
}{
	"touch loses the activity": {
		wrap:  func(s *session.MemoryStore) session.Store { return lostTouch{s} },
		fails: []string{"Touch", "Due"},
	},
	"conditional changes ignore the epoch": {
		wrap:  func(s *session.MemoryStore) session.Store { return noEpochCheck{s} },
		fails: []string{"ConditionalChange"},
	},
	"another account's session is found": {
		wrap:  func(s *session.MemoryStore) session.Store { return anyAccount{s} },
		fails: []string{"OtherAccountIsUnknown"},
	},
	"list in reverse": {
		wrap:  func(s *session.MemoryStore) session.Store { return reversedList{s} },
		fails: []string{"ListOrder"},
	},
}

// TestBrokenStore runs the suite against one broken store when the test
// binary is started by TestSuiteCatchesBrokenStores.
func TestBrokenStore(t *testing.T) {
	name := os.Getenv("STORETEST_BROKEN")
	if name == "" {
		t.Skip("run by TestSuiteCatchesBrokenStores")
	}
	b, ok := broken[name]
	require.True(t, ok, "unknown broken store %q", name)
	storetest.Run(t, func(t *testing.T) session.Store {
		return b.wrap(session.NewMemoryStore(session.MemoryStoreConfig{}))
	})
}

func TestSuiteCatchesBrokenStores(t *testing.T) {
	if testing.Short() {
		t.Skip("starts the test binary once per broken store")
	}
	for name, b := range broken {
		t.Run(name, func(t *testing.T) {
			cmd := exec.Command(os.Args[0], "-test.run=^TestBrokenStore$", "-test.v")
			cmd.Env = append(os.Environ(), "STORETEST_BROKEN="+name)
			out, err := cmd.CombinedOutput()
			var exit *exec.ExitError
			require.ErrorAs(t, err, &exit, "the suite passed a store whose %s:\n%s", name, out)
			for _, c := range b.fails {
				assert.Regexp(t, regexp.MustCompile(`--- FAIL: TestBrokenStore/`+c+`\b`), string(out), "case %s", c)
			}
		})
	}
}

// lostTouch answers Touch as if it had recorded the activity, and records
// nothing.
type lostTouch struct{ *session.MemoryStore }

func (s lostTouch) Touch(ctx context.Context, account, id string, at time.Time) (session.Record, error) {
	r, err := s.MemoryStore.Get(ctx, account, id)
	if err == nil && r.State == fsm.Connected && at.After(r.LastActivity) {
		r.LastActivity = at
	}
	return r, err
}

// noEpochCheck makes every change unconditional.
type noEpochCheck struct{ *session.MemoryStore }

func (s noEpochCheck) Transition(ctx context.Context, account, id string, ch session.Change) (session.Record, fsm.State, error) {
	ch.Epoch = 0
	return s.MemoryStore.Transition(ctx, account, id, ch)
}

// anyAccount finds a session by its id alone.
type anyAccount struct{ *session.MemoryStore }

func (s anyAccount) Get(ctx context.Context, account, id string) (session.Record, error) {
	r, err := s.MemoryStore.Get(ctx, account, id)
	if err == nil || account == "acme" {
		return r, err
	}
	return s.MemoryStore.Get(ctx, "acme", id)
}

// reversedList lists the newest first.
type reversedList struct{ *session.MemoryStore }

func (s reversedList) List(ctx context.Context, account string) ([]session.Record, error) {
	l, err := s.MemoryStore.List(ctx, account)
	slices.Reverse(l)
	return l, err
}
