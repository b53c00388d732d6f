package augment

import (
	"context"
	_ "embed"
	"encoding/json"
	"fmt"
	"os/exec"
	"strings"
	"time"

	"github.com/dydisnix/dydisnix/internal/nixeval"
	"github.com/dydisnix/dydisnix/model"
)

// Lib is the Nix source of the lib passed to augmentation models: the
// commonly used functions of nixpkgs' lib (mapAttrs, filterAttrs,
// optionalAttrs, recursiveUpdate, attrNames, elem, ...).
//
//go:embed lib.nix
var Lib string

// NixAugmenter applies a Nix augmentation model, a function
// {infrastructure, lib}: <new infrastructure>. A model that takes only
// some of these arguments (e.g. {infrastructure}:) is given only those.
type NixAugmenter struct {
	// File is the absolute path of the model.
	File string
	// Eval evaluates the generated expression.
	Eval NixEvaluator
	// Timeout bounds one evaluation; zero means DefaultNixTimeout.
	Timeout time.Duration
	// ExtraParams is a Nix expression of an attribute set (--extra-params):
	// the model also gets those of its attributes it declares as
	// arguments, as the original's extraParams. "" = {}.
	ExtraParams string
}

// DefaultNixTimeout bounds one evaluation of a Nix augmentation model.
const DefaultNixTimeout = 2 * time.Minute

// Expr returns the Nix expression that applies the model to the
// infrastructure given as JSON on stdin. The infrastructure (which may hold
// secrets) is neither on a command line nor in the expression, so it never
// shows up in process listings or in Nix's error excerpts.
func (a *NixAugmenter) Expr() string {
	var b strings.Builder
	b.WriteString("let\n  lib = ")
	b.WriteString(Lib)
	b.WriteString(";\n  infrastructure = builtins.fromJSON (builtins.readFile \"/dev/stdin\")")
	b.WriteString(";\n  f = import ")
	b.WriteString(model.QuoteNix(a.File))
	b.WriteString(";\n  extraParams = ")
	extra := strings.TrimSpace(a.ExtraParams)
	if extra == "" {
		extra = "{ }"
	}
	b.WriteString("(" + extra + ")")
	b.WriteString(`;
  args = builtins.intersectAttrs formals extraParams // { inherit infrastructure lib; };
  formals = builtins.functionArgs f;
  # Paths become their absolute path strings instead of being copied to the store.
  plain = v:
    if builtins.typeOf v == "path" then toString v
    else if builtins.isAttrs v then builtins.mapAttrs (_: plain) v
    else if builtins.isList v then map plain v
    else v;
in
  if !(builtins.isFunction f)
  then throw "the augmentation model must be a function {infrastructure, lib}: ..."
  else let result = f (if formals == {} then args else builtins.intersectAttrs formals args); in
    if builtins.isAttrs result then plain result
    else throw "the augmentation model must return an infrastructure attribute set, got a ${builtins.typeOf result}"
`)
	return b.String()
}

// Apply evaluates the model on infra and reads the result back as an
// infrastructure model. Cancelling ctx stops the evaluation.
func (a *NixAugmenter) Apply(ctx context.Context, infra model.Infrastructure) (model.Infrastructure, error) {
	data, err := json.Marshal(infra)
	if err != nil {
		return nil, fmt.Errorf("augment %s: encode infrastructure: %w", a.File, err)
	}
	timeout := a.Timeout
	if timeout <= 0 {
		timeout = DefaultNixTimeout
	}
	ctx, cancel := context.WithTimeout(ctx, timeout)
	defer cancel()
	eval := a.Eval
	if eval == nil {
		eval = NixInstantiate{}
	}
	out, err := eval.EvalJSON(ctx, a.Expr(), data)
	if err != nil {
		return nil, fmt.Errorf("augment %s: %w", a.File, err)
	}
	v, err := model.DecodeValue(out, model.FormatJSON, a.File)
	if err != nil {
		return nil, fmt.Errorf("augment %s: read result: %w", a.File, err)
	}
	res, err := model.InfrastructureFromValue(v, a.File+" (result)")
	if err != nil {
		return nil, fmt.Errorf("augment: %w", err)
	}
	model.AddSecretsOf(res) // secret-named properties are never shown
	return res, nil
}

// NixInstantiate evaluates expressions with nix-instantiate --eval --strict
// --json --expr EXPR, with stdin connected to the given bytes.
type NixInstantiate struct {
	// Path is the nix-instantiate binary; "" looks it up on PATH.
	Path string
}

// EvalJSON implements NixEvaluator. Cancelling ctx kills the evaluator
// with everything it started.
func (n NixInstantiate) EvalJSON(ctx context.Context, expr string, stdin []byte) ([]byte, error) {
	bin := n.Path
	if bin == "" {
		p, err := exec.LookPath(nixeval.Command)
		if err != nil {
			return nil, fmt.Errorf("evaluating a .nix augmentation model needs %s on PATH: %w", nixeval.Command, err)
		}
		bin = p
	}
	return nixeval.Run(ctx, bin, []string{"--eval", "--read-write-mode", "--strict", "--json", "--expr", expr}, stdin)
}
