package adapt

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"os"
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

// PipelineConfig names the model files of a ModelPlanner.
type PipelineConfig struct {
	// Services is the services model (-s; required).
	Services string
	// QoS is the QoS policy file or builtin:NAME (-q; required).
	QoS string
	// Filters is an optional policy file whose steps run before the QoS
	// policy's (-F: our counterpart of the original's custom filter
	// catalog; unlike the original, it reaches the distribution step and
	// not the ID assigner).
	Filters string
	// Augment is the augmentation model (-a).
	Augment string
	// Ports is the ports file (--ports): ports are assigned and kept there.
	Ports string
	// IDResources and IDs are the ID resources model and the ids file.
	IDResources, IDs string
	// IDsServiceProperty is the ID assigner's --service-property.
	IDsServiceProperty string
	// Logger receives the policy's warnings.
	Logger *zap.Logger
}

// ModelPlanner is the Planner of dydisnix-self-adapt: model files, the
// augmenter, the QoS policy and the port and ID assigners.
type ModelPlanner struct {
	cfg PipelineConfig

	mu        sync.Mutex
	sig       string // stat signature of the files at the last load
	hash      string
	services  model.Services
	policy    *qos.Policy
	augmenter augment.Augmenter
	resources portassign.Resources
}

// NewModelPlanner checks cfg; the files are read by Load.
func NewModelPlanner(cfg PipelineConfig) (*ModelPlanner, error) {
	if cfg.Services == "" {
		return nil, errors.New("a services model must be specified")
	}
	if cfg.QoS == "" {
		return nil, errors.New("a quality of service model must be specified")
	}
	if (cfg.IDResources == "") != (cfg.IDs == "") {
		return nil, errors.New("--id-resources and --ids go together")
	}
	if cfg.Logger == nil {
		cfg.Logger = zap.NewNop()
	}
	return &ModelPlanner{cfg: cfg}, nil
}

// WatchFiles returns the files whose change must reload the models.
func (p *ModelPlanner) WatchFiles() []string {
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
// bytes (a builtin policy by name).
//
// Evaluating a .nix model runs nix-instantiate, which costs far more than
// the rest of an idle loop: when a model is a .nix file and no file changed
// (same size, modification time and inode), the previous evaluation is
// reused. JSON and YAML models are always read again.
func (p *ModelPlanner) Load(ctx context.Context) (string, error) {
	sig, nix := p.signature()
	p.mu.Lock()
	if nix && sig != "" && sig == p.sig && p.hash != "" {
		h := p.hash
		p.mu.Unlock()
		return h, nil
	}
	p.mu.Unlock()
	h := sha256.New()
	svcs, err := model.LoadServices(p.cfg.Services)
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
	policy, err := qos.LoadPolicy(p.cfg.QoS)
	if err != nil {
		return "", err
	}
	if err := hashFile(h, p.cfg.QoS); err != nil {
		return "", err
	}
	if p.cfg.Filters != "" {
		pre, err := qos.LoadPolicy(p.cfg.Filters)
		if err != nil {
			return "", fmt.Errorf("-F: %w", err)
		}
		policy = policy.Prepend(pre.Steps...)
		if err := hashFile(h, p.cfg.Filters); err != nil {
			return "", err
		}
	}
	var aug augment.Augmenter
	if p.cfg.Augment != "" {
		if aug, err = augment.Load(p.cfg.Augment, augment.Options{}); err != nil {
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
// modification time and inode; nix reports whether one is a .nix file.
func (p *ModelPlanner) signature() (sig string, nix bool) {
	var b strings.Builder
	for _, f := range p.WatchFiles() {
		st, err := os.Stat(f)
		if err != nil {
			return "", false
		}
		var ino uint64
		if sys, ok := st.Sys().(*syscall.Stat_t); ok {
			ino = sys.Ino
		}
		fmt.Fprintf(&b, "%s|%d|%d|%d;", f, st.Size(), st.ModTime().UnixNano(), ino)
		nix = nix || strings.HasSuffix(f, ".nix")
	}
	return b.String(), nix
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

// explainPairs bounds the size of a deployment the loop explains in full:
// 100 000 service/target pairs take about 15 MB and 20 ms to explain.
const explainPairs = 100_000

// Augment applies the augmentation model (identity without -a).
func (p *ModelPlanner) Augment(infra model.Infrastructure) (model.Infrastructure, error) {
	p.mu.Lock()
	aug := p.augmenter
	p.mu.Unlock()
	if aug == nil {
		return infra.Clone(), nil
	}
	out, err := aug.Apply(context.TODO(), infra) // the deploy pass passes its ctx
	if err != nil {
		return nil, fmt.Errorf("augment %s: %w", p.cfg.Augment, err)
	}
	return out, nil
}

// Plan runs the QoS policy with the previous distribution, then assigns
// ports (--ports) and IDs (--ids), saving both files atomically, and sets
// the assigned values as service properties (port, and one property per ID
// resource) unless the model sets them itself.
func (p *ModelPlanner) Plan(ctx context.Context, infra model.Infrastructure, previous model.Distribution) (*Desired, error) {
	p.mu.Lock()
	svcs, policy, resources := cloneServices(p.services), p.policy, p.resources
	p.mu.Unlock()
	if svcs == nil {
		return nil, errors.New("models not loaded")
	}
	// Explanations (served on /explain) cost memory per service/target
	// pair; past explainPairs pairs only failures are explained (the
	// pipeline re-runs a failed policy explaining the failed services).
	explain := len(svcs)*len(infra) <= explainPairs
	in := qos.Input{Services: svcs, Infrastructure: infra, Previous: previous, Explain: explain, Empty: qos.RejectRemoved}
	res, err := policy.Run(in)
	if err != nil {
		return nil, fmt.Errorf("%s: %w", p.cfg.QoS, err)
	}
	for _, w := range res.Warnings {
		p.cfg.Logger.Warn("policy", zap.String("warning", w))
	}
	dist := res.Distribution
	var ports map[string]int64
	if p.cfg.Ports != "" {
		var prev *portassign.PortConfiguration
		if _, err := os.Stat(p.cfg.Ports); err == nil {
			if prev, err = portassign.LoadPortConfig(p.cfg.Ports); err != nil {
				return nil, err
			}
		}
		got, err := portassign.AssignPorts(portassign.PortRequest{Services: svcs, Distribution: dist, Previous: prev})
		if err != nil {
			return nil, err
		}
		data := got.JSON()
		if strings.HasSuffix(p.cfg.Ports, ".nix") {
			data = got.Nix()
		}
		if err := portassign.WriteFile(p.cfg.Ports, data); err != nil {
			return nil, err
		}
		ports = got.Ports
	}
	var ids map[string]map[string]int64
	if p.cfg.IDResources != "" {
		var prev *portassign.IDs
		if _, err := os.Stat(p.cfg.IDs); err == nil {
			if prev, err = portassign.LoadIDs(p.cfg.IDs); err != nil {
				return nil, err
			}
		}
		got, err := portassign.AssignIDs(portassign.IDRequest{Services: svcs, Distribution: dist, Resources: resources,
			Previous: prev, ServiceProperty: p.cfg.IDsServiceProperty})
		if err != nil {
			return nil, err
		}
		data := got.JSON()
		if strings.HasSuffix(p.cfg.IDs, ".nix") {
			data = got.Nix()
		}
		if err := portassign.WriteFile(p.cfg.IDs, data); err != nil {
			return nil, err
		}
		ids = got.IDs
	}
	InjectAssignments(svcs, ports, ids)
	var ex any
	if res.Explanation != nil {
		ex = res.Explanation
	}
	return &Desired{Services: svcs, Infrastructure: infra, Distribution: dist, Explanation: ex}, nil
}

// InjectAssignments sets each service's assigned port (property "port")
// and IDs (property named by the resource; resource "ports" also sets
// "port") unless the model sets them itself — as dydisnix-env does.
func InjectAssignments(svcs model.Services, ports map[string]int64, ids map[string]map[string]int64) {
	set := func(s *model.Service, k string, v int64) {
		if s.Attrs == nil {
			s.Attrs = map[string]any{}
		}
		if _, ok := s.Attrs[k]; !ok {
			s.Attrs[k] = json.Number(fmt.Sprint(v))
		}
	}
	for name, p := range ports {
		if s := svcs[name]; s != nil {
			set(s, "port", p)
		}
	}
	for res, m := range ids {
		for name, id := range m {
			if s := svcs[name]; s != nil {
				set(s, res, id)
				if res == "ports" {
					set(s, "port", id)
				}
			}
		}
	}
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
