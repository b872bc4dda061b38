// Package config reads a binary's settings from flags, the environment and
// defaults, in that order of precedence, from one struct per binary:
//
//	defaults (tag default) -> environment BP_<NAME> (envconfig) -> flags --name
//
// Every field carries the tags envconfig (the variable's name without the
// BP_ prefix), flag (the flag's name), default and desc (the help text), so
// the flag, the variable and --help can never drift apart. A bad value is an
// *Error naming the flag, the variable and the value; mains exit with
// status 2 on it.
//
// Sizes are bytes, written as a plain number or with a unit: 64KiB and 1MiB
// are powers of two, 64KB and 1MB powers of ten.
package config
