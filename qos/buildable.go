package qos

import (
	"fmt"
	"runtime"
	"strings"

	"github.com/dydisnix/dydisnix/model"
)

// filterBuildable replaces the original's dydisnix-filter-buildable, which
// instantiated every (service, target) pair with Nix to see whether the
// service's package can be built for the target's system. dydisnix does not
// build packages, so "buildable" is decided from the models: a service may
// declare the systems it supports in a list property (default
// "supportedSystems", e.g. ["x86_64-linux", "aarch64-linux"]); a target's
// system is its "system" attribute, else defaultSystem, else the system of
// the machine running dydisnix (as builtins.currentSystem). A service that
// declares nothing is buildable everywhere. Like the original, every service
// keeps its key, possibly with no candidate left.

var buildableSpec = Spec{Name: "filterBuildable", Params: []string{"serviceProperty", "defaultSystem"}, New: newBuildable, Pure: true,
	Doc: "keep targets whose system is one of the service's supportedSystems (services without the property fit everywhere)"}

// BuildableCheck says whether a service can be built for a target and, when
// not, why.
type BuildableCheck func(s *model.Service, t *model.Target) (ok bool, reason string)

// Buildable is the filterBuildable filter with a replaceable check (a Go
// program may check with a real build instead).
type Buildable struct {
	Check BuildableCheck
}

// CurrentSystem is the Nix system name of this machine, e.g. "x86_64-linux".
func CurrentSystem() string {
	arch := map[string]string{"amd64": "x86_64", "arm64": "aarch64", "386": "i686", "arm": "armv7l", "riscv64": "riscv64", "ppc64le": "powerpc64le"}[runtime.GOARCH]
	if arch == "" {
		arch = runtime.GOARCH
	}
	return arch + "-" + runtime.GOOS
}

// SystemsCheck returns the default check: prop names the service's list of
// supported systems and def is the system of a target without "system"
// ("" = CurrentSystem()).
func SystemsCheck(prop, def string) BuildableCheck {
	if def == "" {
		def = CurrentSystem()
	}
	return func(s *model.Service, t *model.Target) (bool, string) {
		v, ok := s.Attrs[prop]
		if !ok || v == nil {
			return true, ""
		}
		sys := t.System()
		if sys == "" {
			sys = def
		}
		var systems []string
		switch x := v.(type) {
		case string:
			systems = []string{x}
		case []any:
			for _, e := range x {
				if str, ok := e.(string); ok {
					systems = append(systems, str)
				}
			}
		default:
			return false, fmt.Sprintf("%s is %s, expected a list of systems", prop, nixKind(v))
		}
		for _, x := range systems {
			if x == sys {
				return true, ""
			}
		}
		return false, fmt.Sprintf("system %q not in %s [%s]", sys, prop, strings.Join(quoteAll(systems), ", "))
	}
}

func quoteAll(ss []string) []string {
	out := make([]string, len(ss))
	for i, s := range ss {
		out[i] = fmt.Sprintf("%q", s)
	}
	return out
}

func newBuildable(p Params) (Filter, error) {
	prop, ok, err := p.Str("serviceProperty")
	if err != nil {
		return nil, err
	}
	if !ok || prop == "" {
		prop = "supportedSystems"
	}
	def, _, err := p.Str("defaultSystem")
	if err != nil {
		return nil, err
	}
	return &Buildable{Check: SystemsCheck(prop, def)}, nil
}

// Apply keeps the buildable candidates (a per-pair filter: see PairFilter).
func (b *Buildable) Apply(env *Env, in *Candidates) (*Candidates, error) {
	check := b.Check
	if check == nil {
		check = SystemsCheck("supportedSystems", "")
	}
	return PairFilter[*model.Service, *model.Target](&buildablePredicate{check: check}).Apply(env, in)
}

// buildablePredicate is the predicate of filterBuildable. It keeps the
// reason of the last failed check, which the loop asks for right after
// (a check may be a costly real build).
type buildablePredicate struct {
	check   BuildableCheck
	lastS   *model.Service
	lastT   *model.Target
	lastWhy string
}

func (p *buildablePredicate) Service(env *Env, name string, _ *ValueIDs) (ServiceCheck[*model.Service], error) {
	s := env.Services[name]
	if s == nil {
		return ServiceCheck[*model.Service]{}, fmt.Errorf("service %s is not in the services model", name)
	}
	return ServiceCheck[*model.Service]{State: s}, nil
}

func (*buildablePredicate) Target(_ *Env, t *model.Target, _ *ValueIDs) (*model.Target, error) {
	return t, nil
}

func (p *buildablePredicate) Fits(s *model.Service, t *model.Target) (bool, error) {
	ok, why := p.check(s, t)
	p.lastS, p.lastT, p.lastWhy = s, t, why
	return ok, nil
}

func (p *buildablePredicate) Reason(s *model.Service, t *model.Target) string {
	if s != p.lastS || t != p.lastT {
		_, p.lastWhy = p.check(s, t)
		p.lastS, p.lastT = s, t
	}
	return "not buildable: " + p.lastWhy
}
