module github.com/go-backpressure/go-backpressure

go 1.26.8

require (
	github.com/gorilla/websocket v1.5.3
	golang.org/x/sys v0.50.0
	golang.org/x/time v0.16.0
)
