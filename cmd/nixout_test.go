package cmd_test

import (
	"context"
	"encoding/json"
	"errors"
	"os"
	"os/exec"
	"path/filepath"
	"reflect"
	"strings"
	"testing"
	"time"

	"github.com/dydisnix/dydisnix/internal/netns"
	"github.com/dydisnix/dydisnix/internal/testenv"
)

// A Disnix user's models, as .nix files: two services asking for a port,
// two machines.
const (
	servicesNix = `{system, distribution, invDistribution, pkgs}:
let ids = if builtins.pathExists ./ids.nix then (import ./ids.nix).ids else {};
    svc = name: { inherit name; type = "process"; requiresUniqueIdsFor = [ "ports" ];
                  port = ids.ports.${name} or 0; portAssign = "shared"; };
in { a = svc "a"; b = svc "b"; }
`
	infrastructureNix = `{ t1 = { properties.hostname = "t1"; system = "x86_64-linux"; };
  t2 = { properties.hostname = "t2"; system = "x86_64-linux"; }; }
`
	idResourcesNix = `{ ports = { min = 3000; max = 4000; scope = "global"; }; }
`
	qosYAML = `steps:
  - filter: divideRoundRobin
`
)

// userDir writes the models into a fresh directory.
func userDir(t *testing.T) string {
	t.Helper()
	dir := t.TempDir()
	for name, content := range map[string]string{"services.nix": servicesNix, "infrastructure.nix": infrastructureNix,
		"idresources.nix": idResourcesNix, "qos.yaml": qosYAML} {
		if err := os.WriteFile(filepath.Join(dir, name), []byte(content), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	return dir
}

// nixEval evaluates expr with the real nix-instantiate in dir and returns
// its JSON value.
func nixEval(t *testing.T, dir, expr string) any {
	t.Helper()
	cmd := exec.Command("nix-instantiate", "--eval", "--strict", "--json", "-E", expr)
	cmd.Dir = dir
	out, err := cmd.Output()
	if err != nil {
		var stderr []byte
		if ee, ok := err.(*exec.ExitError); ok {
			stderr = ee.Stderr
		}
		t.Fatalf("nix-instantiate %s: %v\n%s", expr, err, stderr)
	}
	var v any
	if err := json.Unmarshal(out, &v); err != nil {
		t.Fatal(err)
	}
	return v
}

// run runs a program in dir and fails the test unless it exits 0.
func runIn(t *testing.T, dir, prog string, args ...string) string {
	t.Helper()
	cmd := exec.Command(bin(prog), args...)
	cmd.Dir = dir
	out, err := cmd.Output()
	if err != nil {
		var stderr []byte
		if ee, ok := err.(*exec.ExitError); ok {
			stderr = ee.Stderr
		}
		t.Fatalf("%s %v: %v\n%s", prog, args, err, stderr)
	}
	return string(out)
}

func readJSON(t *testing.T, file string) any {
	t.Helper()
	data, err := os.ReadFile(file)
	if err != nil {
		t.Fatal(err)
	}
	var v any
	if err := json.Unmarshal(data, &v); err != nil {
		t.Fatalf("%s: %v", file, err)
	}
	return v
}

// TestNixOutputFiles checks issue 9 item 5: an output file whose name ends
// in .nix is written as Nix by every command (it held JSON), in the
// original's layout, and evaluates with the real nix-instantiate to what
// the same command writes as JSON.
func TestNixOutputFiles(t *testing.T) {
	testenv.NeedCommand(t, "nix-instantiate")
	dir := userDir(t)
	common := []string{"-s", "services.nix", "-i", "infrastructure.nix"}
	runIn(t, dir, "dydisnix-gendist", append(common, "-q", "qos.yaml", "-o", "dist.json")...)
	for _, c := range []struct {
		prog   string
		args   []string // the output file is appended
		nix    string   // file written as Nix
		json   string   // the same output as JSON
		eval   string   // expression turning the .nix file into the JSON's value
		prefix string   // the start of the original's text
	}{
		{"dydisnix-gendist", append(common, "-q", "qos.yaml", "-o"), "dist.nix", "dist.json",
			`builtins.mapAttrs (s: ts: map (t: t.properties.hostname) ts) (import ./dist.nix { infrastructure = import ./infrastructure.nix; })`,
			"\n{infrastructure}:\n\n{\n  a = [\n    infrastructure.t1\n  ];\n"},
		{"dydisnix-id-assign", append(common, "-d", "dist.json", "--id-resources", "idresources.nix", "--output-file"), "ids.nix", "ids.json",
			`import ./ids.nix`, "{\n  \"ids\" = {\n    \"ports\" = {\n      \"a\" = 3000;\n"},
		{"dydisnix-port-assign", append(common, "-d", "dist.json", "-o"), "ports.nix", "ports.json",
			`import ./ports.nix`, "{\n  \"ports\" = {\n"},
	} {
		t.Run(c.prog, func(t *testing.T) {
			runIn(t, dir, c.prog, append(c.args, c.nix)...)
			runIn(t, dir, c.prog, append(c.args, c.json)...)
			text, err := os.ReadFile(filepath.Join(dir, c.nix))
			if err != nil {
				t.Fatal(err)
			}
			if !strings.HasPrefix(string(text), c.prefix) {
				t.Errorf("%s starts %q, want %q", c.nix, text, c.prefix)
			}
			if got, want := nixEval(t, dir, c.eval), readJSON(t, filepath.Join(dir, c.json)); !reflect.DeepEqual(got, want) {
				t.Errorf("%s evaluates to %v, want %v (the JSON output)", c.nix, got, want)
			}
		})
	}
	// ids.nix as the services model imports it: the ports reach the services.
	got := nixEval(t, dir, `map (s: s.port) (builtins.attrValues (import ./services.nix { system = null; distribution = null; invDistribution = null; pkgs = null; }))`)
	if want := []any{3000.0, 3001.0}; !reflect.DeepEqual(got, want) {
		t.Errorf("ports seen by services.nix through import ./ids.nix: %v, want %v", got, want)
	}
	// ... and the next run reads its own ids.nix back: the same assignment.
	before, _ := os.ReadFile(filepath.Join(dir, "ids.nix"))
	runIn(t, dir, "dydisnix-id-assign", append(common, "-d", "dist.json", "--id-resources", "idresources.nix", "--ids", "ids.nix", "--output-file", "ids.nix")...)
	if after, _ := os.ReadFile(filepath.Join(dir, "ids.nix")); string(after) != string(before) {
		t.Errorf("id-assign over its own ids.nix changed it:\n%s\nwas\n%s", after, before)
	}
}

// TestGendistOriginalOutputFlags checks issue 9 item 6 for gendist:
// --no-out-link prints the path of a Nix distribution file that -d takes,
// --stdout prints the original's Nix text, --output-xml its XML.
func TestGendistOriginalOutputFlags(t *testing.T) {
	testenv.NeedCommand(t, "nix-instantiate")
	dir := userDir(t)
	gendist := []string{"-s", "services.nix", "-i", "infrastructure.nix", "-q", "qos.yaml"}
	nixText := "\n{infrastructure}:\n\n{\n  a = [\n    infrastructure.t1\n  ];\n  b = [\n    infrastructure.t2\n  ];\n  \n}\n\t"
	xmlText := "<?xml version=\"1.0\"?>\n<distribution><service name=\"a\"><mapping><target>t1</target></mapping></service>" +
		"<service name=\"b\"><mapping><target>t2</target></mapping></service></distribution>\n"

	path := strings.TrimSuffix(runIn(t, dir, "dydisnix-gendist", append(gendist, "--no-out-link")...), "\n")
	if !filepath.IsAbs(path) || !strings.HasSuffix(path, ".nix") {
		t.Fatalf("--no-out-link printed %q, want the absolute path of a .nix file", path)
	}
	if text, err := os.ReadFile(path); err != nil || string(text) != nixText {
		t.Errorf("--no-out-link file: %q (%v), want %q", text, err, nixText)
	}
	os.RemoveAll(filepath.Dir(path))
	// A script's -d $(dydisnix-gendist ... --no-out-link), -o giving the file.
	path = strings.TrimSuffix(runIn(t, dir, "dydisnix-gendist", append(gendist, "--no-out-link", "-o", "d.nix")...), "\n")
	if path != filepath.Join(dir, "d.nix") {
		t.Errorf("--no-out-link -o d.nix printed %q, want %q", path, filepath.Join(dir, "d.nix"))
	}
	out := runIn(t, dir, "dydisnix-id-assign", "-s", "services.nix", "-i", "infrastructure.nix", "-d", path, "--id-resources", "idresources.nix")
	if !strings.Contains(out, `"a": 3000`) || !strings.Contains(out, `"b": 3001`) {
		t.Errorf("id-assign -d $(gendist --no-out-link): %s", out)
	}

	for _, c := range []struct {
		args []string
		want string
	}{
		{[]string{"--stdout"}, nixText},
		{[]string{"--stdout", "--no-out-link"}, nixText},
		{[]string{"--output-xml", "--stdout"}, xmlText},
		{[]string{"-f", "xml"}, xmlText},
		{[]string{"--interface", "disnix-ssh-client", "--target-property", "hostname", "--stdout"}, nixText},
	} {
		if got := runIn(t, dir, "dydisnix-gendist", append(gendist, c.args...)...); got != c.want {
			t.Errorf("gendist %v: %q, want %q", c.args, got, c.want)
		}
	}
	if code, _, errs := runProgram(t, bin("dydisnix-gendist"), append(gendist, "--output-xml", "-o", filepath.Join(dir, "x.nix"))...); code != 2 {
		t.Errorf("--output-xml -o x.nix: exit %d (%s), want a usage error", code, errs)
	}
}

// TestIDAssignXML checks issue 9 item 6 for id-assign: --xml reads the
// original's XML models (step honoured, as the original read it only from
// XML), --output-xml writes its XML ids file, which --xml --ids reads back.
func TestIDAssignXML(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	for name, content := range map[string]string{
		"s.xml": `<?xml version="1.0"?><services>
  <service name="a"><property name="name" type="string">a</property><property name="dependsOn"/><property name="requiresUniqueIdsFor" type="list"><elem type="string">ports</elem></property></service>
  <service name="b"><property name="name" type="string">b</property><property name="dependsOn"><dependency>a</dependency></property><property name="requiresUniqueIdsFor" type="list"><elem type="string">ports</elem></property></service>
</services>`,
		"i.xml": `<infrastructure version="2"><target name="t1"><properties type="attrs"><property name="hostname" type="string">t1</property></properties><containers/><system>x86_64-linux</system></target></infrastructure>`,
		"d.xml": `<distribution><service name="a"><mapping><target>t1</target></mapping></service><service name="b"><mapping><container>process</container><target>t1</target></mapping></service></distribution>`,
		"r.xml": `<resources><resource name="ports"><min>3000</min><max>4000</max><scope>global</scope><step>5</step></resource></resources>`,
	} {
		if err := os.WriteFile(filepath.Join(dir, name), []byte(content), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	args := []string{"--xml", "-s", "s.xml", "-i", "i.xml", "-d", "d.xml", "--id-resources", "r.xml"}
	want := "<ids>\n  <ids>\n    <resource name=\"ports\">\n      <assignment name=\"a\">3000</assignment>\n      <assignment name=\"b\">3005</assignment>\n" +
		"    </resource>\n  </ids>\n  <lastAssignments>\n    <assignment name=\"ports\">3005</assignment>\n  </lastAssignments>\n</ids>"
	if got := runIn(t, dir, "dydisnix-id-assign", append(args, "--output-xml", "--output-file", "ids.xml")...); got != "" {
		t.Errorf("stdout %q with --output-file", got)
	}
	if got, _ := os.ReadFile(filepath.Join(dir, "ids.xml")); string(got) != want {
		t.Errorf("ids.xml:\n%s\nwant\n%s", got, want)
	}
	if got := runIn(t, dir, "dydisnix-id-assign", append(args, "--ids", "ids.xml", "--output-xml")...); got != want {
		t.Errorf("rerun over its own ids.xml:\n%s\nwant\n%s", got, want)
	}
}

// TestGeninfraAvahiWithoutArguments checks issue 9 item 7: the original's
// dydisnix-geninfra-avahi, and DYDISNIX_GENINFRA=dydisnix-geninfra-avahi,
// work without arguments, browsing every up, multicast-capable,
// non-loopback interface (here eth0 of a namespace on a bridge, where a
// publisher announces test1); in a namespace with only a loopback there is
// nothing to browse, and it says so.
func TestGeninfraAvahiWithoutArguments(t *testing.T) {
	nw := netns.NewNetworkT(t, "ddga", 2)
	pubNode, node := nw.Nodes[0], nw.Nodes[1]
	dir := userDir(t)
	props := filepath.Join(dir, "test1.json")
	if err := os.WriteFile(props, []byte(`{"properties": {"hostname": "test1", "agentURL": "http://test1:9470"}}`), 0o644); err != nil {
		t.Fatal(err)
	}
	pub := pubNode.Command(context.Background(), bin("dydisnix-publishinfra"), "--interface", pubNode.Interface, "--properties", props)
	netns.StartT(t, pub)

	var nixOut string
	testenv.Eventually(t, time.Minute, func() bool {
		out, err := node.Command(context.Background(), bin("dydisnix-geninfra-avahi")).Output()
		nixOut = string(out)
		return err == nil && strings.Contains(nixOut, "test1")
	}, "dydisnix-geninfra-avahi without arguments never saw test1")
	if !strings.HasPrefix(nixOut, "{\n  test1 = {") {
		t.Errorf("dydisnix-geninfra-avahi printed %q, want the Nix infrastructure model", nixOut)
	}

	if err := os.WriteFile(filepath.Join(dir, "services.yaml"), []byte("a: {name: a, type: process, command: \"sleep 60\"}\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	env := node.Command(context.Background(), bin("dydisnix-env"), "-s", "services.yaml", "-q", "qos.yaml", "--dry-run", "--state-dir", t.TempDir())
	env.Dir, env.Env = dir, append(os.Environ(), "DYDISNIX_GENINFRA="+bin("dydisnix-geninfra-avahi"))
	// test1 is known only from mDNS: the plan placing a on it (whose
	// agent, not running here, is then found unreachable) shows that the
	// generator ran without arguments and its Nix output was read.
	out, err := env.CombinedOutput()
	if !strings.Contains(string(out), "on target test1") {
		t.Errorf("DYDISNIX_GENINFRA=dydisnix-geninfra-avahi dydisnix-env --dry-run: %v\n%s", err, out)
	}

	lonely := netns.NewT(t, "ddgl")
	out, err = lonely.Command(context.Background(), bin("dydisnix-geninfra-avahi")).CombinedOutput()
	if code := exitCode(err); code != 1 || !strings.Contains(string(out), "no interface to browse") {
		t.Errorf("only a loopback: exit %d, %s", code, out)
	}
}

// exitCode is the exit status of a command's error (0 for nil).
func exitCode(err error) int {
	var ee *exec.ExitError
	if errors.As(err, &ee) {
		return ee.ExitCode()
	}
	if err != nil {
		return -1
	}
	return 0
}

// TestNoJSONInNixFiles checks that the commands that write no Nix refuse
// an output file named .nix (a usage error) rather than put JSON or text
// in it (issue 9 item 5).
func TestNoJSONInNixFiles(t *testing.T) {
	t.Parallel()
	for _, c := range [][]string{
		{"dydisnix-env", "-s", "s.nix", "-q", "q.nix", "--dry-run", "-o", "plan.nix"},
		{"dydisnix-reconstruct", "-i", "i.nix", "-o", "manifest.nix"},
		{"dydisnix-snapshot", "-o", "list.nix"},
		{"dydisnix-visualize", "-s", "s.nix", "-i", "i.nix", "-d", "d.nix", "-o", "pic.nix"},
	} {
		code, out, errs := runProgram(t, bin(c[0]), c[1:]...)
		if code != 2 || out != "" || !strings.Contains(errs, ".nix") {
			t.Errorf("%v: exit %d, stdout %q, stderr %q; want a usage error naming the file", c, code, out, errs)
		}
	}
}
