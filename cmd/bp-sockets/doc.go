// Command bp-sockets exports the kernel's view of a hop's TCP sockets, of
// any hop (HAProxy, nginx, Envoy, bp-relay): it reads every TCP socket of
// its network namespace through sock_diag, keeps the hop's by port
// (--downstream-ports, --upstream-ports), and serves the bp_socket_*
// metrics with a label side. Run it beside the hop, in the hop's network
// namespace. See docs/METRICS.md and docs/DEPLOY.md.
//
//	hop sockets (sock_diag dump, one per pass) -> by port: side=downstream | upstream -> bp_socket_*{side}
package main
