package session

import (
	"context"

	sserrors "github.com/streamsession/streamsession/errors"
	"github.com/streamsession/streamsession/limits"
)

// Account is the tenant a session belongs to: every session is created for
// one account and is visible to that account only. An Account is a plain
// value, safe to copy and to share between goroutines.
type Account struct {
	// Name identifies the account; it must not be empty.
	Name string
	// Plan is what the account pays for: its limits and its sessions'
	// duration limit.
	Plan limits.Plan
}

// Avatar is an avatar a session can stream. An Avatar is a plain value, safe
// to copy and to share between goroutines.
type Avatar struct {
	// ID is the avatar_id clients name.
	ID string
	// Owner is the name of the account that owns a private avatar; empty for
	// an avatar owned by no account.
	Owner string
	// Public avatars are usable by every account.
	Public bool
	// Active avatars can be streamed; an inactive one is refused with 10013.
	Active bool
	// Default marks the avatar used when a client names none.
	Default bool
	// DefaultVoice is the avatar's voice id; empty when none is configured.
	DefaultVoice string
}

// visibleTo reports whether account may see the avatar (in a list): a public
// avatar, or one the account owns.
func (a Avatar) visibleTo(account string) bool {
	return a.Public || (a.Owner != "" && a.Owner == account)
}

// AvatarCatalog resolves avatars for Manager.Create and lists them for the
// server's avatar.list. Implementations are safe for concurrent use by
// multiple goroutines.
type AvatarCatalog interface {
	// Resolve returns the avatar account may stream for id ("" means the
	// default avatar). It fails with sserrors.ErrStreamingAvatarNotFound
	// (10012) when there is no such avatar (or no default), and with
	// sserrors.ErrAvatarNotAllowed (10013) when the avatar is another
	// account's private avatar or inactive.
	Resolve(ctx context.Context, account, id string) (Avatar, error)
	// List returns the avatars account may see (public ones and its own,
	// active or not), in catalog order. The slice is the caller's.
	List(ctx context.Context, account string) ([]Avatar, error)
}

// Avatars is an AvatarCatalog over a fixed list, in the order given. It is
// safe for concurrent use as long as the slice is not modified.
type Avatars []Avatar

var _ AvatarCatalog = Avatars(nil)

// Resolve implements AvatarCatalog. The default avatar is the first one
// marked Default; it is subject to the same checks as a named one.
func (a Avatars) Resolve(ctx context.Context, account, id string) (Avatar, error) {
	if err := ctx.Err(); err != nil {
		return Avatar{}, err
	}
	for _, av := range a {
		if (id == "" && av.Default) || (id != "" && av.ID == id) {
			if !av.visibleTo(account) || !av.Active {
				return Avatar{}, sserrors.ErrAvatarNotAllowed
			}
			return av, nil
		}
	}
	return Avatar{}, sserrors.ErrStreamingAvatarNotFound
}

// List implements AvatarCatalog.
func (a Avatars) List(ctx context.Context, account string) ([]Avatar, error) {
	if err := ctx.Err(); err != nil {
		return nil, err
	}
	out := make([]Avatar, 0, len(a))
	for _, av := range a {
		if av.visibleTo(account) {
			out = append(out, av)
		}
	}
	return out, nil
}
