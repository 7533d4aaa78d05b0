package errors_test

import (
	"bytes"
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	sserrors "github.com/streamsession/streamsession/errors"
	"github.com/streamsession/streamsession/errors/internal/catalogen"
)

// readTSV parses a data file independently of the generator: header first,
// tab-separated, one row a line.
func readTSV(t *testing.T, name string, columns int) [][]string {
	t.Helper()
	b, err := os.ReadFile(filepath.Join("data", name))
	require.NoError(t, err)
	lines := strings.Split(strings.TrimSuffix(string(b), "\n"), "\n")
	var rows [][]string
	for i, l := range lines[1:] {
		f := strings.Split(l, "\t")
		require.Len(t, f, columns, "%s line %d", name, i+2)
		rows = append(rows, f)
	}
	return rows
}

func atoi(t *testing.T, s string) int {
	t.Helper()
	n, err := strconv.Atoi(s)
	require.NoError(t, err)
	return n
}

func TestGeneratedCatalogIsFresh(t *testing.T) {
	want, err := catalogen.Generate(os.DirFS("data"))
	require.NoError(t, err)
	got, err := os.ReadFile("catalog_gen.go")
	require.NoError(t, err)
	if !bytes.Equal(want, got) {
		t.Fatal("catalog_gen.go is stale: run go generate ./errors/")
	}
}

func TestDataFilesAreTheSeeds(t *testing.T) {
	shared := filepath.Join("..", "..", "shared", "catalog")
	if _, err := os.Stat(shared); err != nil {
		if os.Getenv("CI") != "" {
			t.Fatalf("no %s to compare data/ with (%v), and CI is set", shared, err)
		}
		t.Skipf("no %s to compare with (%v): the copies in data/ are the reference (with CI set this fails)", shared, err)
	}
	for _, name := range []string{"general.tsv", "streaming.tsv", "context.tsv"} {
		t.Run(name, func(t *testing.T) {
			want, err := os.ReadFile(filepath.Join(shared, name))
			require.NoError(t, err)
			got, err := os.ReadFile(filepath.Join("data", name))
			require.NoError(t, err)
			assert.True(t, bytes.Equal(want, got), "data/%s differs from %s", name, shared)
		})
	}
}

func TestGeneralRowsMatchDataFile(t *testing.T) {
	rows := readTSV(t, "general.tsv", 4)
	require.Len(t, rows, 100)
	for _, r := range rows {
		t.Run(r[1], func(t *testing.T) {
			code := sserrors.Code(atoi(t, r[0]))
			e, ok := sserrors.LookupEntry(code)
			require.True(t, ok)
			assert.Equal(t, code, e.Code)
			assert.Equal(t, r[1], e.Enum)
			assert.Equal(t, r[2], e.Message)
			assert.Equal(t, r[3], e.Detail)
			assert.Equal(t, sserrors.TableGeneral, e.Table)
			require.NotNil(t, e.Err)
			assert.Equal(t, code, e.Err.Code)
			assert.Equal(t, r[2], e.Err.Message)
			assert.Equal(t, e.Status, e.Err.Status)
			got, ok := sserrors.Lookup(code)
			require.True(t, ok)
			assert.Same(t, e.Err, got)
		})
	}
}

func TestStreamingRowsMatchDataFile(t *testing.T) {
	rows := readTSV(t, "streaming.tsv", 4)
	require.Len(t, rows, 11)
	names := map[sserrors.Code]string{}
	for _, r := range readTSV(t, "streaming_names.tsv", 2) {
		names[sserrors.Code(atoi(t, r[0]))] = r[1]
	}
	for _, r := range rows {
		t.Run(r[1], func(t *testing.T) {
			code := sserrors.Code(atoi(t, r[1]))
			e, ok := sserrors.LookupEntry(code)
			require.True(t, ok)
			assert.Equal(t, atoi(t, r[0]), e.Status)
			assert.Equal(t, "", e.Enum)
			assert.Equal(t, names[code], e.Name)
			assert.Equal(t, r[2], e.Message)
			assert.Equal(t, r[3], e.Detail)
			assert.Equal(t, sserrors.TableStreaming, e.Table)
			assert.Equal(t, r[2], e.Err.Message)
			assert.Equal(t, atoi(t, r[0]), e.Err.Status)
		})
	}
}

func TestEntries(t *testing.T) {
	var n int
	names := map[string]bool{}
	for e := range sserrors.Entries() {
		n++
		assert.False(t, names[e.Name], "duplicate Go name %s", e.Name)
		names[e.Name] = true
	}
	assert.Equal(t, 111, n)

	// Stopping early must not panic or yield more.
	n = 0
	for range sserrors.Entries() {
		n++
		break
	}
	assert.Equal(t, 1, n)

	_, ok := sserrors.Lookup(424242)
	assert.False(t, ok)
	_, ok = sserrors.LookupEntry(sserrors.SuccessCode)
	assert.False(t, ok)
}

// TestNamedValues pins the names other packages use, with their meaning.
func TestNamedValues(t *testing.T) {
	tests := []struct {
		err     *sserrors.Error
		code    sserrors.Code
		want    sserrors.Code
		status  int
		message string
	}{
		{sserrors.ErrSessionStateNew, sserrors.CodeSessionStateNew, 10001, 400, "Session state wrong: new"},
		{sserrors.ErrSessionStateConnecting, sserrors.CodeSessionStateConnecting, 10002, 400, "Session state wrong: connecting"},
		{sserrors.ErrSessionStateConnected, sserrors.CodeSessionStateConnected, 10003, 400, "Session state wrong: connected"},
		{sserrors.ErrSessionStateClosing, sserrors.CodeSessionStateClosing, 10004, 400, "Session state wrong: closing"},
		{sserrors.ErrSessionStateClosed, sserrors.CodeSessionStateClosed, 10005, 400, "Session state wrong: closed"},
		{sserrors.ErrSessionNotFound, sserrors.CodeSessionNotFound, 10006, 404, "Session not found"},
		{sserrors.ErrConcurrentLimitReached, sserrors.CodeConcurrentLimitReached, 10007, 429, "Concurrent limit reached"},
		{sserrors.ErrStreamingAvatarNotFound, sserrors.CodeStreamingAvatarNotFound, 10012, 404, "Avatar not found"},
		{sserrors.ErrAvatarNotAllowed, sserrors.CodeAvatarNotAllowed, 10013, 403, "Avatar not allowed"},
		{sserrors.ErrSessionFull, sserrors.CodeSessionFull, 10014, 429, "Session full"},
		{sserrors.ErrTrialLimitReached, sserrors.CodeTrialLimitReached, 10015, 429, "Trial API limit reached"},
		{sserrors.ErrUnauthorized, sserrors.CodeUnauthorized, 400112, 401, "Unauthorized"},
		{sserrors.ErrMissingParams, sserrors.CodeMissingParams, 40001, 400, "Missing required input parameters"},
		{sserrors.ErrInvalidParameter, sserrors.CodeInvalidParameter, 400175, 400, "Invalid parameter"},
		{sserrors.ErrAPIConnectionError, sserrors.CodeAPIConnectionError, 400558, 400, "API connection error"},
		{sserrors.ErrInternalServerError, sserrors.CodeInternalServerError, 500000, 500, "Internal server error"},
		{sserrors.ErrAvatarNotFound, sserrors.CodeAvatarNotFound, 400144, 404, "Avatar not found"},
		{sserrors.ErrInvalidVideoID, sserrors.CodeInvalidVideoID, 40031, 400, "Invalid video id"},
		{sserrors.ErrS3UploadFailed, sserrors.CodeS3UploadFailed, 400609, 400, "s3 upload failed"},
		{sserrors.ErrHTTPDownloadFailed, sserrors.CodeHTTPDownloadFailed, 400616, 400, "http download failed"},
		{sserrors.ErrSRTFileError, sserrors.CodeSRTFileError, 400672, 400, "SRT file error"},
		{sserrors.ErrTTSTooManyRequestErr, sserrors.CodeTTSTooManyRequestErr, 400701, 429, "too many request, please try again later"},
		{sserrors.ErrHeyGenTemplateNotFound, sserrors.CodeHeyGenTemplateNotFound, 400608, 404, "heygen template not found"},
		{sserrors.ErrElevenLabsTTSError, sserrors.CodeElevenLabsTTSError, 401030, 400, "tts error"},
		{sserrors.ErrInvalidGoogleDriveURL, sserrors.CodeInvalidGoogleDriveURL, 400627, 400, "invalid google drive url"},
	}
	for _, tt := range tests {
		t.Run(tt.message, func(t *testing.T) {
			assert.Equal(t, tt.want, tt.code)
			assert.Equal(t, tt.want, tt.err.Code)
			assert.Equal(t, tt.status, tt.err.Status)
			assert.Equal(t, tt.message, tt.err.Message)
		})
	}
}

// TestGeneralStatusRule checks every general row against the rule of the
// package doc, written out here code by code.
func TestGeneralStatusRule(t *testing.T) {
	want := map[int][]int{
		401: {40009, 400112, 401057, 401056},
		403: {400573, 400562, 400599, 400631, 400685, 400578, 400551},
		404: {400101, 400561, 400144, 400174, 400116, 40072, 400608, 404003, 40051, 400179, 400114, 400164},
		429: {400664, 400140, 401028, 40019, 400153, 400701},
		500: {500000},
	}
	statusOf := map[int]int{}
	for st, codes := range want {
		for _, c := range codes {
			statusOf[c] = st
		}
	}
	counts := map[int]int{}
	for _, r := range readTSV(t, "general.tsv", 4) {
		code := atoi(t, r[0])
		expected, ok := statusOf[code]
		if !ok {
			expected = 400
		}
		counts[expected]++
		t.Run(r[1], func(t *testing.T) {
			e, ok := sserrors.LookupEntry(sserrors.Code(code))
			require.True(t, ok)
			assert.Equal(t, expected, e.Status)
			assert.Equal(t, expected, catalogen.GeneralStatus(code, r[1]))
		})
	}
	for st, codes := range want {
		assert.Equal(t, len(codes), counts[st], "rows with status %d", st)
	}
}

func TestContextRows(t *testing.T) {
	rows := readTSV(t, "context.tsv", 4)
	require.Len(t, rows, 9)
	// The project's code per scenario (package doc, context_names.tsv).
	wantCode := []sserrors.Code{40065, 40065, 400175, 40001, 400179, 400116, 40001, 400578, 400599}
	var got []sserrors.ContextEntry
	for e := range sserrors.ContextEntries() {
		got = append(got, e)
	}
	require.Len(t, got, len(rows))
	for i, r := range rows {
		t.Run(fmt.Sprint(i, " ", r[0]), func(t *testing.T) {
			assert.Equal(t, r[0], got[i].Scenario)
			assert.Equal(t, r[1], got[i].Message)
			assert.Equal(t, atoi(t, r[2]), got[i].Status)
			assert.Equal(t, r[3], got[i].Description)
			assert.Equal(t, wantCode[i], got[i].Code)
		})
	}

	values := []struct {
		row int
		err *sserrors.Error
	}{
		{0, sserrors.ErrVideoDimensionsOutOfRange},
		{1, sserrors.ErrVideoDimensionsOdd},
		{3, sserrors.ErrMissingVideoSource},
		{6, sserrors.ErrMissingTTSSettings},
		{7, sserrors.ErrFolderAccessDenied},
		{8, sserrors.ErrPaidPlanRequiredFor4K},
	}
	for _, v := range values {
		t.Run(got[v.row].Name, func(t *testing.T) {
			assert.Equal(t, rows[v.row][1], v.err.Message)
			assert.Equal(t, atoi(t, rows[v.row][2]), v.err.Status)
			assert.Equal(t, wantCode[v.row], v.err.Code)
		})
	}

	ctors := []struct {
		name   string
		err    *sserrors.Error
		code   sserrors.Code
		status int
		msg    string
	}{
		{"InvalidURL", sserrors.InvalidURL("ht!tp://x y"), 400175, 400, "not a valid URL: ht!tp://x y"},
		{"AssetNotFound", sserrors.AssetNotFound("asset-1"), 400179, 404, "Video asset not found: asset-1"},
		{"VoiceNotFound", sserrors.VoiceNotFound("v_9"), 400116, 400, "Voice not found: v_9"},
		{"VoiceNotFound empty", sserrors.VoiceNotFound(""), 400116, 400, "Voice not found: "},
	}
	for _, c := range ctors {
		t.Run(c.name, func(t *testing.T) {
			assert.Equal(t, c.code, c.err.Code)
			assert.Equal(t, c.status, c.err.Status)
			assert.Equal(t, c.msg, c.err.Message)
		})
	}
	assert.NotSame(t, sserrors.AssetNotFound("a"), sserrors.AssetNotFound("a"), "constructors return new values")
}

func TestSessionState(t *testing.T) {
	tests := []struct {
		state string
		want  *sserrors.Error
	}{
		{"new", sserrors.ErrSessionStateNew},
		{"connecting", sserrors.ErrSessionStateConnecting},
		{"connected", sserrors.ErrSessionStateConnected},
		{"closing", sserrors.ErrSessionStateClosing},
		{"closed", sserrors.ErrSessionStateClosed},
		{"", sserrors.ErrInternalServerError},
		{"Closed", sserrors.ErrInternalServerError},
		{"unknown", sserrors.ErrInternalServerError},
	}
	for _, tt := range tests {
		t.Run(tt.state, func(t *testing.T) {
			assert.Same(t, tt.want, sserrors.SessionState(tt.state))
		})
	}
}

func TestSessionStateDoesNotAllocate(t *testing.T) {
	states := []string{"new", "connecting", "connected", "closing", "closed", "bogus"}
	var sink *sserrors.Error
	allocs := testing.AllocsPerRun(100, func() {
		for _, s := range states {
			sink = sserrors.SessionState(s)
		}
	})
	assert.Equal(t, 0.0, allocs)
	assert.NotNil(t, sink)
}

func TestLookupDoesNotAllocate(t *testing.T) {
	allocs := testing.AllocsPerRun(100, func() {
		_, _ = sserrors.Lookup(sserrors.CodeSessionNotFound)
		_, _ = sserrors.Lookup(1)
	})
	assert.Equal(t, 0.0, allocs)
}

func TestTableString(t *testing.T) {
	tests := []struct {
		table sserrors.Table
		want  string
	}{
		{sserrors.TableGeneral, "general"},
		{sserrors.TableStreaming, "streaming"},
		{0, "unknown"},
	}
	for _, tt := range tests {
		t.Run(tt.want, func(t *testing.T) {
			assert.Equal(t, tt.want, tt.table.String())
		})
	}
}
