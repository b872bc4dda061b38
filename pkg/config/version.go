package config

// Version is the build's version, stamped at build time with
// -ldflags "-X github.com/go-backpressure/go-backpressure/pkg/config.Version=v1.2.3".
var Version = "dev"
