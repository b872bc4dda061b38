package main

import (
	"context"
	"fmt"
	"os"
	"time"

	"github.com/go-backpressure/go-backpressure/pkg/flow"
)

func main() {
	target, _ := flow.ParseTarget(os.Args[1])
	ctx := context.Background()
	mux, err := flow.DialMux(ctx, target, flow.SocketOptions{})
	if err != nil {
		panic(err)
	}
	var conns []flow.Conn
	var sess []*flow.Session
	for k := range 8 {
		h := flow.Hello{RunID: "check", Direction: flow.Up, PayloadSize: 16 << 10, DurationMS: 3000, Stream: k, FullSpeed: k >= 1}
		c, err := mux.OpenStream(ctx, h)
		if err != nil {
			panic(err)
		}
		conns = append(conns, c)
		s := flow.NewSession(c, flow.Plan{Initiator: true, Write: &flow.WritePlan{Payload: make([]byte, 16<<10), Duration: 3 * time.Second}}, flow.Nop{})
		sess = append(sess, s)
		go s.Run(ctx)
	}
	time.Sleep(2 * time.Second)
	for k, c := range conns {
		st := c.(flow.StreamConn).StreamLayer()
		fmt.Printf("stream %d acked %d sendStream %d sendConn %d blockedStream %v blockedConn %v blockedTCP %v\n", k, sess[k].Snapshot().Acked, st.SendStreamWindow, st.SendConnWindow, st.BlockedStream.Round(time.Millisecond), st.BlockedConn.Round(time.Millisecond), st.BlockedTCP.Round(time.Millisecond))
	}
	os.Exit(0)
}
