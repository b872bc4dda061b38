// Package web is the browser client: a page, embedded into bp-server and
// served at /client, that writes payload from the browser to the server,
// over WebSocket (/ws) or over HTTP/2 (/h2), and shows what the browser
// sees of backpressure.
//
//	page (JS) --hello, binary payload, fin--> /ws (bp-server, or a hop in front of it)
//	    ^                                         |
//	    +------------- ack{bytes read} <----------+
//
//	page (JS) --GET /h2/acks---------------> names the ack stream (Bp-Ack-Stream)
//	          --POST /h2?acks=ID, a body of hello line, data frames, fin-->
//	    ^                                         |
//	    +---- ack frames, on the GET's response --+
//
// Over WebSocket the page's one view of backpressure is bufferedAmount,
// the bytes handed to send() that the browser has not yet passed to the
// network: it sends only while it is below a high-water mark. Over HTTP/2
// it is how long each chunk of the upload's body waits for the browser's
// next pull (docs/HTTP2.md, "The browser"); its acks come on a sibling
// stream, since a browser streams a request body only half duplex. Either
// is charted next to the server's acks. Everything is plain HTML, CSS and
// JavaScript with no build step and nothing fetched from elsewhere, so the
// page works on a machine with no internet access.
package web
