package errors

import "iter"

//go:generate go run ./internal/cmd/catalogen

// Table names the seed table an Entry comes from. It is a plain value,
// safe to copy and share.
type Table int

// The seed's tables.
const (
	// TableGeneral is general.tsv: codes with an enum name, no HTTP status.
	TableGeneral Table = iota + 1
	// TableStreaming is streaming.tsv: the Streaming API codes 10001–10015,
	// with their HTTP status.
	TableStreaming
)

// String returns "general" or "streaming".
func (t Table) String() string {
	switch t {
	case TableGeneral:
		return "general"
	case TableStreaming:
		return "streaming"
	}
	return "unknown"
}

// Entry is one row of the general or streaming table. Entries are values,
// safe to copy and share between goroutines; Err points at the shared error
// of the row, which must not be modified.
type Entry struct {
	// Code is the numeric code.
	Code Code
	// Enum is the seed's enum name (INVALID_CREDENTIALS); streaming rows
	// have none and leave it empty.
	Enum string
	// Name is the Go name without its prefix: the row's constant is
	// Code+Name and its error Err+Name.
	Name string
	// Message is the text clients see, exactly as in the seed.
	Message string
	// Detail is the seed's detail (general) or description (streaming).
	Detail string
	// Status is the HTTP status: the streaming table's own, or the
	// package's rule for general rows.
	Status int
	// Table is the seed table of the row.
	Table Table
	// Err is the row's shared error value.
	Err *Error
}

// ContextEntry is one row of the context table (context.tsv): a scenario's
// message, possibly with {placeholders}, and the general code the project
// chose for it (see the package doc). Context entries are values, safe to
// copy and share between goroutines.
type ContextEntry struct {
	// Scenario is the seed's scenario ("URL Validation").
	Scenario string
	// Message is the message template, placeholders unfilled.
	Message string
	// Status is the seed's HTTP status for the scenario.
	Status int
	// Description is the seed's description.
	Description string
	// Code is the general code the project chose for the scenario.
	Code Code
	// Name is the Go name: Err+Name for a message without placeholders,
	// the constructor Name otherwise.
	Name string
}

// byCode indexes catalog; it is built once and only read afterwards.
var byCode = func() map[Code]int {
	m := make(map[Code]int, len(catalog))
	for i, e := range catalog {
		m[e.Code] = i
	}
	return m
}()

// Lookup returns the shared error of a general or streaming code. It is
// safe for concurrent use and never allocates.
func Lookup(code Code) (*Error, bool) {
	i, ok := byCode[code]
	if !ok {
		return nil, false
	}
	return catalog[i].Err, true
}

// LookupEntry returns the catalog row of a general or streaming code.
func LookupEntry(code Code) (Entry, bool) {
	i, ok := byCode[code]
	if !ok {
		return Entry{}, false
	}
	return catalog[i], true
}

// Entries yields every general row then every streaming row, in the data
// files' order. It is safe for concurrent use.
func Entries() iter.Seq[Entry] {
	return func(yield func(Entry) bool) {
		for _, e := range catalog {
			if !yield(e) {
				return
			}
		}
	}
}

// ContextEntries yields every context row in the data file's order. It is
// safe for concurrent use.
func ContextEntries() iter.Seq[ContextEntry] {
	return func(yield func(ContextEntry) bool) {
		for _, e := range contextCatalog {
			if !yield(e) {
				return
			}
		}
	}
}

// SessionState returns the 10001–10005 error for a session whose current
// state has the given wire name ("new", "connecting", "connected",
// "closing", "closed"): the message names the state the session is in. Any
// other name returns ErrInternalServerError, since it means the caller has
// a state the wire does not know. It never allocates.
func SessionState(state string) *Error {
	switch state {
	case "new":
		return ErrSessionStateNew
	case "connecting":
		return ErrSessionStateConnecting
	case "connected":
		return ErrSessionStateConnected
	case "closing":
		return ErrSessionStateClosing
	case "closed":
		return ErrSessionStateClosed
	}
	return ErrInternalServerError
}

// CodeOf returns the code of the first *Error in err's chain, 500000
// (CodeInternalServerError) for any other non-nil error and 0 for nil.
func CodeOf(err error) Code {
	if err == nil {
		return 0
	}
	if e, ok := As(err); ok {
		return e.Code
	}
	return CodeInternalServerError
}

// StatusOf returns the HTTP status of the first *Error in err's chain, 500
// for any other non-nil error and 200 for nil.
func StatusOf(err error) int {
	if err == nil {
		return 200
	}
	if e, ok := As(err); ok {
		return e.Status
	}
	return 500
}
