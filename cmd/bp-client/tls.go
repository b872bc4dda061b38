package main

import (
	"crypto/tls"
	"errors"
)

// tlsHint says what to do about a certificate the client did not accept,
// appended to the error; "" for other errors.
func tlsHint(err error) string {
	var verr *tls.CertificateVerificationError
	if errors.As(err, &verr) {
		return " (is the server's certificate signed by an authority in --ca-file? --insecure-skip-verify skips the check, for tests only)"
	}
	return ""
}

// permanent reports whether an error cannot go away by dialling again: a
// certificate the client does not accept.
func permanent(err error) bool {
	var verr *tls.CertificateVerificationError
	return errors.As(err, &verr)
}
