// Package gendist is what dydisnix-gendist does once its flags are read:
// load the models and the previous distribution, run the QoS policy, and
// write the distribution and its explanation.
package gendist

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"strings"

	"github.com/dydisnix/dydisnix/internal/cli"
	"github.com/dydisnix/dydisnix/model"
	"github.com/dydisnix/dydisnix/policies"
	"github.com/dydisnix/dydisnix/qos"
)

// Options are dydisnix-gendist's flags.
type Options struct {
	// Services, Infrastructure and Initial are model files; Initial ("" for
	// the cartesian product) is the candidate distribution to start from.
	Services, Infrastructure, Initial string
	// QoS is a policy file, builtin:NAME or a QoS model in Nix ("" runs
	// no step).
	QoS string
	// Filters is the original's -F filter catalog for a QoS model in Nix.
	Filters string
	// Previous is the last deployment's distribution or manifest; when
	// "", the coordinator profile ProfilePath/Profile is read if it exists.
	Previous, Profile, ProfilePath string
	// Nix is how .nix models are evaluated.
	Nix model.NixOptions
	// FilterBuildable drops the targets a service cannot be built for
	// first: its supportedSystems, and for a .nix services model, as the
	// original, whether its package instantiates for the target's system.
	FilterBuildable bool
	// AllowEmpty prints services left without a target as [] instead of failing.
	AllowEmpty bool
	// Explain explains every decision, in ExplainFormat (text or json), to
	// ExplainOutput (stderr when ""), for ExplainServices (all when empty).
	Explain                      bool
	ExplainFormat, ExplainOutput string
	ExplainServices              []string
	// Out is where the distribution goes, as json, nix or xml.
	Out cli.Output
	// NoOutLink writes the distribution to a file (Out.File, else a new
	// file in $TMPDIR) and prints the file's path; Stdout prints the
	// content even then (the original's --no-out-link and --stdout).
	NoOutLink, Stdout bool
}

// Run computes the distribution and writes it (and the explanation).
func Run(ctx context.Context, o *Options, stdout, stderr io.Writer) error {
	services, err := model.LoadServicesContext(ctx, o.Services, o.Nix)
	if err != nil {
		return err
	}
	cli.Warn("dydisnix-gendist", services.Validate(o.Services), stderr)
	infra, err := model.LoadInfrastructureContext(ctx, o.Infrastructure, o.Nix)
	if err != nil {
		return err
	}
	policy := &qos.Policy{}
	if o.QoS != "" {
		if policy, err = qos.DefaultRegistry().LoadQoS(o.QoS, qos.NixModelOptions{Nix: o.Nix, Filters: o.Filters, Ctx: ctx}); err != nil {
			return err
		}
	}
	if o.FilterBuildable {
		check := qos.SystemsCheck("supportedSystems", "")
		if f, err := model.FormatOf(o.Services); err == nil && f == model.FormatNix {
			// as the original: each service's package must instantiate
			// for the candidate target's system
			check = qos.BothChecks(check, qos.NixPackageCheck(ctx, o.Services, o.Nix, ""))
		}
		policy = policy.Prepend(qos.NewStep("filterBuildable", &qos.Buildable{Check: check}))
	}
	in := qos.Input{Services: services, Infrastructure: infra, Explain: o.Explain, Empty: qos.RejectRemoved, ExplainServices: o.ExplainServices, Context: ctx}
	if o.AllowEmpty {
		in.Empty = qos.AllowEmpty
	}
	if o.Initial != "" {
		if in.Initial, err = model.LoadDistributionContext(ctx, o.Initial, infra, o.Nix); err != nil {
			return err
		}
	}
	previous := o.Previous
	if previous == "" {
		previous = coordinatorProfile(o.ProfilePath, o.Profile)
	}
	if previous != "" {
		if in.Previous, err = loadPrevious(ctx, previous, infra, o.Nix); err != nil {
			return err
		}
	}
	res, err := policy.Run(in)
	if err != nil && res != nil && res.Explanation != nil {
		if werr := writeExplanation(o, res.Explanation, stderr); werr != nil {
			fmt.Fprintf(stderr, "dydisnix-gendist: explanation: %v\n", werr)
		}
	}
	if err != nil {
		var nc *qos.NoCandidateError
		if errors.As(err, &nc) && !o.AllowEmpty {
			return fmt.Errorf("%s: %w\n(use --explain for every decision, or --allow-empty to print such services with no target)", policyName(o.QoS), err)
		}
		var se *qos.StepError
		if errors.As(err, &se) && se.Filter == qos.NixModelFilter {
			return err // names the QoS model already
		}
		return fmt.Errorf("%s: %w", policyName(o.QoS), err)
	}
	for _, w := range res.Warnings {
		fmt.Fprintf(stderr, "dydisnix-gendist: warning: %s\n", w)
	}
	if err := writeDistribution(o, res.Distribution, stdout); err != nil {
		return err
	}
	if res.Explanation != nil {
		return writeExplanation(o, res.Explanation, stderr)
	}
	return nil
}

// ListPolicies writes the shipped policies (builtin:NAME) and what each does.
func ListPolicies(w io.Writer) {
	for _, n := range policies.Names() {
		desc := ""
		if p, err := policies.Load(n); err == nil {
			desc = p.Description
		}
		fmt.Fprintf(w, "builtin:%s\n    %s\n", n, strings.Join(cli.Wrap(desc, 74), "\n    "))
	}
}

func policyName(q string) string {
	if q == "" {
		return "(no policy)"
	}
	return q
}

func writeExplanation(o *Options, ex *qos.Explanation, stderr io.Writer) error {
	var buf bytes.Buffer
	if o.ExplainFormat == "json" {
		if len(o.ExplainServices) > 0 {
			keep := map[string]*qos.ServiceExplanation{}
			for _, s := range o.ExplainServices {
				if se, ok := ex.Services[s]; ok {
					keep[s] = se
				}
			}
			c := *ex
			c.Services = keep
			ex = &c
		}
		enc := json.NewEncoder(&buf)
		enc.SetIndent("", "  ")
		enc.SetEscapeHTML(false)
		if err := enc.Encode(ex); err != nil {
			return err
		}
	} else if err := ex.WriteText(&buf, o.ExplainServices...); err != nil {
		return err
	}
	if o.ExplainOutput != "" {
		return model.WriteFileAtomic(o.ExplainOutput, buf.Bytes(), 0o644)
	}
	_, err := stderr.Write(buf.Bytes())
	return err
}

// coordinatorProfile returns the coordinator profile of the last Disnix
// deployment when it exists (as the original gendist does), else "".
func coordinatorProfile(dir, profile string) string {
	if dir == "" {
		user := os.Getenv("USER")
		if user == "" {
			return ""
		}
		dir = "/nix/var/nix/profiles/per-user/" + user + "/disnix-coordinator"
	}
	f := dir + "/" + profile
	if st, err := os.Stat(f); err == nil && st.Mode().IsRegular() {
		return f
	}
	return ""
}

// loadPrevious reads the previous distribution: a distribution model, or a
// Disnix manifest (JSON/YAML with serviceMappings, or manifest XML: a .xml
// file, or any file starting with '<', such as a coordinator profile).
func loadPrevious(ctx context.Context, file string, infra model.Infrastructure, opts model.NixOptions) (model.Distribution, error) {
	if _, err := model.FormatOf(file); strings.HasSuffix(strings.ToLower(file), ".xml") || err != nil {
		data, err := os.ReadFile(file)
		if err != nil {
			return nil, fmt.Errorf("read %s: %w", file, err)
		}
		if t := bytes.TrimSpace(data); len(t) > 0 && t[0] == '<' {
			return model.PreviousFromDisnixManifestXML(data, file)
		}
		v, err := model.DecodeValue(data, model.FormatJSON, file)
		if err != nil {
			return nil, err
		}
		if qos.IsManifest(v) {
			return qos.PreviousFromManifest(v, file)
		}
		return model.DistributionFromValue(v, file)
	}
	v, err := model.LoadValueContext(ctx, file, model.KindDistribution, infra, opts)
	if err != nil {
		return nil, err
	}
	if qos.IsManifest(v) {
		return qos.PreviousFromManifest(v, file)
	}
	return model.DistributionFromValue(v, file)
}
