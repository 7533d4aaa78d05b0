package console_test

import (
	"context"
	"fmt"
	"net/url"
	"os"
	"strings"
	"testing"
	"time"

	"github.com/chromedp/chromedp"

	"github.com/streamsession/streamsession/internal/netns"
	"github.com/streamsession/streamsession/server"
)

// missingTool skips, or with CI set fails, a test that lacks a tool.
func missingTool(t *testing.T, format string, args ...any) {
	t.Helper()
	why := fmt.Sprintf(format, args...)
	if os.Getenv("CI") != "" {
		t.Fatal("the console's media test cannot run and CI is set: " + why)
	}
	t.Skip("skipping the console's media test (with CI set this fails): " + why)
}

// TestConsoleMediaInBrowser drives the page in headless chromium against a
// server with media on, in a loopback-only network namespace: Start answers
// the server's offer, the session is connected by the peer (no socket is
// opened), the video plays, a task's talking events arrive on the data
// channel, and Stop closes the session and the peer; with media unchecked
// ("version":"v2") the socket connects the session. It leaves screenshots
// in testdata/artifacts; to refresh docs/console-media.png, run
//
//	STREAMSESSION_UPDATE_SCREENSHOT=1 go test -run TestConsoleMediaInBrowser ./console/
func TestConsoleMediaInBrowser(t *testing.T) {
	if !netns.Enter(t, "the console's media test") {
		return
	}
	b := newBrowser(t,
		chromedp.Flag("allow-loopback-in-peer-connection", true),
		chromedp.Flag("disable-features", "WebRtcHideLocalIpsWithMdns"),
		chromedp.Flag("disable-sync", true),
		// A fake microphone granted without a prompt (see below).
		chromedp.Flag("use-fake-ui-for-media-stream", true),
		chromedp.Flag("use-fake-device-for-media-stream", true),
	)
	srv := newAPIServer(t, withMedia)
	p := b.page(t)
	p.open(srv.URL)
	t0 := time.Now()

	p.click("btn-new")
	p.waitState("new")
	id := p.text("#info-id")
	p.waitPresent("the offer is shown", `#peer-status[data-status="offered"]`)
	if !srv.media.Has(id) {
		p.fail("the server holds no peer for the new session")
	}
	row := fmt.Sprintf(`#sessions tbody tr[data-session-id=%q]`, id)

	// A task before the media is up: refused by the guard, nothing sent.
	p.click("btn-task")
	p.waitPresent("the task's refusal is shown", `#error-task[data-code="10001"][data-guard="true"]`)

	// Chromium gathers host candidates, loopback ones included, only for a
	// page that was granted a camera or a microphone; without them the
	// peer still connects (the server learns the page's address from its
	// checks) but nothing is trickled. A fake microphone, granted without a
	// prompt, lets the test see the page's candidates go out.
	p.do("grant a fake microphone", chromedp.Evaluate[chromedp.Void](
		`navigator.mediaDevices.getUserMedia({audio: true}).then(s => s.getTracks().forEach(t => t.stop()))`,
		chromedp.EvalAwaitPromise))
	p.click("btn-start")
	p.waitPresent("the answer is sent", `#log li[data-event="api.streaming.start"]:not(.bad)`)
	p.waitFor("the session is connecting or past it", `["connecting", "connected"].includes(document.querySelector("#info-state").textContent)`)
	p.waitPresent("the peer is connected", `#peer-status[data-status="connected"]`)
	p.waitState("connected")
	connected := time.Since(t0)
	p.waitPresent("the session is listed as connected", row+`[data-status="connected"]`)
	p.waitPresent("a candidate was trickled", `#log li[data-event="api.streaming.ice"]`)
	if n := p.count(`#log li[data-event="api.streaming.ice"].bad`); n != 0 {
		p.fail("%d streaming.ice calls were refused, want 0", n)
	}
	if n := srv.received("POST", "/v1/streaming.ice"); n == 0 {
		p.fail("the server received no streaming.ice call")
	}
	if got := p.text("#socket-status"); got != "not open" {
		p.fail("#socket-status = %q, want %q: media, not the socket, connects the session", got, "not open")
	}

	// The video plays: frames presented and decoded, at the avatar's size.
	p.waitFor("ten frames are shown", `+document.querySelector("#avatar-video").dataset.frames >= 10`)
	p.waitFor("frames are decoded", `document.querySelector("#avatar-video").getVideoPlaybackQuality().totalVideoFrames >= 10`)
	size := p.text("#media-stats")
	if !strings.HasPrefix(size, "320×240") {
		p.fail("#media-stats = %q, want the avatar's 320×240", size)
	}
	tracks := evaluate[string](p, `document.querySelector("#avatar-video").srcObject.getTracks().map(t => t.kind).sort().join(",")`)
	if tracks != "audio,video" {
		p.fail("the video plays tracks %q, want audio,video", tracks)
	}
	if !evaluate[bool](p, `document.querySelector("#avatar-video").muted`) {
		p.fail("the video starts unmuted, want muted until the user's click")
	}
	p.click("btn-mute")
	p.waitFor("the video is unmuted", `!document.querySelector("#avatar-video").muted && document.querySelector("#btn-mute").textContent === "Mute"`)

	// A long task: both talking events on the data channel, a screenshot
	// mid-talk, then an interrupt.
	p.do("type a long task", chromedp.SetValue(chromedp.ID("task-text"), longTask))
	p.click("btn-task")
	p.waitPresent("avatar_start_talking arrives on the data channel", `#log li[data-kind="media"][data-event="avatar_start_talking"]`)
	p.waitFor("the avatar is shown speaking", `!document.querySelector("#talking").hidden`)
	// A few frames of the talking clip, so that the picture shows it.
	talkFrom := evaluate[int](p, `+document.querySelector("#avatar-video").dataset.frames`)
	p.waitFor("frames of the talking clip are shown", fmt.Sprintf(`+document.querySelector("#avatar-video").dataset.frames >= %d`, talkFrom+8))
	p.screenshot("console-media.png", mediaScreenshot)
	p.click("btn-interrupt")
	p.waitPresent("avatar_stop_talking arrives on the data channel", `#log li[data-kind="media"][data-event="avatar_stop_talking"]`)
	p.waitFor("the avatar is no longer shown speaking", `document.querySelector("#talking").hidden`)
	frames := evaluate[int](p, `+document.querySelector("#avatar-video").dataset.frames`)
	decoded := evaluate[int](p, `document.querySelector("#avatar-video").getVideoPlaybackQuality().totalVideoFrames`)

	// Stop: the session closes, and so does the page's peer.
	p.click("btn-stop")
	p.waitState("closed")
	p.waitPresent("the peer is closed", `#peer-status[data-status="closed"]`)
	p.waitFor("the video is gone", `document.querySelector("#avatar-video").hidden && !document.querySelector("#avatar-video").srcObject`)
	p.waitFor("the session leaves the table", fmt.Sprintf(`!document.querySelector(%q)`, row))
	deadline := time.Now().Add(stepTimeout)
	for srv.media.Has(id) && time.Now().Before(deadline) {
		time.Sleep(20 * time.Millisecond)
	}
	if srv.media.Has(id) {
		p.fail("the server still holds the stopped session's peer")
	}
	t.Logf("connected through media %v after New; %d frames shown, %d decoded", connected.Round(time.Millisecond), frames, decoded)
	if n := srv.received("GET", server.PathRealtime); n != 0 {
		t.Errorf("the server received %d socket requests, want 0", n)
	}

	// Media unchecked: "version":"v2", no offer, and the socket connects
	// the session as without media.
	p.do("uncheck media", chromedp.Click(chromedp.ID("use-media")))
	p.click("btn-new")
	p.waitState("new")
	p.waitPresent("no media is offered", `#peer-status[data-status="none"]`)
	if id2 := p.text("#info-id"); id2 == id || srv.media.Has(id2) {
		p.fail("the v2 session %q has a peer on the server", id2)
	}
	p.click("btn-start")
	p.waitState("connecting")
	p.click("btn-connect")
	p.waitState("connected")
	p.waitFor("no video is shown", `document.querySelector("#avatar-video").hidden`)
	p.click("btn-stop")
	p.waitState("closed")
	if problems := b.pageProblems(); len(problems) > 0 {
		t.Errorf("the page's console shows errors: %q", problems)
	}
	base, err := url.Parse(srv.URL)
	if err != nil {
		t.Fatal(err)
	}
	for _, u := range b.requested() {
		if parsed, err := url.Parse(u); err != nil || parsed.Host != base.Host {
			t.Errorf("the page requested %q, not on the test server %s", u, base.Host)
		}
	}
}

// evaluate returns the value of a JavaScript expression on the page.
func evaluate[T any](p *page, expr string) T {
	p.t.Helper()
	var zero T
	ctx, cancel := context.WithTimeout(p.b.ctx, stepTimeout)
	defer cancel()
	v, err := chromedp.Run(ctx, chromedp.Evaluate[T](expr))
	if err != nil {
		p.fail("evaluating %s: %v", expr, err)
		return zero
	}
	return v
}
