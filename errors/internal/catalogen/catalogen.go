// Package catalogen generates errors/catalog_gen.go from the seed's error
// tables kept in errors/data.
//
// It owns three decisions that the generated file freezes: the Go name of
// every general row (GoName), the HTTP status of every general row
// (GeneralStatus) and the parameter names of the context constructors
// (ParamName). The streaming and context rows get their Go names from the
// project-owned files streaming_names.tsv and context_names.tsv.
//
// Generate is a pure function of the data files, so the errors package's
// tests run it in-process to check that catalog_gen.go is fresh. All
// functions are safe for concurrent use.
package catalogen

import (
	"bytes"
	"fmt"
	"go/format"
	"go/token"
	"io/fs"
	"regexp"
	"slices"
	"strconv"
	"strings"
)

// Data file names inside the data directory.
const (
	GeneralFile        = "general.tsv"
	StreamingFile      = "streaming.tsv"
	ContextFile        = "context.tsv"
	StreamingNamesFile = "streaming_names.tsv"
	ContextNamesFile   = "context_names.tsv"
)

// GeneralRow is one row of general.tsv.
type GeneralRow struct {
	Code    int
	Enum    string
	Message string
	Detail  string
}

// StreamingRow is one row of streaming.tsv.
type StreamingRow struct {
	Status      int
	Code        int
	Message     string
	Description string
}

// ContextRow is one row of context.tsv.
type ContextRow struct {
	Scenario    string
	Message     string
	Status      int
	Description string
}

// Table reads a tab-separated file with the given header and returns its
// data rows. It rejects carriage returns, a missing final newline, empty
// lines and rows with the wrong number of columns, so that a data file that
// drifted from the seed's shape fails loudly.
func Table(fsys fs.FS, name string, header ...string) ([][]string, error) {
	b, err := fs.ReadFile(fsys, name)
	if err != nil {
		return nil, err
	}
	s := string(b)
	if strings.Contains(s, "\r") {
		return nil, fmt.Errorf("%s: contains a carriage return", name)
	}
	if !strings.HasSuffix(s, "\n") {
		return nil, fmt.Errorf("%s: no final newline", name)
	}
	lines := strings.Split(strings.TrimSuffix(s, "\n"), "\n")
	if got := strings.Join(lines[0:1], ""); got != strings.Join(header, "\t") {
		return nil, fmt.Errorf("%s: header %q, want %q", name, got, strings.Join(header, "\t"))
	}
	rows := make([][]string, 0, len(lines)-1)
	for i, l := range lines[1:] {
		f := strings.Split(l, "\t")
		if len(f) != len(header) {
			return nil, fmt.Errorf("%s:%d: %d columns, want %d", name, i+2, len(f), len(header))
		}
		for j, v := range f {
			if v == "" {
				return nil, fmt.Errorf("%s:%d: empty %s", name, i+2, header[j])
			}
		}
		rows = append(rows, f)
	}
	return rows, nil
}

func atoi(name string, line int, s string) (int, error) {
	n, err := strconv.Atoi(s)
	if err != nil || n <= 0 {
		return 0, fmt.Errorf("%s:%d: %q is not a positive integer", name, line, s)
	}
	return n, nil
}

// ReadGeneral reads general.tsv.
func ReadGeneral(fsys fs.FS) ([]GeneralRow, error) {
	rows, err := Table(fsys, GeneralFile, "code", "enum_name", "message", "detail")
	if err != nil {
		return nil, err
	}
	out := make([]GeneralRow, len(rows))
	for i, r := range rows {
		c, err := atoi(GeneralFile, i+2, r[0])
		if err != nil {
			return nil, err
		}
		out[i] = GeneralRow{Code: c, Enum: r[1], Message: r[2], Detail: r[3]}
	}
	return out, nil
}

// ReadStreaming reads streaming.tsv.
func ReadStreaming(fsys fs.FS) ([]StreamingRow, error) {
	rows, err := Table(fsys, StreamingFile, "http_status", "code", "message", "description")
	if err != nil {
		return nil, err
	}
	out := make([]StreamingRow, len(rows))
	for i, r := range rows {
		st, err := atoi(StreamingFile, i+2, r[0])
		if err != nil {
			return nil, err
		}
		c, err := atoi(StreamingFile, i+2, r[1])
		if err != nil {
			return nil, err
		}
		out[i] = StreamingRow{Status: st, Code: c, Message: r[2], Description: r[3]}
	}
	return out, nil
}

// ReadContext reads context.tsv.
func ReadContext(fsys fs.FS) ([]ContextRow, error) {
	rows, err := Table(fsys, ContextFile, "scenario", "message", "http_status", "description")
	if err != nil {
		return nil, err
	}
	out := make([]ContextRow, len(rows))
	for i, r := range rows {
		st, err := atoi(ContextFile, i+2, r[2])
		if err != nil {
			return nil, err
		}
		out[i] = ContextRow{Scenario: r[0], Message: r[1], Status: st, Description: r[3]}
	}
	return out, nil
}

// initialisms are the enum words written the way Go code writes them
// (Effective Go / the Go code review comments on initialisms), plus the
// brand names whose usual spelling is not plain title case.
var initialisms = map[string]string{
	"API":        "API",
	"HTTP":       "HTTP",
	"ID":         "ID",
	"NSFW":       "NSFW",
	"S3":         "S3",
	"SRT":        "SRT",
	"TTS":        "TTS",
	"URL":        "URL",
	"OAUTH":      "OAuth",
	"HEYGEN":     "HeyGen",
	"ELEVENLABS": "ElevenLabs",
}

// GoName returns the Go name of an enum name: SCREAMING_SNAKE words in
// CamelCase, initialisms upper case (API_CONNECTION_ERROR →
// APIConnectionError, INVALID_VIDEO_ID → InvalidVideoID).
func GoName(enum string) string {
	var b strings.Builder
	for w := range strings.SplitSeq(enum, "_") {
		if w == "" {
			continue
		}
		if s, ok := initialisms[w]; ok {
			b.WriteString(s)
			continue
		}
		b.WriteString(w[:1])
		b.WriteString(strings.ToLower(w[1:]))
	}
	return b.String()
}

// The explicit lists of the status rule. Everything here is documented in
// errors/doc.go; keep the two in step.
var (
	// status401 are the authentication failures. HeyGen has been seen
	// answering 400112 with HTTP 401.
	status401 = []int{40009, 400112, 401057, 401056}
	// status403 are the rows refusing an authenticated caller: permission,
	// forbidden, blocked account, access denied, and the plan-tier rows
	// (a feature or voice the caller's plan does not include).
	status403 = []int{400573, 400562, 400599, 400631, 400685, 400578, 400551}
)

// GeneralStatus returns the HTTP status of a general row, by the rule
// written in errors/doc.go, first match wins:
//
//  1. 401 for the authentication failures 40009, 400112, 401057, 401056;
//  2. 500 for 500000;
//  3. 403 for the permission, forbidden, blocked, access-denied and tier rows
//     400573, 400562, 400599, 400631, 400685, 400578, 400551;
//  4. 404 when the enum name ends in _NOT_FOUND;
//  5. 429 when the enum name has the word LIMIT or QUOTA or contains
//     TOO_MANY_REQUEST (rate, quota and usage-limit rows);
//  6. 400 otherwise.
func GeneralStatus(code int, enum string) int {
	words := strings.Split(enum, "_")
	switch {
	case slices.Contains(status401, code):
		return 401
	case code == 500000:
		return 500
	case slices.Contains(status403, code):
		return 403
	case strings.HasSuffix(enum, "_NOT_FOUND"):
		return 404
	case slices.Contains(words, "LIMIT"), slices.Contains(words, "QUOTA"),
		strings.Contains(enum, "TOO_MANY_REQUEST"):
		return 429
	}
	return 400
}

var placeholderRE = regexp.MustCompile(`\{([a-z][a-z0-9_]*)\}`)

// ParamName returns the Go parameter name of a {placeholder}: snake_case in
// lowerCamelCase with initialisms (asset_id → assetID, url → url).
func ParamName(placeholder string) string {
	n := GoName(strings.ToUpper(placeholder))
	// Lower the leading word: a whole initialism, or the first letter.
	for w, s := range initialisms {
		if strings.HasPrefix(strings.ToUpper(placeholder)+"_", w+"_") {
			return strings.ToLower(s) + n[len(s):]
		}
	}
	return strings.ToLower(n[:1]) + n[1:]
}

type entry struct {
	Name    string // Go name without prefix
	Code    int
	Enum    string
	Message string
	Detail  string
	Status  int
	Table   string
}

type contextEntry struct {
	ContextRow
	Name     string
	Code     int
	CodeName string
	Params   []string // placeholder names in order of appearance
}

// Generate returns the gofmt'd source of catalog_gen.go for the data files
// in fsys. It fails on a malformed file, a Go name clash, a streaming or
// context row without a name (or a name without a row), and a context code
// that is not a general code.
func Generate(fsys fs.FS) ([]byte, error) {
	general, err := ReadGeneral(fsys)
	if err != nil {
		return nil, err
	}
	streaming, err := ReadStreaming(fsys)
	if err != nil {
		return nil, err
	}
	context, err := ReadContext(fsys)
	if err != nil {
		return nil, err
	}
	snames, err := Table(fsys, StreamingNamesFile, "code", "go_name")
	if err != nil {
		return nil, err
	}
	cnames, err := Table(fsys, ContextNamesFile, "scenario", "message", "go_name", "code")
	if err != nil {
		return nil, err
	}

	idents := map[string]string{} // Go identifier → what defined it
	claim := func(ident, what string) error {
		if !token.IsIdentifier(ident) || !token.IsExported(ident) {
			return fmt.Errorf("%s: %q is not an exported Go identifier", what, ident)
		}
		if prev, ok := idents[ident]; ok {
			return fmt.Errorf("%s: Go name %s clashes with %s", what, ident, prev)
		}
		idents[ident] = what
		return nil
	}
	codes := map[int]string{} // code → Go name
	var entries []entry
	add := func(e entry) error {
		what := fmt.Sprintf("%s code %d", e.Table, e.Code)
		if _, dup := codes[e.Code]; dup {
			return fmt.Errorf("%s: duplicate code", what)
		}
		codes[e.Code] = e.Name
		entries = append(entries, e)
		if err := claim("Code"+e.Name, what); err != nil {
			return err
		}
		return claim("Err"+e.Name, what)
	}
	for _, r := range general {
		e := entry{Name: GoName(r.Enum), Code: r.Code, Enum: r.Enum, Message: r.Message,
			Detail: r.Detail, Status: GeneralStatus(r.Code, r.Enum), Table: "general"}
		if err := add(e); err != nil {
			return nil, err
		}
	}
	snameOf := map[int]string{}
	for i, r := range snames {
		c, err := atoi(StreamingNamesFile, i+2, r[0])
		if err != nil {
			return nil, err
		}
		if _, dup := snameOf[c]; dup {
			return nil, fmt.Errorf("%s:%d: duplicate code %d", StreamingNamesFile, i+2, c)
		}
		snameOf[c] = r[1]
	}
	if len(snameOf) != len(streaming) {
		return nil, fmt.Errorf("%s names %d codes, %s has %d rows", StreamingNamesFile, len(snameOf), StreamingFile, len(streaming))
	}
	for _, r := range streaming {
		name, ok := snameOf[r.Code]
		if !ok {
			return nil, fmt.Errorf("%s: streaming code %d has no Go name", StreamingNamesFile, r.Code)
		}
		e := entry{Name: name, Code: r.Code, Message: r.Message, Detail: r.Description,
			Status: r.Status, Table: "streaming"}
		if err := add(e); err != nil {
			return nil, err
		}
	}

	if len(cnames) != len(context) {
		return nil, fmt.Errorf("%s has %d rows, %s has %d", ContextNamesFile, len(cnames), ContextFile, len(context))
	}
	var ctx []contextEntry
	for i, r := range context {
		n := cnames[i]
		if n[0] != r.Scenario || n[1] != r.Message {
			return nil, fmt.Errorf("%s:%d: names %q/%q, %s has %q/%q", ContextNamesFile, i+2, n[0], n[1], ContextFile, r.Scenario, r.Message)
		}
		c, err := atoi(ContextNamesFile, i+2, n[3])
		if err != nil {
			return nil, err
		}
		codeName, ok := codes[c]
		if !ok || c < 40000 { // context codes are general codes
			return nil, fmt.Errorf("%s:%d: code %d is not a general code", ContextNamesFile, i+2, c)
		}
		ce := contextEntry{ContextRow: r, Name: n[2], Code: c, CodeName: codeName}
		for _, m := range placeholderRE.FindAllStringSubmatch(r.Message, -1) {
			if slices.Contains(ce.Params, m[1]) || !token.IsIdentifier(ParamName(m[1])) {
				return nil, fmt.Errorf("%s:%d: placeholder {%s} repeated or not a Go parameter name", ContextFile, i+2, m[1])
			}
			ce.Params = append(ce.Params, m[1])
		}
		if strings.Count(r.Message, "{") != len(ce.Params) {
			return nil, fmt.Errorf("%s:%d: malformed placeholder in %q", ContextFile, i+2, r.Message)
		}
		ident := n[2]
		if len(ce.Params) == 0 {
			ident = "Err" + n[2]
		}
		if err := claim(ident, fmt.Sprintf("context row %d", i+1)); err != nil {
			return nil, err
		}
		ctx = append(ctx, ce)
	}
	return render(entries, ctx)
}

func render(entries []entry, ctx []contextEntry) ([]byte, error) {
	var b bytes.Buffer
	p := func(format string, args ...any) { fmt.Fprintf(&b, format, args...) }
	q := strconv.Quote

	p("// Code generated by go run ./internal/cmd/catalogen; DO NOT EDIT.\n")
	p("// Source: data/*.tsv (the seed's error tables) and the project's name files.\n\n")
	p("package errors\n\n")

	p("// Codes of the general table (general.tsv) and the streaming table\n// (streaming.tsv), in file order.\nconst (\n")
	for _, e := range entries {
		if e.Enum != "" {
			p("// Code%s is %d %s: %s.\n", e.Name, e.Code, e.Enum, e.Detail)
		} else {
			p("// Code%s is streaming code %d: %s\n", e.Name, e.Code, e.Detail)
		}
		p("Code%s Code = %d\n", e.Name, e.Code)
	}
	p(")\n\n")

	p("// Errors of the general and streaming tables, in file order. They are\n// shared: never modify one, use the With* methods, which return a copy.\nvar (\n")
	for _, e := range entries {
		p("// Err%s is code %d, HTTP %d, %q.\n", e.Name, e.Code, e.Status, e.Message)
		p("Err%s = New(Code%s, %d, %s)\n", e.Name, e.Name, e.Status, q(e.Message))
	}
	p(")\n\n")

	p("// catalog holds every general and streaming row, in file order.\nvar catalog = [...]Entry{\n")
	for _, e := range entries {
		table := "TableGeneral"
		if e.Table == "streaming" {
			table = "TableStreaming"
		}
		p("{Code: Code%s, Enum: %s, Name: %s, Message: %s, Detail: %s, Status: %d, Table: %s, Err: Err%s},\n",
			e.Name, q(e.Enum), q(e.Name), q(e.Message), q(e.Detail), e.Status, table, e.Name)
	}
	p("}\n\n")

	p("// Errors of the context table (context.tsv) without placeholders. Their\n// codes are the project's choice (see the package doc). They are shared:\n// never modify one, use the With* methods, which return a copy.\nvar (\n")
	for _, c := range ctx {
		if len(c.Params) > 0 {
			continue
		}
		p("// Err%s is the %q error: %s (code %d, HTTP %d).\n", c.Name, c.Scenario, c.Description, c.Code, c.Status)
		p("Err%s = New(Code%s, %d, %s)\n", c.Name, c.CodeName, c.Status, q(c.Message))
	}
	p(")\n\n")

	for _, c := range ctx {
		if len(c.Params) == 0 {
			continue
		}
		var params, expr []string
		rest := c.Message
		for _, ph := range c.Params {
			pn := ParamName(ph)
			params = append(params, pn)
			before, after, _ := strings.Cut(rest, "{"+ph+"}")
			if before != "" {
				expr = append(expr, q(before))
			}
			expr = append(expr, pn)
			rest = after
		}
		if rest != "" {
			expr = append(expr, q(rest))
		}
		p("// %s returns the %q error: %s (code %d, HTTP %d).\n", c.Name, c.Scenario, c.Description, c.Code, c.Status)
		p("// Its message is %q with the placeholders filled. It returns a new\n// value on every call.\n", c.Message)
		p("func %s(%s string) *Error {\n", c.Name, strings.Join(params, ", "))
		p("return New(Code%s, %d, %s)\n}\n\n", c.CodeName, c.Status, strings.Join(expr, " + "))
	}

	p("// contextCatalog holds every context row, in file order.\nvar contextCatalog = [...]ContextEntry{\n")
	for _, c := range ctx {
		p("{Scenario: %s, Message: %s, Status: %d, Description: %s, Code: Code%s, Name: %s},\n",
			q(c.Scenario), q(c.Message), c.Status, q(c.Description), c.CodeName, q(c.Name))
	}
	p("}\n")

	src, err := format.Source(b.Bytes())
	if err != nil {
		return nil, fmt.Errorf("gofmt generated source: %w", err)
	}
	return src, nil
}
