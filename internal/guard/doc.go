// Package guard is what bp-server and bp-relay put in front of their
// listeners: a connection limit per listener and the WebSocket origin check
// (the rules are pkg/admission's), and counting and rate-limited logging of
// everything refused.
//
//	TCP accept   -> AdmitTCP (limit)                  -> AcceptTCP (hello)  -> Refused on error
//	GET /ws      -> AdmitWebSocket (origin, limit)    -> Upgrader.Accept    -> Refused on error
//
// Refusals before a connection is served count in
// bp_connections_rejected_total{reason=limit|origin|handshake}; refused
// hellos in bp_connection_errors_total{reason=hello|too_large|...}. See
// docs/SAFETY.md.
package guard
