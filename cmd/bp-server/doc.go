// Command bp-server accepts TCP, WebSocket and gRPC streams and reads them
// slowly on purpose, so the path back to the client fills up. See README.md
// and docs/HTTP2.md.
//
//	tcp, ws, grpc ==> flow reader -> pacer (size, delay, rate, pauses) -> discard
//	                 acks ---> back to the writer
package main
