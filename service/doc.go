// Package service builds one node of a streamsession service from its
// configuration, and runs and drains it. It is the one place that says what
// a node is made of: the limiter (in memory, or shared in Redis), the
// session manager and its store, the bearer tokens, the idempotency store,
// the request budgets, the speech relay, the HTTP server with its probes,
// metrics and console, LiveAvatar's API beside it, the WebRTC media engine,
// the connection cap and
// the admin listener, and the order in which they stop.
//
// Start with [Parse] (or [Load] for a file, [Demo] for the built-in demo),
// then [New]; [Node.Serve] runs the node until its context ends and then
// shuts it down (alone) or drains it (with Redis). The command
// examples/streaming is flag parsing around these calls, and end-to-end
// tests use the same calls.
//
// # The file
//
// The file holds the keys below; the settings of the command line
// (RedisConfig but its WaitReplicas, Secret, MetricsAddr, ShutdownConfig)
// are fields of [Config] that the file does not set.
//
// A JSON object with exactly these keys, each optional:
//
//	{
//	  "capacity": 1000,
//	  "join_timeout_seconds": 300,
//	  "closed_retention_seconds": 600,
//	  "body_read_timeout_seconds": 10,
//	  "cors_origins": ["http://localhost:*", "http://127.0.0.1:*"],
//	  "idempotency_ttl_seconds": 86400,
//	  "plans": {
//	    "trial": {"max_concurrent": 3, "trial": true, "monthly_minutes": 300, "session_duration_limit": 600},
//	    "pro":   {"max_concurrent": 100}
//	  },
//	  "accounts": [
//	    {"api_key": "demo-trial-key", "name": "demo-trial", "plan": "trial"},
//	    {"api_key": "demo-pro-key",   "name": "demo-pro",   "plan": "pro"}
//	  ],
//	  "avatars": [
//	    {"avatar_id": "Wayne_20240711", "public": true, "status": "ACTIVE", "default": true},
//	    {"avatar_id": "demo_private",   "owner": "demo-pro", "status": "ACTIVE"}
//	  ],
//	  "max_closed_per_account": 1000,
//	  "idempotency_max_keys_per_account": 10000,
//	  "max_connections": 0,
//	  "public_url": "",
//	  "admin_addr": "",
//	  "redis_wait_replicas": 0,
//	  "media": {"enabled": true, "udp": "127.0.0.1:0", "ice_servers": []}
//	}
//
// A missing key takes its default, which is the value shown above ([DemoJSON]
// is that file, so "{}" is the demo configuration but for media), except
// that a file without "media" serves no media, and that the default
// "avatars" leaves out a demo avatar whose owner is not one of the file's
// accounts. A key that is present replaces its default entirely: "plans",
// "accounts" and "avatars" are not merged with the demo ones. Inside them:
//
//   - capacity (the open sessions of the whole service), join_timeout_seconds,
//     closed_retention_seconds and body_read_timeout_seconds (how long a
//     request's body may take to arrive: server.Config.BodyReadTimeout) are
//     whole numbers from 1 to 31536000.
//   - idempotency_ttl_seconds (how long streaming.new keeps an
//     Idempotency-Key and its answer) is a whole number from 1 to 31536000.
//   - cors_origins lists the browser origins allowed to call the API and
//     open the realtime socket (server.Config.Origins): exact origins
//     ("https://app.example.com"), "*" for any, or a port wildcard
//     ("http://localhost:*"); [] allows none.
//   - A plan: "trial" (default false); "max_concurrent" (default 3 for a
//     trial plan, 100 otherwise; 0 allows no session); "monthly_minutes"
//     (default 300; counted for trial plans only; 0 refuses every session);
//     "session_duration_limit" in seconds (default 600 for a trial plan, 0 =
//     none otherwise); "requests_per_second" (a number above 0, at most
//     1000000; default none: unlimited) and "burst" (1 or more; default the
//     rate rounded up; only with requests_per_second), the request budget of
//     each account of the plan (limits.Plan.RequestsPerSecond and
//     RequestBurst); "max_tokens_per_account" (default 1000, at most
//     1000000; 0 refuses every streaming.create_token), the bearer tokens an
//     account of the plan may hold at once (limits.Plan.MaxTokens) before
//     create_token answers 429/400140. Numbers are 0 or more unless said.
//   - An account: "api_key" and "name" are required and unique; "plan"
//     (default "trial") names a plan.
//   - An avatar: "avatar_id" is required and unique; "public" (default
//     false); "status" ACTIVE or INACTIVE, in any case (default ACTIVE);
//     "default" (default false, at most one avatar); "owner" names an
//     account by its name (default none); "default_voice" (default none).
//     An avatar that is neither public nor owned is usable by no one.
//   - max_closed_per_account (-1 for no bound) bounds the closed sessions
//     of one account kept for their retention window
//     (session.MemoryStoreConfig and redisstore.Config);
//     idempotency_max_keys_per_account (1 or more) the stored answers of
//     streaming.new of one account; max_connections (0: a fraction of the
//     open-file limit, server.DefaultMaxConnections) the API listener's
//     open connections.
//   - public_url (an http, https, ws or wss URL; default the listen
//     address) is the base of realtime_endpoint, url and LiveAvatar's
//     ws_url (server.Config.BaseURL); admin_addr (default none) serves
//     /healthz, /readyz and /metrics on a listener of their own.
//   - redis_wait_replicas (0 to 64; with Redis) makes the last write of a
//     session's creation and of its end wait for that many replicas.
//   - media ([MediaConfig]; package media): "enabled" (default false);
//     "udp" (an IP:port, default media.DefaultUDPAddr, loopback only) the
//     one UDP port of every peer; "public_ip" (an IP address) written in the
//     server's candidates behind NAT; "ice_servers" ([{"urls": [...],
//     "username", "credential"}], each URL stun:, stuns:, turn: or turns:)
//     handed to clients as ice_servers2; "node_url" (an http or https URL)
//     this node's base URL as the others reach it, required by [New] with
//     Redis when media is enabled.
//
// An unknown key, a value of the wrong type, trailing data or a bad value is
// an error whose message names the key ("config: accounts[1].plan: unknown
// plan \"gold\"").
//
// # Concurrency
//
// A [Config] is a plain value, safe to share once built. A [Node] is safe
// for concurrent use; it is ended once (Serve, Shutdown or Drain).
package service
