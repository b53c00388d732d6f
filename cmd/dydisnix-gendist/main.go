// Command dydisnix-gendist computes a distribution from a services model, an
// infrastructure model and a QoS policy, optionally explaining every
// placement decision.
//
//	dydisnix-gendist -s services.nix -i infrastructure.nix -q qos.yaml [--explain]
package main

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"strings"

	"github.com/spf13/pflag"

	"github.com/dydisnix/dydisnix/internal/cli"
	"github.com/dydisnix/dydisnix/model"
	"github.com/dydisnix/dydisnix/policies"
	"github.com/dydisnix/dydisnix/qos"
)

const usage = `Usage: dydisnix-gendist -s SERVICES -i INFRASTRUCTURE [-q POLICY] [options]

Computes a distribution: the candidate distribution starts as the cartesian
product of services and targets (or -d INITIAL), and every step of the QoS
policy filters it. Model files are .json, .yaml/.yml or .nix.

Options:
  -s, --services FILE          services model (required)
  -i, --infrastructure FILE    infrastructure model (required)
  -q, --qos POLICY             QoS policy file (.yaml, .json, .nix) or builtin:NAME;
                               without it the initial distribution is printed
  -d, --distribution FILE      initial candidate distribution instead of the
                               cartesian product
      --previous FILE          distribution of the last deployment (a distribution
                               model, or a Disnix manifest: .json with
                               serviceMappings, or manifest .xml)
  -p, --profile NAME            coordinator profile (default "default"); when
                               --previous is not given and
                               <coordinator-profile-path>/<profile> exists, the
                               manifest it points to is the previous distribution
      --coordinator-profile-path DIR
                               default /nix/var/nix/profiles/per-user/$USER/disnix-coordinator
      --extra-params EXPR      Nix attribute set of extra arguments for .nix models
      --target-property NAME   default property naming a target in a .nix
                               distribution (default $DISNIX_TARGET_PROPERTY or hostname)
      --show-trace             pass --show-trace to nix-instantiate
      --filter-buildable       first drop the targets a service cannot be built
                               for (service property supportedSystems vs the
                               target's system)
      --explain                explain, per service, which step removed which
                               target and why (on stderr)
      --explain-format FMT     text (default) or json
      --explain-output FILE    write the explanation to FILE instead of stderr
      --explain-service NAME   explain only this service (repeatable)
      --allow-empty            print services left without a target as [] (the
                               original's behaviour) instead of failing
  -f, --format FMT             json (default) or nix (a Disnix distribution function)
  -o, --output FILE            write the distribution to FILE (atomically)
      --list-policies          list the shipped policies (builtin:NAME) and exit
  -h, --help                   show this help

Exit status: 0 success, 1 model or planning error, 2 usage error.
`

func main() {
	os.Exit(run(os.Args[1:], os.Stdout, os.Stderr))
}

type options struct {
	services, infra, qos, initial, previous string
	profile, profilePath                    string
	nix                                     model.NixOptions
	explain, filterBuildable, allowEmpty    bool
	explainFormat, explainOutput            string
	explainServices                         []string
	format, output                          string
	listPolicies, help                      bool
}

func run(args []string, stdout, stderr io.Writer) int {
	var o options
	fs := pflag.NewFlagSet("dydisnix-gendist", pflag.ContinueOnError)
	fs.SetOutput(io.Discard)
	fs.StringVarP(&o.services, "services", "s", "", "")
	fs.StringVarP(&o.infra, "infrastructure", "i", "", "")
	fs.StringVarP(&o.qos, "qos", "q", "", "")
	fs.StringVarP(&o.initial, "distribution", "d", "", "")
	fs.StringVar(&o.previous, "previous", "", "")
	fs.StringVarP(&o.profile, "profile", "p", "default", "")
	fs.StringVar(&o.profilePath, "coordinator-profile-path", "", "")
	fs.StringVar(&o.nix.ExtraParams, "extra-params", "", "")
	fs.StringVar(&o.nix.TargetProperty, "target-property", "", "")
	fs.BoolVar(&o.nix.ShowTrace, "show-trace", false, "")
	fs.BoolVar(&o.filterBuildable, "filter-buildable", false, "")
	fs.BoolVar(&o.explain, "explain", false, "")
	fs.StringVar(&o.explainFormat, "explain-format", "text", "")
	fs.StringVar(&o.explainOutput, "explain-output", "", "")
	fs.StringArrayVar(&o.explainServices, "explain-service", nil, "")
	fs.BoolVar(&o.allowEmpty, "allow-empty", false, "")
	fs.StringVarP(&o.format, "format", "f", "json", "")
	fs.StringVarP(&o.output, "output", "o", "", "")
	fs.BoolVar(&o.listPolicies, "list-policies", false, "")
	fs.BoolVarP(&o.help, "help", "h", false, "")
	if err := fs.Parse(args); err != nil {
		fmt.Fprintf(stderr, "dydisnix-gendist: %v\n\n%s", err, usage)
		return 2
	}
	if o.help {
		fmt.Fprint(stdout, usage)
		return 0
	}
	if o.listPolicies {
		for _, n := range policies.Names() {
			desc := ""
			if p, err := policies.Load(n); err == nil {
				desc = p.Description
			}
			fmt.Fprintf(stdout, "builtin:%s\n    %s\n", n, strings.Join(wrap(desc, 74), "\n    "))
		}
		return 0
	}
	var usageErr string
	switch {
	case fs.NArg() > 0:
		usageErr = fmt.Sprintf("unexpected argument %q", fs.Arg(0))
	case o.services == "":
		usageErr = "a services model must be specified (-s)"
	case o.infra == "":
		usageErr = "an infrastructure model must be specified (-i)"
	case o.format != "json" && o.format != "nix":
		usageErr = fmt.Sprintf("--format %q: expected json or nix", o.format)
	case o.explainFormat != "text" && o.explainFormat != "json":
		usageErr = fmt.Sprintf("--explain-format %q: expected text or json", o.explainFormat)
	}
	if usageErr != "" {
		fmt.Fprintf(stderr, "dydisnix-gendist: %s\n\n%s", usageErr, usage)
		return 2
	}
	if o.explainOutput != "" || len(o.explainServices) > 0 || fs.Changed("explain-format") {
		o.explain = true
	}
	if err := gendist(&o, stdout, stderr); err != nil {
		fmt.Fprintf(stderr, "dydisnix-gendist: %v\n", err)
		return 1
	}
	return 0
}

func gendist(o *options, stdout, stderr io.Writer) error {
	services, err := model.LoadServicesWith(o.services, o.nix)
	if err != nil {
		return err
	}
	cli.Warn("dydisnix-gendist", services.Validate(o.services), stderr)
	infra, err := model.LoadInfrastructureWith(o.infra, o.nix)
	if err != nil {
		return err
	}
	policy := &qos.Policy{}
	if o.qos != "" {
		if policy, err = qos.LoadPolicy(o.qos); err != nil {
			return err
		}
	}
	if o.filterBuildable {
		policy = policy.Prepend(qos.NewStep("filterBuildable", &qos.Buildable{}))
	}
	in := qos.Input{Services: services, Infrastructure: infra, Explain: o.explain, Empty: qos.RejectRemoved, ExplainServices: o.explainServices}
	if o.allowEmpty {
		in.Empty = qos.AllowEmpty
	}
	if o.initial != "" {
		if in.Initial, err = model.LoadDistributionWith(o.initial, infra, o.nix); err != nil {
			return err
		}
	}
	if o.previous == "" {
		o.previous = coordinatorProfile(o.profilePath, o.profile)
	}
	if o.previous != "" {
		if in.Previous, err = loadPrevious(o.previous, infra, o.nix); err != nil {
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
		if errors.As(err, &nc) && !o.allowEmpty {
			return fmt.Errorf("%s: %w\n(use --explain for every decision, or --allow-empty to print such services with no target)", policyName(o.qos), err)
		}
		return fmt.Errorf("%s: %w", policyName(o.qos), err)
	}
	for _, w := range res.Warnings {
		fmt.Fprintf(stderr, "dydisnix-gendist: warning: %s\n", w)
	}
	var out []byte
	if o.format == "nix" {
		out = []byte(NixDistribution(res.Distribution))
	} else {
		if out, err = model.EncodeJSON(res.Distribution); err != nil {
			return err
		}
	}
	if o.output != "" {
		if err := model.WriteFileAtomic(o.output, out, 0o644); err != nil {
			return err
		}
	} else if _, err := stdout.Write(out); err != nil {
		return err
	}
	if res.Explanation != nil {
		return writeExplanation(o, res.Explanation, stderr)
	}
	return nil
}

func policyName(q string) string {
	if q == "" {
		return "(no policy)"
	}
	return q
}

func writeExplanation(o *options, ex *qos.Explanation, stderr io.Writer) error {
	var buf bytes.Buffer
	if o.explainFormat == "json" {
		if len(o.explainServices) > 0 {
			keep := map[string]*qos.ServiceExplanation{}
			for _, s := range o.explainServices {
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
	} else if err := ex.WriteText(&buf, o.explainServices...); err != nil {
		return err
	}
	if o.explainOutput != "" {
		return model.WriteFileAtomic(o.explainOutput, buf.Bytes(), 0o644)
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
func loadPrevious(file string, infra model.Infrastructure, opts model.NixOptions) (model.Distribution, error) {
	if _, err := model.FormatOf(file); strings.HasSuffix(strings.ToLower(file), ".xml") || err != nil {
		data, err := os.ReadFile(file)
		if err != nil {
			return nil, fmt.Errorf("read %s: %w", file, err)
		}
		if t := bytes.TrimSpace(data); len(t) > 0 && t[0] == '<' {
			return previousFromXMLManifest(data, file)
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
	v, err := model.LoadValueWith(file, model.KindDistribution, infra, opts)
	if err != nil {
		return nil, err
	}
	if qos.IsManifest(v) {
		return qos.PreviousFromManifest(v, file)
	}
	return model.DistributionFromValue(v, file)
}

func wrap(s string, width int) []string {
	var lines []string
	line := ""
	for _, w := range strings.Fields(s) {
		if line != "" && len(line)+1+len(w) > width {
			lines = append(lines, line)
			line = ""
		}
		if line != "" {
			line += " "
		}
		line += w
	}
	if line != "" {
		lines = append(lines, line)
	}
	return lines
}
