package qos

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"

	"github.com/dydisnix/dydisnix/internal/nixeval"
	"github.com/dydisnix/dydisnix/model"
)

// instantiateNix instantiates (nix-instantiate without --eval: the .drv
// files are written, nothing is built) the package of services of a .nix
// services model for one system, as the original's try-build.nix: the
// services function gets {system, pkgs, distribution, invDistribution}
// and the --extra-params it declares; pkgs is <nixpkgs> for that system
// when NIX_PATH has it. A pkg that is a function is given the service's
// dependsOn. The result maps each service to "" (instantiated) or the
// reason it failed. "only" (a service name, or "") limits it to one
// service: then an error of the package that tryEval cannot catch fails
// the run instead of the others.
const instantiateNix = `
{ file, system, only ? "", extraParams ? { } }:
let
  inherit (builtins) isFunction isAttrs functionArgs intersectAttrs mapAttrs tryEval seq filter attrNames;
  f = import file;
  found = tryEval (builtins.findFile builtins.nixPath "nixpkgs");
  pkgs = if found.success then import found.value { inherit system; }
    else throw "dydisnix --filter-buildable: <nixpkgs> is not on NIX_PATH";
  args = { inherit system pkgs; distribution = { }; invDistribution = { }; };
  services = if isFunction f
    then (let d = functionArgs f; all = extraParams // args; in f (if d == { } then args else intersectAttrs d all))
    else f;
  names = if only == "" then attrNames services else [ only ];
  package = s:
    let p = s.pkg; in
    if isFunction p then p (s.dependsOn or { }) else p;
  force = v: if isAttrs v && v ? drvPath then seq v.drvPath true else seq v true;
  try = s: if !(isAttrs s) || !(s ? pkg) then true else (tryEval (force (package s))).value or false;
  ok = n: (tryEval (try services.${n})).value or false;
in
builtins.listToAttrs (map (n: { name = n; value = ok n; }) names)
`

// NixPackageCheck returns the filterBuildable check of the original: the
// package of a service of the .nix services model file must instantiate
// for the target's system (its "system" attribute, else defaultSystem,
// else CurrentSystem()). Each (service, system) is tried once: one
// evaluation per system for every service, then one per service of a
// system whose evaluation failed as a whole. A package that fails to
// instantiate (an assert, a throw) drops the pair, with Nix's reason when
// the per-service evaluation gives one.
func NixPackageCheck(ctx context.Context, file string, opts model.NixOptions, defaultSystem string) BuildableCheck {
	if defaultSystem == "" {
		defaultSystem = CurrentSystem()
	}
	c := &nixPackages{ctx: ctx, file: file, opts: opts, bySystem: map[string]map[string]string{}}
	return func(s *model.Service, t *model.Target) (bool, string) {
		sys := t.System()
		if sys == "" {
			sys = defaultSystem
		}
		why := c.reason(s.Name, sys)
		if why == "" {
			return true, ""
		}
		return false, fmt.Sprintf("the package does not instantiate for %s: %s", sys, why)
	}
}

type nixPackages struct {
	ctx      context.Context
	file     string
	opts     model.NixOptions
	mu       sync.Mutex
	bySystem map[string]map[string]string // system → service → "" or the reason
}

func (c *nixPackages) reason(service, system string) string {
	c.mu.Lock()
	defer c.mu.Unlock()
	res, ok := c.bySystem[system]
	if !ok {
		res = map[string]string{}
		if all, err := c.run(system, ""); err == nil {
			for n, good := range all {
				if !good {
					res[n] = "nix-instantiate failed (assert or throw)"
				}
			}
		} else {
			res = nil // try service by service
		}
		c.bySystem[system] = res
	}
	if res == nil {
		one, err := c.run(system, service)
		switch {
		case err != nil:
			return err.Error()
		case !one[service]:
			return "nix-instantiate failed (assert or throw)"
		}
		return ""
	}
	return res[service]
}

func (c *nixPackages) run(system, only string) (map[string]bool, error) {
	bin, err := exec.LookPath(model.NixInstantiate)
	if err != nil {
		return nil, fmt.Errorf("%s is not on PATH", model.NixInstantiate)
	}
	abs, err := filepath.Abs(c.file)
	if err != nil {
		return nil, err
	}
	extra := strings.TrimSpace(c.opts.ExtraParams)
	if extra == "" {
		extra = "{ }"
	}
	args := []string{"--eval", "--read-write-mode", "--strict", "--json", "--expr", instantiateNix,
		"--argstr", "file", abs, "--argstr", "system", system, "--argstr", "only", only, "--arg", "extraParams", extra}
	ctx := c.ctx
	if ctx == nil {
		ctx = context.Background()
	}
	timeout := c.opts.Timeout
	if timeout <= 0 {
		timeout = model.DefaultNixTimeout
	}
	tctx, cancel := context.WithTimeout(ctx, timeout)
	defer cancel()
	out, err := nixeval.Run(tctx, bin, args, nil)
	if err != nil {
		var ee *nixeval.Error
		if errors.As(err, &ee) {
			return nil, errors.New(strings.ReplaceAll(nixeval.Message(ee.Stderr), "\n", " "))
		}
		return nil, err
	}
	var res map[string]bool
	if err := json.Unmarshal(out, &res); err != nil {
		return nil, fmt.Errorf("read the output of %s: %w", model.NixInstantiate, err)
	}
	return res, nil
}

// BothChecks keeps a pair only when every check keeps it, in order (a
// cheap check first spares the costly ones).
func BothChecks(checks ...BuildableCheck) BuildableCheck {
	return func(s *model.Service, t *model.Target) (bool, string) {
		for _, c := range checks {
			if ok, why := c(s, t); !ok {
				return false, why
			}
		}
		return true, ""
	}
}
