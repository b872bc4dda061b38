// Command bp-relay is an instrumented hop: it accepts TCP and WebSocket
// streams downstream, forwards them to an upstream tcp://, tls://, ws:// or wss://
// target through a buffer whose size the user chooses, and measures both
// sides. See docs/RELAY.md.
//
//	downstream (tcp, ws) -> [pkg/relay: stream | bounded | buffering] -> upstream (tcp, tls, ws, wss)
package main
