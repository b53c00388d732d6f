package model

import (
	"errors"
	"strings"
	"testing"
)

func loadJSONServices(t *testing.T, text string) Services {
	t.Helper()
	v, err := DecodeValue([]byte(text), FormatJSON, "services.json")
	if err != nil {
		t.Fatal(err)
	}
	s, err := ServicesFromValue(v, "services.json")
	if err != nil {
		t.Fatal(err)
	}
	return s
}

// errLines splits a joined error into its messages.
func errLines(err error) []string {
	if err == nil {
		return nil
	}
	return strings.Split(err.Error(), "\n")
}

func TestServicesValidate(t *testing.T) {
	t.Parallel()
	cases := []struct {
		name  string
		model string
		want  []string // each a message line, in order
	}{
		{"valid", `{"a":{"name":"a","type":"process"},"b":{"name":"b","type":"process","dependsOn":["a"],"connectsTo":["c"]},"c":{"name":"c","connectsTo":["b"]}}`, nil},
		{"unknown dependency", `{"a":{"name":"a","dependsOn":["dbz","b"]},"b":{"name":"b","connectsTo":["nope"]},"dbx":{"name":"dbx"}}`, []string{
			`services.json: a.dependsOn[0]: unknown service "dbz" (did you mean "dbx"?)`,
			`services.json: b.connectsTo[0]: unknown service "nope"`,
		}},
		{"cycle", `{"a":{"name":"a","dependsOn":["b"]},"b":{"name":"b","dependsOn":["c"]},"c":{"name":"c","dependsOn":["a"]},"d":{"name":"d","dependsOn":["d"]},"e":{"name":"e","dependsOn":["a"]}}`, []string{
			`services.json: a.dependsOn: dependsOn cycle a -> b -> c -> a: Disnix cannot order the activation of these services; use connectsTo for a link that needs no activation order`,
			`services.json: d.dependsOn: dependsOn cycle d -> d: Disnix cannot order the activation of these services; use connectsTo for a link that needs no activation order`,
		}},
		{"connectsTo cycle is fine", `{"a":{"name":"a","connectsTo":["b"]},"b":{"name":"b","connectsTo":["a"]}}`, nil},
		{"name differs from key", `{"a":{"name":"b"},"b":{"name":"b"}}`, []string{
			`services.json: a.name: duplicate service name "b", also used by "b"`,
			`services.json: a.name: the name attribute is "b" but the service is defined as "a": they must be equal`,
		}},
		{"three services, one name", `{"a":{"name":"c"},"b":{"name":"c"},"c":{"name":"c"},"x":{"name":"z"},"y":{"name":"z"}}`, []string{
			`services.json: a.name: duplicate service name "c", also used by "b", "c"`,
			`services.json: a.name: the name attribute is "c" but the service is defined as "a": they must be equal`,
			`services.json: b.name: the name attribute is "c" but the service is defined as "b": they must be equal`,
			`services.json: x.name: duplicate service name "z", also used by "y"`,
			`services.json: x.name: the name attribute is "z" but the service is defined as "x": they must be equal`,
			`services.json: y.name: the name attribute is "z" but the service is defined as "y": they must be equal`,
		}},
		{"two cycles, shortest path", `{"p":{"dependsOn":["q","r"]},"q":{"dependsOn":["r","p"]},"r":{"dependsOn":["p"]},"x":{"dependsOn":["y","y"]},"y":{"dependsOn":["x","p"]}}`, []string{
			`services.json: p.dependsOn: dependsOn cycle p -> q -> p: Disnix cannot order the activation of these services; use connectsTo for a link that needs no activation order`,
			`services.json: x.dependsOn: dependsOn cycle x -> y -> x: Disnix cannot order the activation of these services; use connectsTo for a link that needs no activation order`,
		}},
		{"empty names", `{"":{"name":""},"x":{"name":""}}`, []string{
			`services.json: "": a service has an empty name`,
			`services.json: x.name: expected a non-empty service name`,
		}},
		{"attribute types", `{"a":{"name":"a","deployState":"yes","stateful":1,"requiresUniqueIdsFor":["ports",2],"portAssign":"public","providesContainers":{"c":1},"group":[]}}`, []string{
			`services.json: a.deployState: expected a bool, got string`,
			`services.json: a.group: expected a string, got list`,
			`services.json: a.portAssign: expected "shared" or "private", got "public"`,
			`services.json: a.providesContainers.c: expected an attribute set of container properties, got int`,
			`services.json: a.requiresUniqueIdsFor: expected a list of strings, got list`,
			`services.json: a.stateful: expected a bool, got int`,
		}},
		{"package as dependency", `{"a":{"name":"a","type":"package"},"b":{"name":"b","dependsOn":["a"]}}`, []string{
			`services.json: b.dependsOn[0]: service "a" has type "package", which cannot be the target of an inter-dependency`,
		}},
		{"quoted place", `{"my svc":{"name":"my svc","dependsOn":["x y"]}}`, []string{
			`services.json: "my svc".dependsOn[0]: unknown service "x y"`,
		}},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			t.Parallel()
			err := loadJSONServices(t, c.model).Validate("services.json")
			got := errLines(err)
			if strings.Join(got, "\n") != strings.Join(c.want, "\n") {
				t.Errorf("got\n%s\nwant\n%s", strings.Join(got, "\n"), strings.Join(c.want, "\n"))
			}
			if err != nil {
				var me *Error
				if !errors.As(err, &me) || me.File != "services.json" || me.Place == "" {
					t.Errorf("errors must be *model.Error with file and place, got %#v", err)
				}
			}
		})
	}
}

func TestInfrastructureValidate(t *testing.T) {
	t.Parallel()
	v, err := DecodeValue([]byte(`{
  "ok": {"properties": {"hostname": "ok"}, "containers": {"process": {}}, "numOfCores": 2},
  "bad": {"properties": {"hostname": 3, "addr": "x"}, "system": 1, "numOfCores": 0, "targetProperty": "address", "containers": {"": {}}}
}`), FormatJSON, "infra.json")
	if err != nil {
		t.Fatal(err)
	}
	infra, err := InfrastructureFromValue(v, "infra.json")
	if err != nil {
		t.Fatal(err)
	}
	want := []string{
		`infra.json: bad.containers."": a container has an empty name`,
		`infra.json: bad.numOfCores: expected a positive integer, got int 0`,
		`infra.json: bad.properties.hostname: expected a string, got int`,
		`infra.json: bad.properties: targetProperty is "address" but the target has no property "address"`,
		`infra.json: bad.system: expected a string, got int`,
	}
	got := errLines(infra.Validate("infra.json"))
	if strings.Join(got, "\n") != strings.Join(want, "\n") {
		t.Errorf("got\n%s\nwant\n%s", strings.Join(got, "\n"), strings.Join(want, "\n"))
	}
}

func TestDistributionValidate(t *testing.T) {
	t.Parallel()
	svcs := loadJSONServices(t, `{"a":{"name":"a"},"b":{"name":"b"}}`)
	infra := Infrastructure{"t1": {Name: "t1"}, "t2": {Name: "t2"}}
	d := Distribution{
		"a":  {{Target: "t1"}, {Target: "t3"}, {Target: "t1"}},
		"bb": {{Target: ""}},
		"b":  {{Target: "t2", Container: "c", Record: true}, {Target: "t2", Container: "d", Record: true}},
	}
	want := []string{
		`dist.json: a[1]: unknown target "t3": it is not in the infrastructure model (did you mean "t1"?)`,
		`dist.json: a[2]: target "t1" is mapped twice (also at index 0)`,
		`dist.json: bb: unknown service "bb": it is not in the services model (did you mean "b"?)`,
		`dist.json: bb[0]: expected a target name, got an empty string`,
	}
	got := errLines(d.Validate("dist.json", svcs, infra))
	if strings.Join(got, "\n") != strings.Join(want, "\n") {
		t.Errorf("got\n%s\nwant\n%s", strings.Join(got, "\n"), strings.Join(want, "\n"))
	}
	if err := d.Validate("dist.json", nil, nil); err == nil || strings.Contains(err.Error(), "unknown") {
		t.Errorf("with no models only the structural checks run, got %v", err)
	}
}

// TestFromValueErrors: the builders name file and place, and report every
// problem, not only the first.
func TestFromValueErrors(t *testing.T) {
	t.Parallel()
	cases := []struct {
		kind Kind
		text string
		want []string
	}{
		{KindServices, `{"a":{"name":1,"dependsOn":"b"},"b":3,"c":{"type":[],"connectsTo":[1]}}`, []string{
			`m.json: a.dependsOn: expected a list of service names, got string`,
			`m.json: a.name: expected a string, got int`,
			`m.json: b: expected a service attribute set, got int`,
			`m.json: c.connectsTo: [0]: expected a service name, got int`,
			`m.json: c.type: expected a string, got list`,
		}},
		{KindServices, `[1]`, []string{`m.json: services model: expected an attribute set of services, got list`}},
		{KindInfrastructure, `{"t":{"properties":[],"containers":{"c":1}},"u":"x"}`, []string{
			`m.json: t.containers.c: expected an attribute set of container properties, got int`,
			`m.json: t.properties: expected an attribute set of properties, got list`,
			`m.json: u: expected a target attribute set, got string`,
		}},
		{KindDistribution, `{"a":"t","b":{"x":1},"c":[1,{"target":2},{"target":"t","container":3}],"d":{"targets":5}}`, []string{
			`m.json: a: expected a list of targets, got string`,
			`m.json: b: expected a list of targets or an attribute set with "targets"`,
			`m.json: c[0]: expected a target name or a {target, container} record, got int`,
			`m.json: c[1]: expected a record with a string "target", got int`,
			`m.json: c[2]: expected a string "container", got int`,
			`m.json: d.targets: expected a list of targets, got int`,
		}},
	}
	for _, c := range cases {
		v, err := DecodeValue([]byte(c.text), FormatJSON, "m.json")
		if err != nil {
			t.Fatal(err)
		}
		switch c.kind {
		case KindServices:
			_, err = ServicesFromValue(v, "m.json")
		case KindInfrastructure:
			_, err = InfrastructureFromValue(v, "m.json")
		case KindDistribution:
			_, err = DistributionFromValue(v, "m.json")
		}
		got := errLines(err)
		if strings.Join(got, "\n") != strings.Join(c.want, "\n") {
			t.Errorf("%s %s:\ngot\n%s\nwant\n%s", c.kind, c.text, strings.Join(got, "\n"), strings.Join(c.want, "\n"))
		}
	}
}

func TestDecodeErrors(t *testing.T) {
	t.Parallel()
	cases := []struct {
		format Format
		text   string
		want   string
	}{
		{FormatJSON, "{\n  \"a\": 1,\n  \"b\": }", "m.json: 3:8: invalid JSON"},
		{FormatJSON, `{"a":1}{"b":2}`, "m.json: 1:8: expected end of input"},
		{FormatJSON, `{"a":`, "m.json: 1:6: invalid JSON: unexpected end of input"},
		{FormatJSON, "{\n \"a\": {\"x\": 1, \"y\": [{\"x\": 2}]},\n \"b\": 2,\n \"\\u0061\": 3}", `m.json: 4:2: duplicate key "a"`},
		{FormatJSON, `{"a": {"k": 1, "k": 2}}`, `m.json: 1:16: duplicate key "k"`},
		{FormatYAML, "a: [1, 2", "m.json: invalid YAML"},
		{FormatYAML, "a: 1\na: 2\n", `m.json: 2:1: duplicate key "a"`},
		{FormatYAML, "a: .inf\n", "m.json: 1:4: number .inf is not finite"},
		{FormatYAML, "", "m.json: empty YAML document"},
	}
	for _, c := range cases {
		_, err := DecodeValue([]byte(c.text), c.format, "m.json")
		if err == nil || !strings.Contains(err.Error(), c.want) {
			t.Errorf("%s %q: got %v, want %q", c.format, c.text, err, c.want)
		}
	}
}

// TestYAMLAliasBomb: aliases that expand exponentially are refused quickly.
func TestYAMLAliasBomb(t *testing.T) {
	t.Parallel()
	text := "a: &a [x, x, x, x, x, x, x, x, x, x]\n"
	prev := "a"
	for i := 0; i < 12; i++ {
		name := string(rune('b' + i))
		text += name + ": &" + name + " [*" + prev + ", *" + prev + ", *" + prev + ", *" + prev + ", *" + prev + ", *" + prev + ", *" + prev + ", *" + prev + ", *" + prev + ", *" + prev + "]\n"
		prev = name
	}
	_, err := DecodeValue([]byte(text), FormatYAML, "bomb.yaml")
	if err == nil || !strings.Contains(err.Error(), "too large") {
		t.Fatalf("want a too-large error, got %v", err)
	}
	// A normal use of aliases is fine.
	v, err := DecodeValue([]byte("base: &b {mem: 1}\nt1: {properties: *b}\n"), FormatYAML, "ok.yaml")
	if err != nil || mustJSON(t, v) == "" {
		t.Fatal(err)
	}
}
