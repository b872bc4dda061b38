// Command bp-server accepts TCP and WebSocket streams and reads them slowly on
// purpose, so the path back to the client fills up. See README.md.
//
//	tcp, ws ==> flow reader -> pacer (size, delay, rate, pauses) -> discard
//	                 acks ---> back to the writer
package main
