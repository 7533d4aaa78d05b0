// Package netns keeps a test's network traffic on loopback by running it
// again in a new network namespace where only lo is up. The project's
// browser and WebRTC tests use it so that neither Chromium's ICE nor
// pion's can send to another address. Without unshare (or the right to
// make a namespace) a test skips, saying why, unless CI is set: then it
// fails.
package netns

import (
	"net"
	"os"
	"os/exec"
	"strings"
	"testing"
)

// envInside is set in the environment of a test re-run in a namespace.
const envInside = "STREAMSESSION_NETNS"

// LoopbackOnly reports whether every network interface that is up is a
// loopback one.
func LoopbackOnly(t testing.TB) bool {
	t.Helper()
	ifs, err := net.Interfaces()
	if err != nil {
		t.Fatalf("net.Interfaces: %v", err)
	}
	for _, i := range ifs {
		if i.Flags&net.FlagUp != 0 && i.Flags&net.FlagLoopback == 0 {
			return false
		}
	}
	return true
}

// Enter returns true when the calling test already runs where only
// loopback interfaces are up and should go on. Otherwise it runs the test
// again, in a new network namespace with only lo up, logs its output,
// fails or skips as that run did, and returns false: the caller returns.
// what names the test in the message of a skip or a CI failure.
func Enter(t *testing.T, what string) bool {
	t.Helper()
	if LoopbackOnly(t) {
		return true
	}
	if os.Getenv(envInside) != "" {
		t.Fatal("in the test's network namespace, yet a non-loopback interface is up")
	}
	if _, err := exec.LookPath("unshare"); err != nil {
		missing(t, what, "no unshare (util-linux) to make a loopback-only network namespace")
	}
	if err := exec.Command("unshare", "-n", "true").Run(); err != nil {
		missing(t, what, "unshare -n failed ("+err.Error()+"): the test needs root or user namespaces")
	}
	args := []string{"-n", "--", "sh", "-c", `ip link set lo up && exec "$@"`, "sh",
		os.Args[0], "-test.run=^" + t.Name() + "$", "-test.count=1", "-test.v"}
	cmd := exec.Command("unshare", args...)
	cmd.Env = append(os.Environ(), envInside+"=1")
	out, err := cmd.CombinedOutput()
	t.Logf("re-run in a loopback-only network namespace:\n%s", out)
	if err != nil {
		t.Fatalf("the test in the namespace failed: %v", err)
	}
	if strings.Contains(string(out), "--- SKIP") {
		t.Skip("skipped in the namespace")
	}
	return false
}

// missing skips, or with CI set fails, a test that cannot make its
// namespace.
func missing(t *testing.T, what, why string) {
	t.Helper()
	if os.Getenv("CI") != "" {
		t.Fatal(what + " cannot run and CI is set: " + why)
	}
	t.Skip("skipping " + what + " (with CI set this fails): " + why)
}
