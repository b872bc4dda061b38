//go:build !linux

package flow

import "errors"

// splicer moves frame bodies with splice(2) on Linux; elsewhere a relay
// always copies.
type splicer struct{ held int }

func newSplicer(src, dst Conn) *splicer { return nil }

func (sp *splicer) ready() bool { return false }
func (sp *splicer) close()      {}

func (sp *splicer) read(max int) (int, error) { return 0, errors.New("splice: not supported") }
func (sp *splicer) write() (int, error)       { return 0, errors.New("splice: not supported") }
