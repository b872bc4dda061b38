package flow

// Protocols lists every transport in a fixed order: the values of the
// metrics' protocol label, and the slots of per-protocol arrays (it is an
// array, so that len(Protocols) is a constant and such arrays need no
// allocation). A new transport adds its Protocol here.
var Protocols = [...]Protocol{TCP, WebSocket, GRPC, HTTP2}

// ProtocolIndex is p's position in Protocols, or -1 for an unknown one.
func ProtocolIndex(p Protocol) int {
	for i, q := range Protocols {
		if q == p {
			return i
		}
	}
	return -1
}
