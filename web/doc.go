// Package web is the browser client: a page, embedded into bp-server and
// served at /client, that writes payload from the browser to the server,
// over WebSocket (/ws) or over HTTP/2 (/h2), or over HTTP/2 reads the
// server's at its own pace (a download, or both), and shows what the
// browser sees of backpressure.
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
//	page (JS) --POST /h2?acks=post, a body of the hello line alone-->
//	    ^      <-- Bp-Ack-Stream: ID; data frames, fin (the download) --+
//	    +--POST /h2/acks?download=ID, a body of ack frames (both: and
//	       the page's data frames and fin), ended after the final ack-->
//
// Over WebSocket the page's one view of backpressure is bufferedAmount,
// the bytes handed to send() that the browser has not yet passed to the
// network: it sends only while it is below a high-water mark. Over HTTP/2
// it is how long each chunk of the upload's body waits for the browser's
// next pull (docs/HTTP2.md, "The browser"); its acks come on a sibling
// stream, since a browser streams a request body only half duplex. Either
// is charted next to the server's acks. A download's page sees nothing of
// the backpressure it makes by reading slowly: the server's writes block,
// and its metrics say so. Everything is plain HTML, CSS and
// JavaScript with no build step and nothing fetched from elsewhere, so the
// page works on a machine with no internet access.
package web
