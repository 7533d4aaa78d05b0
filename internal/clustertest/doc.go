// Package clustertest holds the multi-process tests of distributed mode:
// it builds examples/streaming, runs several nodes of it as separate OS
// processes with -redis against one real redis-server (started by
// internal/redistest), and checks that they behave as one service: limits
// never exceeded at any instant, sessions visible and controllable from
// every node, events delivered to the node holding the socket, a killed
// node's sessions going on through the other nodes with their slots held,
// and Redis failures answered with typed errors without closing running
// sessions. The deploy tests put a real haproxy in front of the nodes
// (probing /readyz, retrying on another node) and restart every node in
// turn while clients keep their sockets open through it: a node drains on
// SIGTERM (sockets closed with 1012, reopened through another node) and no
// session is lost.
//
// The package has no API; its tests are the point. They need redis-server
// (see internal/redistest), haproxy (the Debian package) and the go
// command; without them they skip, and fail when CI is set.
package clustertest
