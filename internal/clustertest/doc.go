// Package clustertest holds the multi-process tests of distributed mode:
// it builds examples/streaming, runs several nodes of it as separate OS
// processes with -redis against one real redis-server (started by
// internal/redistest), and checks that they behave as one service: limits
// never exceeded at any instant, sessions visible and controllable from
// every node, events delivered to the node holding the socket, a killed
// node's sessions going on through the other nodes with their slots held,
// and Redis failures answered with typed errors without closing running
// sessions.
//
// The package has no API; its tests are the point. They need redis-server
// (see internal/redistest) and the go command.
package clustertest
