// Package guard ships the server's state rules to JavaScript clients: the ES
// module @streamsession/guard (index.js, generated from the fsm command policy
// by go generate; index.d.ts its types) and its optional wrapper of HeyGen's
// SDK 2.x (heygen.js). The Go package only embeds the module, so that the
// server can serve it at GET /v1/guard.js and the console can use it; its
// tests check that the committed index.js is what the policy generates and
// that it answers as the server does.
//
// Concurrency: the package holds immutable byte slices only.
package guard

import _ "embed"

//go:generate go run ../../internal/cmd/guardjs

// IndexJS is index.js, the module served at GET /v1/guard.js. Never modify it.
//
//go:embed index.js
var IndexJS []byte
