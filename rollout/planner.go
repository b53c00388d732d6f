package rollout

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"maps"
	"os"
	"slices"
	"strings"
	"sync"
	"syscall"

	"go.uber.org/zap"

	"github.com/dydisnix/dydisnix/augment"
	"github.com/dydisnix/dydisnix/model"
	_ "github.com/dydisnix/dydisnix/policies" // builtin:NAME policies
	"github.com/dydisnix/dydisnix/portassign"
	"github.com/dydisnix/dydisnix/qos"
)

// Models names the model files of a deploy pass.
type Models struct {
	// Services is the services model (-s; required).
	Services string
	// QoS is the QoS policy file or builtin:NAME (-q; required).
	QoS string
	// Filters is the original's custom filter catalog (-F), a .nix file
	// {pkgs, referenceFilters}: { name = filter; ... } whose filters a QoS
	// model in Nix gets instead of the reference ones.
	Filters string
	// ExtraParams is the original's --extra-params: a Nix attribute set
	// whose attributes the .nix models (services, QoS model, filter
	// catalog, augmentation) get when they declare them as arguments.
	ExtraParams string
	// Augment is the augmentation model (-a).
	Augment string
	// Ports is the ports file (--ports): ports are assigned and kept there.
	Ports string
	// IDResources and IDs are the ID resources model and the ids file.
	IDResources, IDs string
	// IDsServiceProperty is the ID assigner's --service-property.
	IDsServiceProperty string
}

// Desired is a planned deployment.
type Desired struct {
	Services       model.Services       `json:"-"`
	Infrastructure model.Infrastructure `json:"-"`
	Distribution   model.Distribution   `json:"distribution"`
	// Explanation is the policy's explanation, when it was made with the
	// plan: a policy that cannot be run again explains as it plans (see
	// Explain).
	Explanation any `json:"explanation,omitempty"`
	// rerun runs the plan's pure policy again on the same input with
	// explanations on; nil when the plan made Explanation (or none).
	rerun func(context.Context) (any, error)
}

// Explain returns the policy's explanation of the plan (nil past
// explainPairs service/target pairs). A pure policy is not explained while
// it plans, but run again on the same input when asked: a deploy does not
// pay for an explanation, and a coordinator keeps none between deploys
// (at 1000 services on 100 targets one held 6 MB of its idle heap).
func (d *Desired) Explain(ctx context.Context) (any, error) {
	if d.rerun == nil {
		return d.Explanation, nil
	}
	return d.rerun(ctx)
}

// Planner loads the models and plans: augmentation, the QoS policy and
// the port and ID assigners. It is safe for concurrent use.
type Planner struct {
	cfg Models
	log *zap.Logger

	mu        sync.Mutex
	sig       string // stat signature of the files at the last load
	hash      string
	services  model.Services
	policy    *qos.Policy
	augmenter augment.Augmenter
	resources portassign.Resources
}

// NewPlanner checks the model file names; the files are read by Load.
func NewPlanner(m Models, log *zap.Logger) (*Planner, error) {
	if m.Services == "" {
		return nil, errors.New("a services model must be specified")
	}
	if m.QoS == "" {
		return nil, errors.New("a quality of service model must be specified")
	}
	if (m.IDResources == "") != (m.IDs == "") {
		return nil, errors.New("--id-resources and --ids go together")
	}
	if log == nil {
		log = zap.NewNop()
	}
	return &Planner{cfg: m, log: log}, nil
}

// WatchFiles returns the files whose change must reload the models.
func (p *Planner) WatchFiles() []string {
	var out []string
	for _, f := range []string{p.cfg.Services, p.cfg.QoS, p.cfg.Filters, p.cfg.Augment, p.cfg.IDResources} {
		if f != "" && !strings.HasPrefix(f, "builtin:") {
			out = append(out, f)
		}
	}
	return out
}

// Load reads every model file and returns a hash of their content: the
// services model canonically (JSON with sorted keys), the other files as
// bytes (a builtin policy by name). A services model Disnix could not
// deploy (unknown dependency, dependsOn cycle, name mismatch) is an error.
//
// An idle loop reloads at every resync: when no file changed (same size,
// modification and change time and inode) the previous load is reused, so
// a .nix model does not run nix-instantiate again and a large JSON or YAML
// model is not parsed again. (Files a .nix model imports are not
// watched: touch the main file.) On error the models loaded before stay in
// use.
func (p *Planner) Load(ctx context.Context) (string, error) {
	sig := p.signature()
	p.mu.Lock()
	if sig != "" && sig == p.sig && p.hash != "" {
		h := p.hash
		p.mu.Unlock()
		return h, nil
	}
	p.mu.Unlock()
	h := sha256.New()
	nixOpts := model.NixOptions{ExtraParams: p.cfg.ExtraParams}
	svcs, err := model.LoadServicesContext(ctx, p.cfg.Services, nixOpts)
	if err != nil {
		return "", err
	}
	if err := svcs.Validate(p.cfg.Services); err != nil {
		return "", err
	}
	b, err := json.Marshal(svcs)
	if err != nil {
		return "", fmt.Errorf("hash services %s: %w", p.cfg.Services, err)
	}
	h.Write(b)
	policy, err := qos.DefaultRegistry().LoadQoS(p.cfg.QoS, qos.NixModelOptions{Nix: nixOpts, Filters: p.cfg.Filters, Ctx: ctx})
	if err != nil {
		return "", err
	}
	if err := hashFile(h, p.cfg.QoS); err != nil {
		return "", err
	}
	if p.cfg.Filters != "" {
		if err := hashFile(h, p.cfg.Filters); err != nil {
			return "", err
		}
	}
	h.Write([]byte(p.cfg.ExtraParams))
	var aug augment.Augmenter
	if p.cfg.Augment != "" {
		if aug, err = augment.Load(p.cfg.Augment, augment.Options{ExtraParams: p.cfg.ExtraParams}); err != nil {
			return "", err
		}
		if err := hashFile(h, p.cfg.Augment); err != nil {
			return "", err
		}
	}
	var res portassign.Resources
	if p.cfg.IDResources != "" {
		if res, err = portassign.LoadResources(p.cfg.IDResources); err != nil {
			return "", err
		}
		if err := hashFile(h, p.cfg.IDResources); err != nil {
			return "", err
		}
	}
	sum := hex.EncodeToString(h.Sum(nil))
	p.mu.Lock()
	p.services, p.policy, p.augmenter, p.resources = svcs, policy, aug, res
	p.sig, p.hash = sig, sum
	p.mu.Unlock()
	return sum, nil
}

// signature identifies the current version of every model file by size,
// modification and change time and inode ("" when one cannot be read).
func (p *Planner) signature() string {
	var b strings.Builder
	for _, f := range p.WatchFiles() {
		st, err := os.Stat(f)
		if err != nil {
			return ""
		}
		var ino uint64
		var ctime int64
		if sys, ok := st.Sys().(*syscall.Stat_t); ok {
			ino = sys.Ino
			ctime = int64(sys.Ctim.Sec)*1e9 + int64(sys.Ctim.Nsec)
		}
		fmt.Fprintf(&b, "%s|%d|%d|%d|%d;", f, st.Size(), st.ModTime().UnixNano(), ctime, ino)
	}
	return b.String()
}

func hashFile(h interface{ Write([]byte) (int, error) }, file string) error {
	h.Write([]byte{0})
	h.Write([]byte(file))
	if strings.HasPrefix(file, "builtin:") {
		return nil
	}
	b, err := os.ReadFile(file)
	if err != nil {
		return fmt.Errorf("hash %s: %w", file, err)
	}
	h.Write(b)
	return nil
}

// explainPairs bounds the size of a deployment explained in full: 100 000
// service/target pairs take about 15 MB and 20 ms to explain.
const explainPairs = 100_000

// Augment applies the augmentation model to a copy of infra (a copy
// without -a). The result may hold secrets: never log or publish it.
func (p *Planner) Augment(ctx context.Context, infra model.Infrastructure) (model.Infrastructure, error) {
	p.mu.Lock()
	aug := p.augmenter
	p.mu.Unlock()
	if aug == nil {
		return infra.Clone(), nil
	}
	out, err := aug.Apply(ctx, infra)
	if err != nil {
		return nil, fmt.Errorf("augment %s: %w", p.cfg.Augment, err)
	}
	return out, nil
}

// Plan runs the QoS policy with the previous distribution, then assigns
// ports (--ports) and IDs (--ids) and sets them on the services (see
// InjectAssignments). With save, the ports and ids files are written
// (atomically); a dry run leaves them alone.
func (p *Planner) Plan(ctx context.Context, infra model.Infrastructure, previous model.Distribution, save bool) (*Desired, error) {
	return p.plan(ctx, infra, previous, save, nil)
}

// plan is Plan with cordoned targets: the services previous placed on one
// of them (still in infra) keep their mappings and are not given to the
// policy, which places the other services on the other targets.
func (p *Planner) plan(ctx context.Context, infra model.Infrastructure, previous model.Distribution, save bool, cordon []string) (*Desired, error) {
	p.mu.Lock()
	loaded, policy, resources := p.services, p.policy, p.resources
	p.mu.Unlock()
	svcs := cloneServices(loaded)
	if svcs == nil {
		return nil, errors.New("models not loaded")
	}
	if err := ctx.Err(); err != nil {
		return nil, err
	}
	// Explanations cost memory per service/target pair; past explainPairs
	// pairs only failures are explained (the pipeline re-runs a failed
	// policy explaining the failed services). A pure policy is explained
	// when asked (Desired.Explain).
	explain := len(svcs)*len(infra) <= explainPairs
	var rerun func(context.Context) (any, error)
	if explain && policy.Pure() {
		explain = false
		// The models as loaded (replaced, never changed, by Load): the
		// assignments below change svcs. The caller's previous
		// distribution and cordon list are copied; infra is kept as the
		// plan keeps it (Desired.Infrastructure).
		prev, cordon := previous, slices.Clone(cordon)
		if prev != nil { // none stays none
			prev = prev.Clone()
		}
		rerun = func(ctx context.Context) (any, error) {
			_, in := policyInput(ctx, cloneServices(loaded), infra, prev, cordon, true)
			res, err := policy.Run(in)
			if err != nil {
				return nil, fmt.Errorf("%s: %w", p.cfg.QoS, err)
			}
			return res.Explanation, nil
		}
	}
	pinned, in := policyInput(ctx, svcs, infra, previous, cordon, explain)
	res, err := policy.Run(in)
	if err != nil {
		var se *qos.StepError
		if errors.As(err, &se) && se.Filter == qos.NixModelFilter {
			return nil, err // names the QoS model already
		}
		return nil, fmt.Errorf("%s: %w", p.cfg.QoS, err)
	}
	if len(pinned) > 0 && res.Distribution == nil {
		res.Distribution = model.Distribution{}
	}
	maps.Copy(res.Distribution, pinned)
	for _, w := range res.Warnings {
		p.log.Warn("policy", zap.String("warning", w))
	}
	dist := res.Distribution
	var ports map[string]int64
	if p.cfg.Ports != "" {
		prev, err := portassign.LoadPreviousPortConfig(p.cfg.Ports)
		if err != nil {
			return nil, err
		}
		got, err := portassign.AssignPorts(portassign.PortRequest{Services: svcs, Distribution: dist, Previous: prev})
		if err != nil {
			return nil, err
		}
		if save {
			if err := writeAssignment(p.cfg.Ports, got.JSON, got.Nix); err != nil {
				return nil, err
			}
		}
		ports = got.Ports
	}
	var ids map[string]map[string]int64
	if p.cfg.IDResources != "" {
		prev, err := portassign.LoadPreviousIDs(p.cfg.IDs)
		if err != nil {
			return nil, err
		}
		got, err := portassign.AssignIDs(portassign.IDRequest{Services: svcs, Distribution: dist, Resources: resources,
			Previous: prev, ServiceProperty: p.cfg.IDsServiceProperty})
		if err != nil {
			return nil, err
		}
		if save {
			if err := writeAssignment(p.cfg.IDs, got.JSON, got.Nix); err != nil {
				return nil, err
			}
		}
		ids = got.IDs
	}
	for _, w := range InjectAssignments(svcs, ports, ids) {
		p.log.Warn("assignment", zap.String("warning", w))
	}
	var ex any
	if res.Explanation != nil {
		ex = res.Explanation
	}
	return &Desired{Services: svcs, Infrastructure: infra, Distribution: dist, Explanation: ex, rerun: rerun}, nil
}

func writeAssignment(file string, asJSON, asNix func() []byte) error {
	if strings.HasSuffix(file, ".nix") {
		return portassign.WriteFile(file, asNix())
	}
	return portassign.WriteFile(file, asJSON())
}

// InjectAssignments sets each service's assigned port (property "port")
// and IDs (property named by the resource; resource "ports" also sets
// "port"). The rule, the same in dydisnix-env and dydisnix-self-adapt: a
// service only gets a value when it asked for one (portAssign,
// requiresUniqueIdsFor), and then the assigned value wins over a value
// written in the model, as the original's `port = ports.<name>` did: the
// ports and ids files are the record of what every service uses, and
// uniqueness holds only for assigned values. A model value that differs is
// overridden with a warning (returned).
func InjectAssignments(svcs model.Services, ports map[string]int64, ids map[string]map[string]int64) []string {
	var warnings []string
	set := func(s *model.Service, k string, v int64) {
		if s.Attrs == nil {
			s.Attrs = map[string]any{}
		}
		val := json.Number(fmt.Sprint(v))
		if old, ok := s.Attrs[k]; ok && fmt.Sprint(old) != string(val) {
			warnings = append(warnings, fmt.Sprintf("service %s: assigned %s %s replaces the model's value %v", s.Name, k, val, old))
		}
		s.Attrs[k] = val
	}
	for _, name := range slices.Sorted(maps.Keys(ports)) {
		if s := svcs[name]; s != nil {
			set(s, "port", ports[name])
		}
	}
	for _, res := range slices.Sorted(maps.Keys(ids)) {
		m := ids[res]
		for _, name := range slices.Sorted(maps.Keys(m)) {
			if s := svcs[name]; s != nil {
				set(s, res, m[name])
				if res == "ports" {
					set(s, "port", m[name])
				}
			}
		}
	}
	return warnings
}

// policyInput is the policy's input for a plan of svcs on infra (a
// deploy's and its explanation's alike), and the mappings kept on
// cordoned targets, which are not in it.
func policyInput(ctx context.Context, svcs model.Services, infra model.Infrastructure, previous model.Distribution, cordon []string, explain bool) (model.Distribution, qos.Input) {
	pinned, policySvcs, policyInfra := cordoned(svcs, infra, previous, cordon)
	return pinned, qos.Input{Services: policySvcs, Infrastructure: policyInfra, Previous: previous, Explain: explain, Empty: qos.RejectRemoved, Context: ctx}
}

func cloneServices(s model.Services) model.Services {
	if s == nil {
		return nil
	}
	out := make(model.Services, len(s))
	for k, v := range s {
		c := *v
		c.DependsOn = append([]string(nil), v.DependsOn...)
		c.ConnectsTo = append([]string(nil), v.ConnectsTo...)
		c.Attrs, _ = model.CloneValue(v.Attrs).(map[string]any)
		out[k] = &c
	}
	return out
}

// cordoned splits a planning input around cordoned targets: pinned holds
// the previous mappings of the services placed on a cordoned target of
// infra (only onto targets of infra); the policy gets the other services
// and the targets that are not cordoned.
func cordoned(svcs model.Services, infra model.Infrastructure, previous model.Distribution, cordon []string) (pinned model.Distribution, policySvcs model.Services, policyInfra model.Infrastructure) {
	if len(cordon) == 0 {
		return nil, svcs, infra
	}
	policyInfra = maps.Clone(infra)
	for _, t := range cordon {
		delete(policyInfra, t)
	}
	pinned = model.Distribution{}
	for s, ms := range previous {
		if _, ok := svcs[s]; !ok || !slices.ContainsFunc(ms, func(m model.Mapping) bool { return slices.Contains(cordon, m.Target) && infra[m.Target] != nil }) {
			continue
		}
		for _, m := range ms {
			if infra[m.Target] != nil {
				pinned[s] = append(pinned[s], m)
			}
		}
	}
	policySvcs = maps.Clone(svcs)
	for s := range pinned {
		delete(policySvcs, s)
	}
	return pinned, policySvcs, policyInfra
}
