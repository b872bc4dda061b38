// Package netlab builds the lab's hosts and links: network namespaces of
// their own, joined by veth links through a wire namespace per link that
// shapes the bandwidth (tc tbf) and delays and drops packets in a user
// space delay line (two TUN devices), so that TCP stays end to end between
// the hosts and the kernel measures the round trip that was asked for.
//
//	host a [to-b] ==veth== [to-a] wire a-b [to-b] ==veth== [to-a] host b
//	                          |  iif to-a -> dl-a -> delay line -> dl-b -> forward
//	                          |  iif to-b -> dl-b -> delay line -> dl-a -> forward
//	                          tbf on the wire's to-a and to-b (each direction's rate)
//
// Every name the package makes starts with Prefix and the run's id (the
// lab's pid), so that a later run can tell a dead run's leftovers from a
// running one's and remove them (RemoveLeftovers).
package netlab
