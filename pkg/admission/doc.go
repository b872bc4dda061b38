// Package admission decides which connections a listener serves at all,
// before any byte of the protocol: a limit of connections at once, the
// browser origins allowed to open a WebSocket, and the fixed set of
// reasons a refusal is counted by.
//
//	TCP accept -> ConnLimit.Acquire ------------------------> serve | refuse "limit"
//	GET /ws    -> OriginPolicy.Allowed -> ConnLimit.Acquire -> serve | refuse "origin", "limit"
//
// It is a package of its own, not part of pkg/flow, because nothing in it
// touches a stream: internal/guard applies it in front of bp-server's and
// bp-relay's listeners, and pkg/config validates the origin list with it.
// What a connection that was admitted may do (message sizes, idle and
// control write timeouts, close codes) stays with the transports and the
// session in pkg/flow. See docs/SAFETY.md.
package admission
