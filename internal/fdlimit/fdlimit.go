// Package fdlimit reads and raises the process's open-file limit
// (RLIMIT_NOFILE), which bounds the connections a binary can hold: every
// socket is a file descriptor. The listening binaries fit their
// connection limits to it (internal/hop); bp-client refuses a run whose
// connections cannot all be open at once.
package fdlimit
