package config

import (
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"reflect"
	"strconv"
	"strings"
	"time"

	"github.com/kelseyhightower/envconfig"
)

// Prefix is the environment variables' prefix.
const Prefix = "BP"

// Error is a bad setting: which one, the value, and why.
type Error struct {
	Flag   string // flag name without dashes
	Env    string // environment variable
	Value  string
	Reason string
}

func (e *Error) Error() string {
	if e.Env == "" { // a flag only
		return fmt.Sprintf("invalid value %q for --%s: %s", e.Value, e.Flag, e.Reason)
	}
	return fmt.Sprintf("invalid value %q for --%s (%s): %s", e.Value, e.Flag, e.Env, e.Reason)
}

// Invalid builds an *Error for the field of spec whose flag is name; mains
// use it in their Validate methods.
func Invalid(name string, value any, reason string) *Error {
	return &Error{Flag: name, Env: EnvName(name), Value: fmt.Sprint(value), Reason: reason}
}

// EnvName is the environment variable of a flag: read-size -> BP_READ_SIZE.
func EnvName(flagName string) string {
	return Prefix + "_" + strings.ToUpper(strings.ReplaceAll(flagName, "-", "_"))
}

// ErrHelp is returned by Load when --help was asked for; the usage is
// already printed.
var ErrHelp = flag.ErrHelp

// field is one setting found in the struct.
type field struct {
	flag, env, def, desc string
	v                    reflect.Value
}

// Load fills spec (a pointer to a struct) from defaults, the environment and
// args, and tracks which flags were given (see Set). Usage goes to out.
func Load(name, summary string, spec any, args []string, out io.Writer) (*Loaded, error) {
	fields, err := collect(reflect.ValueOf(spec).Elem())
	if err != nil {
		return nil, err
	}
	if err := envconfig.Process(Prefix, spec); err != nil {
		var pe *envconfig.ParseError
		if errors.As(err, &pe) {
			for _, f := range fields {
				if f.env == Prefix+"_"+pe.KeyName || f.env == pe.KeyName {
					return nil, &Error{Flag: f.flag, Env: f.env, Value: pe.Value, Reason: cleanReason(pe.Err)}
				}
			}
		}
		return nil, err
	}
	fs := flag.NewFlagSet(name, flag.ContinueOnError)
	fs.SetOutput(io.Discard)
	for _, f := range fields {
		fs.Var(fieldValue{f.v}, f.flag, f.desc)
	}
	fs.Usage = func() {}
	if err := fs.Parse(args); err != nil {
		if errors.Is(err, flag.ErrHelp) {
			printUsage(out, name, summary, fields)
			return nil, ErrHelp
		}
		return nil, flagError(err, fields)
	}
	if fs.NArg() > 0 {
		return nil, fmt.Errorf("unexpected argument %q (settings are flags: see --help)", fs.Arg(0))
	}
	l := &Loaded{set: map[string]bool{}}
	fs.Visit(func(f *flag.Flag) { l.set[f.Name] = true })
	return l, nil
}

// Loaded remembers which flags were given on the command line.
type Loaded struct{ set map[string]bool }

// Set reports whether --name was given on the command line.
func (l *Loaded) Set(name string) bool { return l.set[name] }

// flagError turns the flag package's message into an *Error.
func flagError(err error, fields []field) error {
	msg := err.Error()
	// flag's formats: invalid value "x" for flag -name: reason, and for
	// boolean flags: invalid boolean value "x" for -name: reason
	for _, form := range []struct{ prefix, marker string }{{"invalid value ", " for flag -"}, {"invalid boolean value ", " for -"}} {
		if !strings.HasPrefix(msg, form.prefix) {
			continue
		}
		for _, f := range fields {
			marker := form.marker + f.flag + ": "
			if i := strings.Index(msg, marker); i >= 0 {
				val, _ := strconv.Unquote(strings.TrimPrefix(msg[:i], form.prefix))
				return &Error{Flag: f.flag, Env: f.env, Value: val, Reason: msg[i+len(marker):]}
			}
		}
	}
	return fmt.Errorf("%s (see --help)", strings.Replace(msg, " -", " --", 1))
}

func cleanReason(err error) string {
	var ne *strconv.NumError
	if errors.As(err, &ne) {
		return "not a number"
	}
	if err != nil && strings.HasPrefix(err.Error(), "time: ") {
		return "not a duration (e.g. 250ms, 2s, 1m)"
	}
	return err.Error()
}

func collect(v reflect.Value) ([]field, error) {
	var out []field
	t := v.Type()
	for i := 0; i < t.NumField(); i++ {
		sf := t.Field(i)
		fv := v.Field(i)
		if sf.Anonymous && sf.Type.Kind() == reflect.Struct {
			inner, err := collect(fv)
			if err != nil {
				return nil, err
			}
			out = append(out, inner...)
			continue
		}
		name := sf.Tag.Get("flag")
		if name == "" || !sf.IsExported() {
			continue
		}
		env := EnvName(name)
		if sf.Tag.Get("ignored") == "true" {
			env = "" // a flag only: envconfig skips it
		} else if got := sf.Tag.Get("envconfig"); Prefix+"_"+got != env {
			return nil, fmt.Errorf("config: field %s: envconfig tag %q does not match flag %q", sf.Name, got, name)
		}
		out = append(out, field{flag: name, env: env, def: sf.Tag.Get("default"), desc: sf.Tag.Get("desc"), v: fv})
	}
	return out, nil
}

func printUsage(w io.Writer, name, summary string, fields []field) {
	fmt.Fprintf(w, "%s\n\nUsage: %s [flags]\n\n", summary, name)
	fmt.Fprintf(w, "Every flag can also be set by the environment variable shown; a flag beats\nthe environment, which beats the default. Sizes are bytes: 65536, 64KiB, 1MB.\nDurations: 250ms, 2s, 1m30s.\n\n")
	for _, f := range fields {
		def := f.def
		if def == "" {
			def = `""`
		}
		env := f.env
		if env == "" {
			env = "flag only"
		}
		fmt.Fprintf(w, "  %s  (%s, default %s)\n      %s\n", strings.TrimSpace("--"+f.flag+" "+typeHint(f.v)), env, def, f.desc)
	}
}

func typeHint(v reflect.Value) string {
	switch v.Interface().(type) {
	case Size:
		return "SIZE"
	case time.Duration:
		return "DURATION"
	case bool:
		return ""
	case string:
		return "STRING"
	case float64:
		return "NUMBER"
	default:
		return "N"
	}
}

// fieldValue adapts a struct field to flag.Value with the same parsing as
// the environment.
type fieldValue struct{ v reflect.Value }

func (f fieldValue) String() string {
	if !f.v.IsValid() {
		return ""
	}
	return fmt.Sprint(f.v.Interface())
}

func (f fieldValue) IsBoolFlag() bool { return f.v.IsValid() && f.v.Kind() == reflect.Bool }

func (f fieldValue) Set(s string) error {
	switch p := f.v.Addr().Interface().(type) {
	case *Size:
		return p.Decode(s)
	case *time.Duration:
		d, err := time.ParseDuration(s)
		if err != nil {
			return errors.New("not a duration (e.g. 250ms, 2s, 1m)")
		}
		*p = d
	case *string:
		*p = s
	case *bool:
		b, err := strconv.ParseBool(s)
		if err != nil {
			return errors.New("not a boolean (true or false)")
		}
		*p = b
	case *int:
		n, err := strconv.Atoi(s)
		if err != nil {
			return errors.New("not a whole number")
		}
		*p = n
	case *int64:
		n, err := strconv.ParseInt(s, 10, 64)
		if err != nil {
			return errors.New("not a whole number")
		}
		*p = n
	case *float64:
		n, err := strconv.ParseFloat(s, 64)
		if err != nil {
			return errors.New("not a number")
		}
		*p = n
	default:
		return fmt.Errorf("unsupported setting type %T", p)
	}
	return nil
}

// Exit codes shared by the binaries.
const (
	ExitOK     = 0
	ExitFailed = 1
	ExitUsage  = 2
)

// Fail prints a configuration error the way every binary does and returns
// the exit status for it.
func Fail(name string, err error) int {
	if errors.Is(err, ErrHelp) {
		return ExitOK
	}
	fmt.Fprintf(os.Stderr, "%s: %v\n", name, err)
	return ExitUsage
}
