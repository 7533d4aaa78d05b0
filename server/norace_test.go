//go:build !race

package server

// raceEnabled tells tests that measure memory that the race detector's
// shadow memory is in the process's RSS.
const raceEnabled = false
