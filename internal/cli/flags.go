package cli

import (
	"fmt"
	"io"
	"math"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/spf13/pflag"
	"go.uber.org/zap"
	"go.uber.org/zap/zapcore"

	"github.com/dydisnix/dydisnix/deployer"
	"github.com/dydisnix/dydisnix/internal/fleettls"
	"github.com/dydisnix/dydisnix/model"
)

// StateDirEnv names the environment variable that gives the coordinator's
// state directory when --state-dir is not given.
const StateDirEnv = "DYDISNIX_STATE_DIR"

// StateDir is --state-dir: the coordinator's state directory (generations,
// lock, snapshots).
type StateDir struct {
	// Dir is the flag's value, "" when not given.
	Dir string
}

// AddFlags defines --state-dir in fs.
func (s *StateDir) AddFlags(fs *pflag.FlagSet) {
	fs.StringVar(&s.Dir, "state-dir", "", "`DIR` coordinator state directory (default $"+StateDirEnv+", else ~/.dydisnix)")
}

// Path is the state directory: --state-dir, else $DYDISNIX_STATE_DIR, else
// ~/.dydisnix (.dydisnix in the working directory without a home).
func (s *StateDir) Path() string {
	if s.Dir != "" {
		return s.Dir
	}
	if d := os.Getenv(StateDirEnv); d != "" {
		return d
	}
	home, err := os.UserHomeDir()
	if err != nil {
		return ".dydisnix"
	}
	return filepath.Join(home, ".dydisnix")
}

// Agent is how the coordinator's commands reach the targets' agents:
// --agent-token-file, --agent-ca-file, --tls-cert, --tls-key and
// --insecure-http.
type Agent struct {
	// TokenFile holds the agents' bearer token ("" when not given).
	TokenFile string
	// CAFile holds the fleet CA (dydisnix-tls ca create): the only
	// certificate trusted for agents, which must name their target's
	// hostname ("" when not given).
	CAFile string
	// CertFile and KeyFile are the coordinator's certificate and key
	// (dydisnix-tls cert create --coordinator), presented to the agents.
	CertFile, KeyFile string
	// InsecureHTTP permits agents served over plain HTTP.
	InsecureHTTP bool
}

// AddFlags defines --agent-token-file, --agent-ca-file, --tls-cert,
// --tls-key and --insecure-http in fs.
func (a *Agent) AddFlags(fs *pflag.FlagSet) {
	fs.StringVar(&a.TokenFile, "agent-token-file", "", "`FILE` the agents' bearer token")
	fs.StringVar(&a.CAFile, "agent-ca-file", "", "`FILE` the fleet CA (dydisnix-tls ca create): agents must have a certificate of it naming their target's hostname")
	fs.StringVar(&a.CertFile, "tls-cert", "", "`FILE` the coordinator's certificate for the agents (dydisnix-tls cert create --coordinator)")
	fs.StringVar(&a.KeyFile, "tls-key", "", "`FILE` the coordinator certificate's key")
	fs.BoolVar(&a.InsecureHTTP, "insecure-http", false, "also reach agents over plain HTTP, unauthenticated (only with agents run with --insecure-http)")
}

// Configured reports whether any of the agents' credentials or
// --insecure-http was given: the coordinator means to reach agents.
func (a *Agent) Configured() bool {
	return a.TokenFile != "" || a.CAFile != "" || a.CertFile != "" || a.KeyFile != "" || a.InsecureHTTP
}

// tlsSetup is how to create the certificates, for usage errors.
const tlsSetup = `create a fleet CA and certificates with dydisnix-tls:
  dydisnix-tls ca create --dir D
  dydisnix-tls cert create --dir D --name coordinator --coordinator
  dydisnix-tls cert create --dir D --name HOSTNAME   (one per target, run by its agent)
then give --agent-ca-file D/ca.pem --tls-cert D/coordinator.pem --tls-key D/coordinator-key.pem
(or --insecure-http here and on the agents, for plain HTTP without authentication)`

// Require is a usage error when --agent-token-file is not given, or when
// neither --agent-ca-file nor --insecure-http is (it tells how to create
// the certificates), or when only one of --tls-cert and --tls-key is.
func (a *Agent) Require() error {
	switch {
	case a.TokenFile == "":
		return Usagef("--agent-token-file is required")
	case a.CAFile == "" && !a.InsecureHTTP:
		return Usagef("the agents are reached over mutual TLS: --agent-ca-file is required; %s", tlsSetup)
	case (a.CertFile == "") != (a.KeyFile == ""):
		return Usagef("--tls-cert and --tls-key go together")
	case a.CAFile != "" && a.CertFile == "":
		return Usagef("--agent-ca-file needs the coordinator's certificate (--tls-cert, --tls-key): the agents accept no other client; %s", tlsSetup)
	}
	return nil
}

// TLS returns how to reach the agents (see deployer.AgentTLS), after
// Require's checks.
func (a *Agent) TLS() (*deployer.AgentTLS, error) {
	if err := a.Require(); err != nil {
		return nil, err
	}
	t := &deployer.AgentTLS{InsecureHTTP: a.InsecureHTTP}
	if a.CAFile != "" {
		cfg, err := fleettls.ClientConfig(a.CAFile, a.CertFile, a.KeyFile)
		if err != nil {
			return nil, err
		}
		t.Config = cfg
	}
	return t, nil
}

// Token reads the bearer token of --agent-token-file (see ReadToken); a
// missing --agent-token-file is a usage error.
func (a *Agent) Token() (string, error) {
	if a.TokenFile == "" {
		return "", Usagef("--agent-token-file is required")
	}
	return ReadToken(a.TokenFile)
}

// ReadToken reads a bearer token file: its content without surrounding
// white space, which must not be empty. The error names the file, never
// the token.
func ReadToken(file string) (string, error) {
	b, err := os.ReadFile(file)
	if err != nil {
		return "", fmt.Errorf("token file: %w", err)
	}
	tok := strings.TrimSpace(string(b))
	if tok == "" {
		return "", fmt.Errorf("token file %s is empty", file)
	}
	return tok, nil
}

// Log is --log-format and --log-level.
type Log struct {
	// Format is "console" (default) or "json".
	Format string
	// Level is the lowest level logged (default info).
	Level zapcore.Level
}

// AddFlags defines --log-format and --log-level in fs; bad values are
// usage errors when fs is parsed.
func (l *Log) AddFlags(fs *pflag.FlagSet) {
	ChoiceVarP(fs, &l.Format, "log-format", "", "console", "`FORMAT` log format: console or json", "console", "json")
	fs.Var((*levelValue)(&l.Level), "log-level", "`LEVEL` lowest level logged: debug, info, warn or error")
}

// Logger returns the logger the flags ask for, writing to w: one line per
// entry with an ISO 8601 time, as text (console) or as a JSON object.
func (l *Log) Logger(w io.Writer) *zap.Logger {
	ec := zap.NewProductionEncoderConfig()
	ec.EncodeTime = zapcore.ISO8601TimeEncoder
	var enc zapcore.Encoder
	if l.Format == "json" {
		enc = zapcore.NewJSONEncoder(ec)
	} else {
		ec.EncodeLevel = zapcore.CapitalLevelEncoder
		enc = zapcore.NewConsoleEncoder(ec)
	}
	return zap.New(zapcore.NewCore(enc, zapcore.AddSync(model.RedactWriter(w)), l.Level)) // no secret in a log line
}

// levelValue is a zapcore.Level as a pflag value.
type levelValue zapcore.Level

func (v *levelValue) Set(s string) error {
	var l zapcore.Level
	if err := l.Set(s); err != nil || l > zapcore.ErrorLevel {
		return fmt.Errorf("expected debug, info, warn or error")
	}
	*v = levelValue(l)
	return nil
}

func (v *levelValue) String() string { return zapcore.Level(*v).String() }
func (v *levelValue) Type() string   { return "level" }

// ChoiceVarP defines a string flag (short may be "") whose value must be
// one of allowed; any other value is a usage error when fs is parsed.
func ChoiceVarP(fs *pflag.FlagSet, p *string, name, short, def, usage string, allowed ...string) {
	*p = def
	fs.VarP(&choiceValue{p: p, allowed: allowed}, name, short, usage)
}

type choiceValue struct {
	p       *string
	allowed []string
}

func (c *choiceValue) Set(s string) error {
	if !slices.Contains(c.allowed, s) {
		return fmt.Errorf("expected %s", orList(c.allowed))
	}
	*c.p = s
	return nil
}

func (c *choiceValue) String() string { return *c.p }
func (c *choiceValue) Type() string   { return "string" }

// orList writes "a", "a or b", "a, b or c".
func orList(s []string) string {
	if len(s) < 2 {
		return strings.Join(s, "")
	}
	return strings.Join(s[:len(s)-1], ", ") + " or " + s[len(s)-1]
}

// SecondsVarP defines a duration flag (short may be "") that also takes a
// bare number of seconds ("5", "0.5"), as the original tools did; a
// negative or unreadable value is a usage error when fs is parsed.
func SecondsVarP(fs *pflag.FlagSet, p *time.Duration, name, short string, def time.Duration, usage string) {
	*p = def
	fs.VarP((*secondsValue)(p), name, short, usage)
}

type secondsValue time.Duration

func (v *secondsValue) Set(s string) error {
	d, err := time.ParseDuration(s)
	if f, ferr := strconv.ParseFloat(s, 64); ferr == nil {
		if math.IsNaN(f) || math.Abs(f) > math.MaxInt64/float64(time.Second) {
			f = -1
		}
		d, err = time.Duration(f*float64(time.Second)), nil
	}
	if err != nil || d < 0 {
		return fmt.Errorf("expected a duration such as 2s or 500ms, or a number of seconds")
	}
	*v = secondsValue(d)
	return nil
}

func (v *secondsValue) String() string { return time.Duration(*v).String() }
func (v *secondsValue) Type() string   { return "duration" }
