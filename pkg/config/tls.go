package config

import (
	"crypto/tls"
	"crypto/x509"
	"fmt"
	"os"
)

// TLSServe is the certificate a binary serves TLS with (bp-server,
// bp-relay): with both set, the HTTP listener serves https and wss, and the
// raw TCP listener serves TLS (clients use tls:// targets). See docs/TLS.md.
type TLSServe struct {
	TLSCert string `envconfig:"TLS_CERT" flag:"tls-cert" default:"" desc:"PEM certificate (chain) file: serve TLS on the HTTP listener (https, wss), the TCP listener (tls:// targets) and the gRPC listener (grpcs://, bp-server only); needs --tls-key"`
	TLSKey  string `envconfig:"TLS_KEY" flag:"tls-key" default:"" desc:"PEM private key file of --tls-cert"`
}

// Enabled reports whether TLS is asked for.
func (t TLSServe) Enabled() bool { return t.TLSCert != "" || t.TLSKey != "" }

// Validate checks that cert and key come together and load.
func (t TLSServe) Validate() error {
	_, err := t.ServerConfig()
	return err
}

// ServerConfig loads the certificate; nil when TLS is off. It offers only
// HTTP/1.1, which WebSocket upgrades need; bp-server's HTTP listener adds h2
// ahead of it for its HTTP/2 streams (internal/hop), and its gRPC listener
// asks for h2 alone.
func (t TLSServe) ServerConfig() (*tls.Config, error) {
	switch {
	case !t.Enabled():
		return nil, nil
	case t.TLSCert == "":
		return nil, Invalid("tls-cert", t.TLSCert, "is required with --tls-key")
	case t.TLSKey == "":
		return nil, Invalid("tls-key", t.TLSKey, "is required with --tls-cert")
	}
	cert, err := tls.LoadX509KeyPair(t.TLSCert, t.TLSKey)
	if err != nil {
		return nil, Invalid("tls-cert", t.TLSCert, "cannot load it with --tls-key "+t.TLSKey+": "+err.Error())
	}
	return &tls.Config{
		Certificates: []tls.Certificate{cert},
		MinVersion:   tls.VersionTLS12,
		NextProtos:   []string{"http/1.1"},
	}, nil
}

// TLSDial is how a binary verifies the servers it connects to over TLS
// (wss:// and tls:// targets; bp-client, and bp-relay upstream).
type TLSDial struct {
	CAFile             string `envconfig:"CA_FILE" flag:"ca-file" default:"" desc:"PEM file of the certificate authorities to trust for wss:// and tls:// (bp-client: grpcs:// and https:// too) (default: the system's)"`
	InsecureSkipVerify bool   `envconfig:"INSECURE_SKIP_VERIFY" flag:"insecure-skip-verify" default:"false" desc:"do not verify the server's TLS certificate (tests only: anyone in the path can read and change the stream)"`
}

// Validate checks that the CA file loads.
func (t TLSDial) Validate() error {
	_, err := t.ClientConfig()
	return err
}

// ClientConfig builds the TLS settings for dialling: the CA file's
// authorities only, when given; the system's otherwise.
func (t TLSDial) ClientConfig() (*tls.Config, error) {
	cfg := &tls.Config{MinVersion: tls.VersionTLS12, InsecureSkipVerify: t.InsecureSkipVerify}
	if t.CAFile == "" {
		return cfg, nil
	}
	pem, err := os.ReadFile(t.CAFile)
	if err != nil {
		return nil, Invalid("ca-file", t.CAFile, fmt.Sprintf("cannot read it: %v", err))
	}
	pool := x509.NewCertPool()
	if !pool.AppendCertsFromPEM(pem) {
		return nil, Invalid("ca-file", t.CAFile, "holds no PEM certificate")
	}
	cfg.RootCAs = pool
	return cfg, nil
}
