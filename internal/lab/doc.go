// Package lab runs a whole path on one machine, on loopback: bp-server, the
// hops of a profile (bp-relay, HAProxy, nginx, or none) and bp-client, each
// a real process with its metrics endpoint, then scrapes every endpoint and
// stops everything it started, by pid.
//
//	bp-client --tcp:// or ws://--> [hop: bp-relay | haproxy | nginx] --> bp-server
//	 /metrics                        /metrics (or access log)              /metrics
//
// scripts/lab (make lab PROFILE=name) is its command line; the end-to-end
// tests in e2e/ use it to drive real HAProxy and nginx. The HAProxy and nginx
// configurations it runs are the ones in deploy/, rendered with free ports.
package lab
