// Package flowtest holds the test servers and plans that the tests of
// pkg/flow and pkg/relay share: bp-server's accept loop, its sink session
// and the client's plan, in miniature, on real loopback sockets; and the
// build of the commands that the script tests run as processes.
//
//	test -> flow.Dial* ==> [relay] ==> ServeTCP / StartWSServer -> session -> ServerResult
package flowtest
