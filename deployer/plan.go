package deployer

import (
	"encoding/json"
	"fmt"
	"slices"
	"sort"
	"strings"

	"github.com/dydisnix/dydisnix/model"
)

// StepKind names what a step does.
type StepKind string

// The step kinds, in the order of the phases of a transition.
const (
	// StepUpload copies an artifact to a target (skipped when present). No lock needed.
	StepUpload StepKind = "upload"
	// StepLock locks a target for this transition.
	StepLock StepKind = "lock"
	// StepDeactivate stops an obsolete mapping (its state stays on disk).
	StepDeactivate StepKind = "deactivate"
	// StepSnapshot snapshots a moving service's state on its old target (after it stopped).
	StepSnapshot StepKind = "snapshot"
	// StepTransfer copies that snapshot old target → coordinator store → new target (hash-verified).
	StepTransfer StepKind = "transfer"
	// StepRestoreStore restores the newest snapshot of the coordinator's store
	// on the new target (the old target is unreachable).
	StepRestoreStore StepKind = "restore-from-store"
	// StepRestore restores the transferred snapshot into the new state directory (hash-verified).
	StepRestore StepKind = "restore"
	// StepActivate starts a new mapping (after its dependsOn dependencies).
	StepActivate StepKind = "activate"
	// StepDeleteState deletes obsolete state on an old target (--delete-state only).
	StepDeleteState StepKind = "delete-state"
	// StepUpdateContext rewrites the DYDISNIX_CONTEXT file (and the
	// environment used at the next restart) of an untouched mapping whose
	// connectsTo peers moved; the process is not restarted.
	StepUpdateContext StepKind = "update-context"
	// StepUnlock unlocks a target.
	StepUnlock StepKind = "unlock"
)

// Step is one numbered step of a plan.
type Step struct {
	// ID is the step number, 1-based; Steps[i].ID == i+1.
	ID int `json:"id"`
	// Kind says what the step does.
	Kind StepKind `json:"kind"`
	// Target is the target the step acts on.
	Target string `json:"target"`
	// From is the source target of a transfer/restore (the service's old target).
	From string `json:"from,omitempty"`
	// Service is the service name ("" for lock/unlock/upload).
	Service string `json:"service,omitempty"`
	// Key is the service key of the mapping acted on.
	Key string `json:"key,omitempty"`
	// Container is the container of the mapping.
	Container string `json:"container,omitempty"`
	// Artifact is the artifact digest of an upload step.
	Artifact string `json:"artifact,omitempty"`
	// Old is true when the mapping belongs to the old manifest.
	Old bool `json:"old,omitempty"`
	// Deps are the IDs of the steps that must finish first (PlanTransition
	// makes them all smaller than ID; Execute refuses a plan whose
	// dependencies can never be met).
	Deps []int `json:"deps,omitempty"`
}

// String renders the step as one line: "3. deactivate web (1a2b3c4d) on t1 after 2".
func (s Step) String() string {
	var b strings.Builder
	fmt.Fprintf(&b, "%d. %s", s.ID, s.Kind)
	if s.Service != "" {
		fmt.Fprintf(&b, " %s", s.Service)
	}
	if s.Key != "" {
		fmt.Fprintf(&b, " (%s)", short(s.Key))
	}
	if s.Artifact != "" {
		fmt.Fprintf(&b, " %s", short(strings.TrimPrefix(s.Artifact, "sha256:")))
	}
	switch s.Kind {
	case StepTransfer:
		fmt.Fprintf(&b, " %s -> %s", s.From, s.Target)
	case StepRestore:
		fmt.Fprintf(&b, " on %s (from %s)", s.Target, s.From)
	default:
		fmt.Fprintf(&b, " on %s", s.Target)
	}
	if len(s.Deps) > 6 {
		fmt.Fprintf(&b, " after %d steps", len(s.Deps))
	} else if len(s.Deps) > 0 {
		ds := make([]string, len(s.Deps))
		for i, d := range s.Deps {
			ds[i] = fmt.Sprint(d)
		}
		fmt.Fprintf(&b, " after %s", strings.Join(ds, ","))
	}
	return b.String()
}

func short(k string) string {
	if len(k) > 8 {
		return k[:8]
	}
	return k
}

// Plan is the transition from Old (nil on a first deployment) to New.
type Plan struct {
	Old   *model.Manifest `json:"-"`
	New   *model.Manifest `json:"-"`
	Steps []Step          `json:"steps"`
	// Notes explain decisions that produced no step (unreachable targets, skipped state).
	Notes []string `json:"notes,omitempty"`
}

// MarshalJSON renders the plan as {"steps": [...], "notes": [...]};
// "steps" is always a list ([] for a plan without steps, never null).
func (p Plan) MarshalJSON() ([]byte, error) {
	type plain Plan // without this method
	q := plain(p)
	if q.Steps == nil {
		q.Steps = []Step{}
	}
	return json.Marshal(q)
}

// String renders the plan as numbered lines.
func (p *Plan) String() string {
	var b strings.Builder
	for _, s := range p.Steps {
		b.WriteString(s.String())
		b.WriteByte('\n')
	}
	for _, n := range p.Notes {
		b.WriteString("note: ")
		b.WriteString(n)
		b.WriteByte('\n')
	}
	return b.String()
}

// Empty reports whether the plan changes nothing on any target.
func (p *Plan) Empty() bool {
	for _, s := range p.Steps {
		switch s.Kind {
		case StepLock, StepUnlock, StepUpload:
		default:
			return false
		}
	}
	return true
}

// PlanOptions tune PlanTransition.
type PlanOptions struct {
	// Unreachable names targets that do not answer: their obsolete mappings
	// are forgotten without a remote call and moved state comes from the
	// coordinator's snapshot store.
	Unreachable map[string]bool
	// NoMigration skips every state step (--no-migration).
	NoMigration bool
	// DeleteState deletes the old copy of moved or removed state (--delete-state).
	DeleteState bool
	// NoLock skips lock/unlock (--no-lock).
	NoLock bool
	// NoUpgrade ignores the old manifest: nothing is deactivated, everything activated.
	NoUpgrade bool
}

type mapKey struct{ target, container, key string }

func mk(m model.ServiceMapping) mapKey { return mapKey{m.Target, m.Container, m.Service} }

// PlanTransition computes the steps that turn the deployment old (nil on
// a first deployment) into new. It is pure. Order: upload artifacts; lock
// every involved reachable target; deactivate obsolete mappings, dependents
// first; snapshot the state of stateful services that move (after their old
// copy stopped, so nothing written before the lock is lost); transfer it;
// restore it on the new target; activate new mappings, dependencies first;
// delete obsolete state (--delete-state); unlock. Mappings in both
// manifests (same target, container and key) are untouched; since keys
// embed the dependsOn bindings, a service whose dependency moved has a new
// key and is reactivated, transitively. connectsTo imposes no order.
func PlanTransition(old, new *model.Manifest, opts PlanOptions) (*Plan, error) {
	if new == nil {
		return nil, fmt.Errorf("plan: no new manifest")
	}
	if err := new.Validate(); err != nil {
		return nil, fmt.Errorf("plan: new %w", err)
	}
	if old != nil {
		if err := old.Validate(); err != nil {
			return nil, fmt.Errorf("plan: old %w", err)
		}
	}
	p := &Plan{Old: old, New: new}
	oldM := []model.ServiceMapping{}
	if old != nil && !opts.NoUpgrade {
		oldM = append(oldM, old.Mappings...)
	}
	inOld := map[mapKey]bool{}
	for _, m := range oldM {
		inOld[mk(m)] = true
	}
	inNew := map[mapKey]bool{}
	for _, m := range new.Mappings {
		inNew[mk(m)] = true
	}
	var deact, act []model.ServiceMapping
	for _, m := range oldM {
		if !inNew[mk(m)] {
			deact = append(deact, m)
		}
	}
	for _, m := range new.Mappings {
		if !inOld[mk(m)] {
			act = append(act, m)
		}
	}
	model.SortMappings(deact)
	model.SortMappings(act)
	unreach := func(t string) bool { return opts.Unreachable[t] }
	oldSvc := func(key string) model.ManifestService { return old.Services[key] }

	// Involved targets: every target with work, reachable.
	involved := map[string]bool{}
	var reachableDeact []model.ServiceMapping
	for _, m := range deact {
		if unreach(m.Target) {
			p.Notes = append(p.Notes, fmt.Sprintf("target %s is unreachable: %s (%s) is forgotten without deactivation", m.Target, oldSvc(m.Service).Name, short(m.Service)))
			continue
		}
		reachableDeact = append(reachableDeact, m)
		involved[m.Target] = true
	}
	for _, m := range act {
		if unreach(m.Target) {
			return nil, fmt.Errorf("plan: cannot activate %s on target %s: target is unreachable", new.Services[m.Service].Name, m.Target)
		}
		involved[m.Target] = true
	}

	// State moves: a snapshot mapping of the new manifest whose component
	// (service name, container) was not on that target before, but on another.
	type move struct {
		name, container, to, from string
		fromKey                   string
		newMap                    model.ServiceMapping
	}
	var moves []move
	var deleteState []model.ServiceMapping
	if !opts.NoMigration && old != nil && !opts.NoUpgrade {
		type comp struct{ target, container, name string }
		oldComp := map[comp]model.ServiceMapping{}
		byName := map[string][]model.ServiceMapping{}
		for _, s := range old.Snapshots {
			n := old.Services[s.Service].Name
			oldComp[comp{s.Target, s.Container, n}] = s
			byName[n+"\x00"+s.Container] = append(byName[n+"\x00"+s.Container], s)
		}
		newComp := map[comp]bool{}
		for _, s := range new.Snapshots {
			n := new.Services[s.Service].Name
			newComp[comp{s.Target, s.Container, n}] = true
			if _, ok := oldComp[comp{s.Target, s.Container, n}]; ok {
				continue
			}
			srcs := byName[n+"\x00"+s.Container]
			if len(srcs) == 0 {
				continue // a new stateful service: starts empty
			}
			// Prefer a reachable source.
			src := srcs[0]
			for _, c := range srcs {
				if !unreach(c.Target) {
					src = c
					break
				}
			}
			moves = append(moves, move{name: n, container: s.Container, to: s.Target, from: src.Target, fromKey: src.Service, newMap: s})
		}
		if opts.DeleteState {
			for _, s := range old.Snapshots {
				n := old.Services[s.Service].Name
				if !newComp[comp{s.Target, s.Container, n}] && !unreach(s.Target) {
					deleteState = append(deleteState, s)
					involved[s.Target] = true
				}
			}
		}
		for _, mv := range moves {
			if !unreach(mv.from) {
				involved[mv.from] = true
			}
		}
	}

	var ctxUpdates []model.ServiceMapping
	if old != nil && !opts.NoUpgrade {
		same := sameTargets(old, new)
		for _, m := range new.Mappings {
			if inOld[mk(m)] && !unreach(m.Target) && !sameContext(old, new, m, same) && contextChanged(old, new, m) {
				ctxUpdates = append(ctxUpdates, m)
				involved[m.Target] = true
			}
		}
	}

	add := func(s Step) int {
		s.ID = len(p.Steps) + 1
		sort.Ints(s.Deps)
		s.Deps = dedupInts(s.Deps)
		p.Steps = append(p.Steps, s)
		return s.ID
	}

	// 1. Uploads: one per (target, artifact) of the mappings to activate.
	upload := map[[2]string]int{}
	for _, m := range act {
		a := new.Services[m.Service].Artifact
		if a == "" {
			continue
		}
		k := [2]string{m.Target, a}
		if _, ok := upload[k]; !ok {
			upload[k] = add(Step{Kind: StepUpload, Target: m.Target, Artifact: a})
		}
	}

	// 2. Locks.
	targets := sortedKeysOf(involved)
	lock := map[string]int{}
	if !opts.NoLock {
		for _, t := range targets {
			lock[t] = add(Step{Kind: StepLock, Target: t})
		}
	}
	withLock := func(t string, deps ...int) []int {
		out := make([]int, 0, len(deps)+1)
		out = append(out, deps...) // never alias the caller's slice
		if id, ok := lock[t]; ok {
			out = append(out, id)
		}
		return out
	}

	// 3. Deactivations, dependents first. dependents[m] = obsolete mappings whose
	// service dependsOn m.
	deactID := map[mapKey]int{}
	isDeact := map[mapKey]bool{}
	for _, m := range reachableDeact {
		isDeact[mk(m)] = true
	}
	dependents := map[mapKey][]model.ServiceMapping{}
	for _, m := range reachableDeact {
		for _, d := range oldSvc(m.Service).DependsOn {
			if isDeact[mk(d)] {
				dependents[mk(d)] = append(dependents[mk(d)], m)
			}
		}
	}
	var visitDeact func(m model.ServiceMapping, path map[mapKey]bool) (int, error)
	visitDeact = func(m model.ServiceMapping, path map[mapKey]bool) (int, error) {
		if id, ok := deactID[mk(m)]; ok {
			return id, nil
		}
		if path[mk(m)] {
			return 0, fmt.Errorf("plan: dependsOn cycle in the old manifest at %s on %s", oldSvc(m.Service).Name, m.Target)
		}
		path[mk(m)] = true
		deps := withLock(m.Target)
		for _, x := range dependents[mk(m)] {
			id, err := visitDeact(x, path)
			if err != nil {
				return 0, err
			}
			deps = append(deps, id)
		}
		delete(path, mk(m))
		id := add(Step{Kind: StepDeactivate, Target: m.Target, Service: oldSvc(m.Service).Name, Key: m.Service, Container: m.Container, Old: true, Deps: deps})
		deactID[mk(m)] = id
		return id, nil
	}
	var allDeact []int
	for _, m := range reachableDeact {
		id, err := visitDeact(m, map[mapKey]bool{})
		if err != nil {
			return nil, err
		}
		allDeact = append(allDeact, id)
	}

	// 4. State moves: snapshot (old copy stopped) → transfer → restore, or
	// restore from the coordinator's store when the old target is gone.
	restoreFor := map[mapKey]int{}
	for _, mv := range moves {
		// A restore through a Dysnomia module needs the component.
		var up []int
		if id, ok := upload[[2]string{mv.to, new.Services[mv.newMap.Service].Artifact}]; ok {
			up = append(up, id)
		}
		if unreach(mv.from) {
			restoreFor[mk(mv.newMap)] = add(Step{Kind: StepRestoreStore, Target: mv.to, From: mv.from, Service: mv.name,
				Key: mv.newMap.Service, Container: mv.container, Deps: withLock(mv.to, append(up, allDeact...)...)})
			continue
		}
		fromMap := model.ServiceMapping{Service: mv.fromKey, Target: mv.from, Container: mv.container}
		deps := withLock(mv.from)
		if id, ok := deactID[mk(fromMap)]; ok {
			deps = append(deps, id)
		}
		snap := add(Step{Kind: StepSnapshot, Target: mv.from, Service: mv.name, Key: mv.fromKey, Container: mv.container, Old: true, Deps: deps})
		xfer := add(Step{Kind: StepTransfer, Target: mv.to, From: mv.from, Service: mv.name, Key: mv.newMap.Service, Container: mv.container, Deps: []int{snap}})
		restoreFor[mk(mv.newMap)] = add(Step{Kind: StepRestore, Target: mv.to, From: mv.from, Service: mv.name,
			Key: mv.newMap.Service, Container: mv.container, Deps: withLock(mv.to, append(append(up, xfer), allDeact...)...)})
	}

	// 5. Activations, dependencies first (after every deactivation: the
	// deactivation phase frees ports and state directories first).
	isAct := map[mapKey]bool{}
	for _, m := range act {
		isAct[mk(m)] = true
	}
	actID := map[mapKey]int{}
	var visitAct func(m model.ServiceMapping, path map[mapKey]bool) (int, error)
	visitAct = func(m model.ServiceMapping, path map[mapKey]bool) (int, error) {
		if id, ok := actID[mk(m)]; ok {
			return id, nil
		}
		if path[mk(m)] {
			return 0, fmt.Errorf("plan: dependsOn cycle at %s on %s", new.Services[m.Service].Name, m.Target)
		}
		path[mk(m)] = true
		svc := new.Services[m.Service]
		deps := withLock(m.Target, allDeact...)
		if id, ok := upload[[2]string{m.Target, svc.Artifact}]; ok {
			deps = append(deps, id)
		}
		if id, ok := restoreFor[mk(m)]; ok {
			deps = append(deps, id)
		}
		for _, d := range svc.DependsOn {
			if isAct[mk(d)] {
				id, err := visitAct(d, path)
				if err != nil {
					return 0, err
				}
				deps = append(deps, id)
			}
		}
		delete(path, mk(m))
		id := add(Step{Kind: StepActivate, Target: m.Target, Service: svc.Name, Key: m.Service, Container: m.Container, Deps: deps})
		actID[mk(m)] = id
		return id, nil
	}
	var allAct []int
	for _, m := range act {
		id, err := visitAct(m, map[mapKey]bool{})
		if err != nil {
			return nil, err
		}
		allAct = append(allAct, id)
	}

	// 5b. Untouched mappings whose connectsTo peers moved get a fresh
	// context (no restart: connectsTo never reactivates).
	for _, m := range ctxUpdates {
		allAct = append(allAct, add(Step{Kind: StepUpdateContext, Target: m.Target, Service: new.Services[m.Service].Name,
			Key: m.Service, Container: m.Container, Deps: withLock(m.Target, allAct...)}))
	}

	// 6. Delete obsolete state (only with --delete-state), after everything is active.
	var allDel []int
	for _, s := range deleteState {
		var deps []int
		deps = append(deps, allAct...)
		for _, st := range p.Steps {
			if st.Kind == StepSnapshot && st.Target == s.Target {
				deps = append(deps, st.ID)
			}
		}
		allDel = append(allDel, add(Step{Kind: StepDeleteState, Target: s.Target, Service: old.Services[s.Service].Name,
			Key: s.Service, Container: s.Container, Old: true, Deps: withLock(s.Target, deps...)}))
	}

	// 7. Unlock, after every step on any target (a rollback needs the locks).
	if !opts.NoLock {
		var all []int
		for _, s := range p.Steps {
			if s.Kind != StepUpload && s.Kind != StepLock {
				all = append(all, s.ID)
			}
		}
		for _, t := range targets {
			add(Step{Kind: StepUnlock, Target: t, Deps: append([]int{lock[t]}, all...)})
		}
	}
	_ = allDel
	return p, nil
}

// sameTargets returns a function reporting whether a target's entry (name,
// properties, other attributes) is the same in both manifests' infrastructures,
// each target compared once.
func sameTargets(old, new *model.Manifest) func(string) bool {
	memo := map[string]bool{}
	return func(name string) bool {
		if v, ok := memo[name]; ok {
			return v
		}
		a, b := old.Infrastructure[name], new.Infrastructure[name]
		v := a == nil && b == nil
		if a != nil && b != nil {
			v = a.Name == b.Name && model.Equal(a.Properties, b.Properties) && model.Equal(a.Extra, b.Extra)
		}
		memo[name] = v
		return v
	}
}

// sameContext reports, cheaply, that mapping m's environment and context
// cannot differ between the manifests: the same target property, the
// same dependsOn and connectsTo mappings (the service's key is the same in
// both, so are the services those mappings name) and the same entries of
// every target involved. When it reports false, contextChanged decides.
func sameContext(old, new *model.Manifest, m model.ServiceMapping, sameTarget func(string) bool) bool {
	if old.TargetProperty != new.TargetProperty || !sameTarget(m.Target) {
		return false
	}
	a, b := old.Services[m.Service], new.Services[m.Service]
	if !slices.Equal(a.DependsOn, b.DependsOn) || !slices.Equal(a.ConnectsTo, b.ConnectsTo) {
		return false
	}
	for _, list := range [][]model.ServiceMapping{b.DependsOn, b.ConnectsTo} {
		for _, d := range list {
			if !sameTarget(d.Target) {
				return false
			}
		}
	}
	return true
}

// contextChanged reports whether the environment or context of mapping m
// differs between the two manifests (a connectsTo peer moved).
func contextChanged(old, new *model.Manifest, m model.ServiceMapping) bool {
	a, b := ActivateRequest(old, m), ActivateRequest(new, m)
	return !model.Equal(anyMap(a.Env), anyMap(b.Env)) || !model.Equal(normalizeAny(a.Context), normalizeAny(b.Context))
}

func anyMap(m map[string]string) map[string]any {
	out := make(map[string]any, len(m))
	for k, v := range m {
		out[k] = v
	}
	return out
}

// normalizeAny turns a context document into plain JSON-like values.
func normalizeAny(v map[string]any) any {
	b, err := json.Marshal(v)
	if err != nil {
		return nil
	}
	var out any
	json.Unmarshal(b, &out)
	return out
}

func dedupInts(xs []int) []int {
	if len(xs) < 2 {
		return xs
	}
	out := xs[:1]
	for _, x := range xs[1:] {
		if x != out[len(out)-1] {
			out = append(out, x)
		}
	}
	return out
}
