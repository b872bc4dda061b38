// Command bp-client pushes data at a bp-server (or pulls it, or both) and
// measures every write: how long it blocked, how often it stalled, how many
// bytes are in the pipe. See README.md.
//
//	generator -> flow writer ==bytes==> [hops] ==> bp-server
//	   report, verdict, live line <- acks, kernel samples, write timings
package main
