package admission

// RejectReasons are the reasons a listener refuses a connection before
// serving it: a small fixed set for bp_connections_rejected_total.
var RejectReasons = []string{"limit", "origin", "handshake", "ack_stream"}
