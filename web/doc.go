// Package web is the browser client: a page, embedded into bp-server and
// served at /client, that writes WebSocket payload from the browser to /ws
// and shows what the browser sees of backpressure.
//
//	page (JS) --hello, binary payload, fin--> /ws (bp-server, or a hop in front of it)
//	    ^                                         |
//	    +------------- ack{bytes read} <----------+
//
// The browser gives a page one view of backpressure: WebSocket.bufferedAmount,
// the bytes handed to send() that the browser has not yet passed to the
// network. The page sends only while it is below a high-water mark, and
// charts it next to the server's acks. Everything is plain HTML, CSS and
// JavaScript with no build step and nothing fetched from elsewhere, so the
// page works on a machine with no internet access.
package web
