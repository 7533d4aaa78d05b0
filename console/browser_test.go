package console_test

import (
	"context"
	"fmt"
	"net/url"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	cdplog "github.com/chromedp/cdproto/log"
	"github.com/chromedp/cdproto/network"
	"github.com/chromedp/cdproto/runtime"
	"github.com/chromedp/chromedp"

	"github.com/streamsession/streamsession/internal/browsertest"
)

// Where the browser tests leave their screenshots (git-ignored), and where
// STREAMSESSION_UPDATE_SCREENSHOT=1 also writes them for the docs: the
// README's, and docs/console-media.md's of the avatar playing.
const (
	artifactDir      = "testdata/artifacts"
	readmeScreenshot = "../docs/console.png"
	mediaScreenshot  = "../docs/console-media.png"
)

// longTask is a task the test server speaks for longSpeech, longer than the
// test waits, so that the test interrupts it; every other text takes
// shortSpeech.
const longTask = "A long speech that only an interrupt ends: interrupt me."

// viewportWidth is the browser window's width: a laptop screen, where the
// page shows its two columns.
const viewportWidth = 1280

// stepTimeout bounds each wait of the browser test; the whole flow takes a
// few seconds.
const stepTimeout = 10 * time.Second

// browser is one headless chromium tab driven over the DevTools protocol.
// Its helpers are on page, which names the (sub)test that uses the tab.
type browser struct {
	ctx context.Context // the tab; cancelled by the test's cleanup

	mu       sync.Mutex
	problems []string // uncaught exceptions and error-level console entries of the page
	urls     []string // every URL the page requested, WebSockets included
}

// page is the browser's tab as one (sub)test drives it: a failed step ends
// that test.
type page struct {
	t *testing.T
	b *browser
}

func (b *browser) page(t *testing.T) *page { return &page{t: t, b: b} }

// newBrowser starts a headless chromium with a fresh profile and the extra
// options. The test's cleanup closes it and waits for the process to exit.
func newBrowser(t *testing.T, extra ...chromedp.ExecAllocatorOption) *browser {
	t.Helper()
	ctx := browsertest.Start(t, append([]chromedp.ExecAllocatorOption{chromedp.WindowSize(viewportWidth, 900)}, extra...)...)
	b := &browser{ctx: ctx}
	if err := chromedp.Listen(ctx, func(ev any) {
		b.mu.Lock()
		defer b.mu.Unlock()
		switch e := ev.(type) {
		case *runtime.EventExceptionThrown:
			b.problems = append(b.problems, "uncaught: "+e.ExceptionDetails.Text+" "+describeException(e.ExceptionDetails))
		case *network.EventRequestWillBeSent:
			b.urls = append(b.urls, e.Request.URL)
		case *network.EventWebSocketCreated:
			b.urls = append(b.urls, e.URL)
		case *cdplog.EventEntryAdded:
			// Network errors are expected (4xx answers, the server going
			// away); anything else at error level (a CSP violation, a
			// JavaScript error) is a defect of the page.
			if e.Entry.Level == cdplog.EntryLevelError && e.Entry.Source != cdplog.EntrySourceNetwork {
				b.problems = append(b.problems, string(e.Entry.Source)+": "+e.Entry.Text)
			}
		}
	}); err != nil {
		t.Fatalf("listening to the page: %v", err)
	}
	return b
}

func describeException(d *runtime.ExceptionDetails) string {
	if d.Exception != nil && d.Exception.Description != "" {
		return d.Exception.Description
	}
	return fmt.Sprintf("at %s:%d:%d", d.URL, d.LineNumber, d.ColumnNumber)
}

// do runs actions with the step timeout; a failure ends the test with what
// the page shows.
func (p *page) do(what string, actions ...chromedp.Action[chromedp.Void]) {
	p.t.Helper()
	ctx, cancel := context.WithTimeout(p.b.ctx, stepTimeout)
	defer cancel()
	if err := chromedp.Do(ctx, actions...); err != nil {
		p.fail("%s: %v", what, err)
	}
}

// click clicks the element with id.
func (p *page) click(id string) {
	p.t.Helper()
	p.do("click #"+id, chromedp.Click(chromedp.ID(id)))
}

// waitFor waits until the JavaScript expression cond is true.
func (p *page) waitFor(what, cond string) {
	p.t.Helper()
	ctx, cancel := context.WithTimeout(p.b.ctx, stepTimeout)
	defer cancel()
	_, err := chromedp.Run(ctx, chromedp.Poll[bool]("!!("+cond+")",
		chromedp.WithPollingInterval(25*time.Millisecond), chromedp.WithPollingTimeout(stepTimeout)))
	if err != nil {
		p.fail("waiting until %s (%s): %v", what, cond, err)
	}
}

// waitPresent waits until a CSS selector matches.
func (p *page) waitPresent(what, selector string) {
	p.t.Helper()
	p.waitFor(what, fmt.Sprintf("document.querySelector(%q)", selector))
}

// waitState waits until the diagram highlights state, and only state.
func (p *page) waitState(state string) {
	p.t.Helper()
	p.waitFor("the diagram highlights "+state, fmt.Sprintf(
		`document.querySelectorAll("#diagram .node.active").length === 1 && `+
			`document.querySelector('#diagram [data-state=%q].active')`, state))
}

// text returns the text of the first element matching a CSS selector.
func (p *page) text(selector string) string {
	p.t.Helper()
	ctx, cancel := context.WithTimeout(p.b.ctx, stepTimeout)
	defer cancel()
	s, err := chromedp.Run(ctx, chromedp.Evaluate[string](fmt.Sprintf(
		`(document.querySelector(%q) || {textContent: ""}).textContent`, selector)))
	if err != nil {
		p.fail("reading %s: %v", selector, err)
	}
	return strings.TrimSpace(s)
}

// fail ends the test with the page's state: its errors, log and a screenshot.
func (p *page) fail(format string, args ...any) {
	p.t.Helper()
	ctx, cancel := context.WithTimeout(p.b.ctx, 5*time.Second)
	defer cancel()
	shown, _ := chromedp.Run(ctx, chromedp.Evaluate[string](
		`[...document.querySelectorAll("output.error")].filter(e => e.textContent).map(e => e.id + ": " + e.textContent).join("\n") + `+
			`"\n--- log\n" + document.querySelector("#log").innerText`))
	if png, err := chromedp.Run(ctx, chromedp.FullScreenshot(100)); err == nil {
		p.writeArtifact("console-failure.png", png)
	}
	p.t.Fatalf(format+"\npage:\n%s\nconsole problems: %q", append(args, shown, p.b.pageProblems())...)
}

func (b *browser) pageProblems() []string {
	b.mu.Lock()
	defer b.mu.Unlock()
	return append([]string(nil), b.problems...)
}

// requested returns the URLs the page requested so far.
func (b *browser) requested() []string {
	b.mu.Lock()
	defer b.mu.Unlock()
	return append([]string(nil), b.urls...)
}

func (p *page) writeArtifact(name string, data []byte) {
	p.t.Helper()
	if err := os.MkdirAll(artifactDir, 0o755); err != nil {
		p.t.Errorf("artifact dir: %v", err)
		return
	}
	path := filepath.Join(artifactDir, name)
	if err := os.WriteFile(path, data, 0o644); err != nil {
		p.t.Errorf("writing %s: %v", path, err)
		return
	}
	p.t.Logf("wrote %s", path)
}

// screenshot saves the full page as the test artifact name and, when docs
// is not empty and STREAMSESSION_UPDATE_SCREENSHOT=1, as the file docs.
func (p *page) screenshot(name, docs string) {
	p.t.Helper()
	ctx, cancel := context.WithTimeout(p.b.ctx, stepTimeout)
	defer cancel()
	// A viewport as tall as the page: capturing beyond the viewport makes
	// chromium lay the page out again, sometimes differently (a grid column
	// wrapped under the other one).
	height, err := chromedp.Run(ctx, chromedp.Evaluate[int64](`Math.ceil(document.documentElement.scrollHeight)`))
	if err != nil {
		p.fail("page height: %v", err)
	}
	if err := chromedp.Do(ctx, chromedp.EmulateViewport(viewportWidth, height)); err != nil {
		p.fail("viewport: %v", err)
	}
	png, err := chromedp.Run(ctx, chromedp.FullScreenshot(100))
	if err != nil {
		p.fail("screenshot: %v", err)
	}
	if err := chromedp.Do(ctx, chromedp.ResetViewport()); err != nil {
		p.fail("viewport: %v", err)
	}
	p.writeArtifact(name, png)
	if docs != "" && os.Getenv("STREAMSESSION_UPDATE_SCREENSHOT") == "1" {
		if err := os.MkdirAll(filepath.Dir(docs), 0o755); err != nil {
			p.t.Fatalf("docs dir: %v", err)
		}
		if err := os.WriteFile(docs, png, 0o644); err != nil {
			p.t.Fatalf("writing %s: %v", docs, err)
		}
		p.t.Logf("updated %s", docs)
	}
}

// open loads the console and waits until it has read its configuration and
// heard from the server.
func (p *page) open(baseURL string) {
	p.t.Helper()
	p.do("open the console", chromedp.Navigate(baseURL+"/"))
	p.waitFor("the page is ready", `document.body.dataset.ready === "true"`)
	p.waitPresent("the server is shown online", `#server-status[data-status="up"]`)
}

// guardNote is the text a refusal of the guard ends with.
const guardNote = "refused by the guard · no request sent"

// count returns how many elements match a CSS selector.
func (p *page) count(selector string) int {
	p.t.Helper()
	ctx, cancel := context.WithTimeout(p.b.ctx, stepTimeout)
	defer cancel()
	n, err := chromedp.Run(ctx, chromedp.Evaluate[int](fmt.Sprintf(`document.querySelectorAll(%q).length`, selector)))
	if err != nil {
		p.fail("counting %s: %v", selector, err)
	}
	return n
}

func countPrefix(urls []string, prefix string) int {
	n := 0
	for _, u := range urls {
		if strings.HasPrefix(u, prefix) {
			n++
		}
	}
	return n
}

// choose selects value in the select element with id, as a user does.
func (p *page) choose(id, value string) {
	p.t.Helper()
	p.do("choose "+value+" in #"+id, chromedp.Evaluate[chromedp.Void](fmt.Sprintf(
		`(s => { s.value = %q; s.dispatchEvent(new Event("change")); })(document.getElementById(%q))`, value, id)))
}

// TestConsoleInBrowser drives the page in headless chromium against the real
// API, asserting at each step what the page shows. It leaves screenshots in
// testdata/artifacts; to refresh the README's, run
//
//	STREAMSESSION_UPDATE_SCREENSHOT=1 go test -run TestConsoleInBrowser ./console/
func TestConsoleInBrowser(t *testing.T) {
	b := newBrowser(t)
	srv := newAPIServer(t)

	// create → start → task (refused: 10002) → connect → task → interrupt →
	// drop and reconnect the socket → stop.
	t.Run("lifecycle", func(t *testing.T) {
		p := b.page(t)
		p.open(srv.URL)
		if got := p.text("#account option:checked"); !strings.HasPrefix(got, "demo-trial") {
			p.fail("the first demo account is not selected: %q", got)
		}
		p.waitFor("no state is highlighted before a session exists", `document.querySelectorAll("#diagram .active").length === 0`)

		p.click("btn-new")
		p.waitState("new")
		// The server serves no media: no offer, no peer, no video.
		p.waitPresent("no media is shown", `#peer-status[data-status="none"]`)
		p.waitFor("no video is shown", `document.querySelector("#avatar-video").hidden && !document.querySelector("#media-empty").hidden`)
		id := p.text("#info-id")
		if len(id) < 16 {
			p.fail("session id shown = %q, want a session id", id)
		}
		row := fmt.Sprintf(`#sessions tbody tr[data-session-id=%q]`, id)
		p.waitPresent("the new session is listed", row+`[data-status="new"]`)

		p.click("btn-start")
		p.waitState("connecting")
		if got := p.text("#error-start"); got != "" {
			p.fail("#error-start = %q after a successful start", got)
		}

		// A task before the socket is open: the guard refuses it with the
		// server's 10002, and sends nothing.
		p.waitPresent("the guard marks Send task as refused", `#btn-task[data-refused="10002"]`)
		p.click("btn-task")
		p.waitPresent("the task's refusal is shown", `#error-task[data-code="10002"][data-guard="true"]`)
		if got, want := p.text("#error-task"), "10002Session state wrong: connectingHTTP 400"+guardNote; got != want {
			p.fail("#error-task = %q, want %q", got, want)
		}
		p.waitPresent("the refusal is logged", `#log li[data-kind="guard"][data-event="guard.streaming.task"][data-code="10002"]`)
		p.screenshot("console-guard-refused.png", "")
		p.waitState("connecting")

		// Opening the realtime socket moves the session to connected.
		p.click("btn-connect")
		p.waitPresent("the socket is open", `#socket-status[data-status="open"]`)
		p.waitState("connected")
		p.waitPresent("the state event is logged", `#log li[data-kind="socket"][data-event="session.state_updated"]`)
		p.waitPresent("the session is listed as connected", row+`[data-status="connected"]`)
		// The socket opened after the refused click: had the click sent a
		// request, the server would have received it by now.
		if n := srv.received("POST", "/v1/streaming.task"); n != 0 {
			p.fail("the server received %d streaming.task calls, want 0: the guard refused the click", n)
		}
		if n := countPrefix(b.requested(), srv.URL+"/v1/streaming.task"); n != 0 {
			p.fail("the page requested streaming.task %d times, want 0", n)
		}
		if n := p.count(`#log li[data-event="api.streaming.task"]`); n != 0 {
			p.fail("the Events card logs %d streaming.task calls, want 0", n)
		}

		// Start again: the guard refuses it with the server's 10003.
		starts := srv.received("POST", "/v1/streaming.start")
		p.click("btn-start")
		p.waitPresent("the second start's refusal is shown", `#error-start[data-code="10003"][data-guard="true"]`)
		if got, want := p.text("#error-start"), "10003Session state wrong: connectedHTTP 400"+guardNote; got != want {
			p.fail("#error-start = %q, want %q", got, want)
		}

		// A task: the avatar talks, and the task's earlier error is cleared.
		p.click("btn-task")
		p.waitFor("the task is sent", `document.querySelector('#log li[data-event="api.streaming.task"]')`)
		if got := srv.received("POST", "/v1/streaming.start"); got != starts {
			p.fail("the server received %d streaming.start calls, want %d: the guard refused the second", got, starts)
		}
		p.waitFor("the task's error is cleared", `document.querySelector("#error-task").textContent === ""`)
		p.waitPresent("avatar_start_talking is logged", `#log li[data-event="avatar_start_talking"]`)
		p.waitPresent("avatar_stop_talking is logged", `#log li[data-event="avatar_stop_talking"][data-interrupted="false"]`)
		p.waitPresent("the task call is logged", `#log li[data-kind="api"][data-event="api.streaming.task"]:not(.bad)`)
		p.click("btn-keep-alive")
		p.waitPresent("keep_alive is logged", `#log li[data-event="api.streaming.keep_alive"]:not(.bad)`)

		// A long task, interrupted.
		p.do("type a long task", chromedp.SetValue(chromedp.ID("task-text"), longTask))
		p.click("btn-task")
		p.waitFor("two talks started", `document.querySelectorAll('#log li[data-event="avatar_start_talking"]').length === 2`)
		p.waitFor("the avatar is shown speaking", `!document.querySelector("#talking").hidden`)
		p.screenshot("console.png", readmeScreenshot)
		p.click("btn-interrupt")
		p.waitPresent("the interrupted talk is logged", `#log li[data-event="avatar_stop_talking"][data-interrupted="true"]`)
		p.waitFor("the avatar is no longer shown speaking", `document.querySelector("#talking").hidden`)

		// A dropped socket is shown with a Reconnect button; the session stays connected.
		p.click("btn-disconnect")
		p.waitPresent("the dropped socket is shown", `#socket-status[data-status="dropped"]`)
		p.waitFor("Reconnect is offered", `!document.querySelector("#btn-reconnect").hidden`)
		p.waitState("connected")
		p.click("btn-reconnect")
		p.waitPresent("the socket is open again", `#socket-status[data-status="open"]`)
		p.waitFor("Reconnect is hidden again", `document.querySelector("#btn-reconnect").hidden`)

		// Stop: closed, and the session leaves the table.
		p.click("btn-stop")
		p.waitState("closed")
		p.waitFor("the session leaves the table", fmt.Sprintf(`!document.querySelector(%q)`, row))
		p.waitPresent("the socket is closed by the server", `#socket-status[data-status="closed"]`)
		for _, s := range []string{"new", "connecting", "connected"} {
			p.waitPresent(s+" is marked as passed", fmt.Sprintf(`#diagram [data-state=%q].visited`, s))
		}
		p.screenshot("console-closed.png", "")

		// A call on the closed session: the guard answers 10005.
		keepAlives := srv.received("POST", "/v1/streaming.keep_alive")
		p.click("btn-keep-alive")
		p.waitPresent("keep_alive on a closed session is refused", `#error-keep-alive[data-code="10005"][data-guard="true"]`)
		p.click("btn-stop")
		p.waitPresent("stop on a closed session is refused", `#error-stop[data-code="10005"][data-guard="true"]`)
		p.click("btn-new") // a request after the refused ones
		p.waitState("new")
		if got := srv.received("POST", "/v1/streaming.keep_alive"); got != keepAlives {
			p.fail("the server received %d keep_alive calls, want %d", got, keepAlives)
		}
		if got := srv.received("POST", "/v1/streaming.stop"); got != 1 {
			p.fail("the server received %d stop calls, want 1", got)
		}
	})

	// The session authenticated with a one-time token, as HeyGen's browser SDK does.
	t.Run("token", func(t *testing.T) {
		p := b.page(t)
		p.open(srv.URL)
		p.click("use-token")
		p.click("btn-new")
		p.waitState("new")
		if got := p.text("#info-auth"); got != "Bearer token" {
			p.fail("#info-auth = %q, want %q", got, "Bearer token")
		}
		p.waitPresent("create_token is logged", `#log li[data-event="api.streaming.create_token"]:not(.bad)`)
		row := fmt.Sprintf(`#sessions tbody tr[data-session-id=%q]`, p.text("#info-id"))
		p.waitPresent("the token's session is listed for the account", row)
		p.click("btn-start")
		p.waitState("connecting")
		p.click("btn-connect")
		p.waitState("connected")
		p.click("btn-stop")
		p.waitState("closed")
		p.waitFor("the session leaves the table", fmt.Sprintf(`!document.querySelector(%q)`, row))
	})

	// A pasted key the server does not know: 400112 next to what refused it.
	t.Run("unknown key", func(t *testing.T) {
		p := b.page(t)
		p.open(srv.URL)
		p.choose("account", "paste")
		p.do("paste a key", chromedp.SendKeys(chromedp.ID("api-key"), "not-a-key\r"))
		p.waitPresent("the list's refusal is shown", `#error-list[data-code="400112"]`)
		p.click("btn-new")
		p.waitPresent("streaming.new's refusal is shown", `#error-new[data-code="400112"]`)
		p.waitFor("no state is highlighted", `document.querySelectorAll("#diagram .active").length === 0`)
	})

	// The server goes away: the page says so, and so do the buttons.
	t.Run("server gone", func(t *testing.T) {
		p := b.page(t)
		p.open(srv.URL)
		srv.Close()
		p.waitPresent("the server is shown as gone", `#server-status[data-status="down"]`)
		p.waitFor("the banner is shown", `!document.querySelector("#server-down").hidden`)
		p.click("btn-new")
		p.waitFor("streaming.new's failure is shown", `document.querySelector("#error-new").textContent === "The server cannot be reached."`)
	})

	if problems := b.pageProblems(); len(problems) > 0 {
		t.Errorf("the page's console shows errors: %q", problems)
	}
	// Works offline: every request, the socket's included, went to the test server.
	base, err := url.Parse(srv.URL)
	if err != nil {
		t.Fatal(err)
	}
	urls := b.requested()
	if len(urls) < 10 {
		t.Errorf("the page made %d requests, want the page, its assets and the API calls: %q", len(urls), urls)
	}
	for _, u := range urls {
		if parsed, err := url.Parse(u); err != nil || parsed.Host != base.Host {
			t.Errorf("the page requested %q, not on the test server %s", u, base.Host)
		}
	}
}
