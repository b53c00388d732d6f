package main

import (
	"bytes"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/dydisnix/dydisnix/internal/cli/clitest"
)

var write = clitest.WriteFile

func runCmd(args ...string) (int, string, string) { return clitest.Run(run, args...) }

func models(t *testing.T, dir string) (string, string, string) {
	s := write(t, dir, "s.yaml", "a: {name: a, portAssign: shared}\nb: {name: b, portAssign: private}\nc: {name: c, portAssign: private}\n")
	i := write(t, dir, "i.json", `{"t1": {"properties": {"hostname": "t1"}}, "t2": {"properties": {"hostname": "t2"}}}`)
	d := write(t, dir, "d.json", `{"a": ["t1"], "b": ["t1"], "c": []}`)
	return s, i, d
}

func TestExitCodes(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	s, i, d := models(t, dir)
	clitest.RunCases(t, run, []clitest.Case{
		clitest.C("help", []string{"--help"}, 0, "Usage: dydisnix-port-assign", ""),
		clitest.C("no services", []string{"-i", i, "-d", d}, 2, "", "A services expression must be specified!"),
		clitest.C("no infrastructure", []string{"-s", s, "-d", d}, 2, "", "An infrastructure expression must be specified!"),
		clitest.C("no distribution", []string{"-s", s, "-i", i}, 2, "", "A distribution expression must be specified!"),
		clitest.C("extra argument", []string{"-s", s, "-i", i, "-d", d, "x"}, 2, "", `unexpected argument "x"`),
		clitest.C("bad ports file", []string{"-s", s, "-i", i, "-d", d, "-p", write(t, dir, "p.json", `{"portConfiguration": {"globalConfig": {"minPort": "x"}}}`)}, 1, "",
			"portConfiguration.globalConfig.minPort: expected an integer"),
		clitest.C("ok with warning", []string{"-s", s, "-i", i, "-d", d}, 0, `"a": 3001`, "WARNING: c is not distributed to any machine. Skipping port assignment..."),
		clitest.C("unknown target", []string{"-s", s, "-i", i, "-d", write(t, dir, "d2.json", `{"a": ["t9"]}`)}, 1, "", `a[0]: unknown target "t9": it is not in the infrastructure model`),
		// A missing ports file is the first run; one that cannot be read
		// (here a directory) is an error, never "no previous ports".
		clitest.C("missing ports file", []string{"-s", s, "-i", i, "-d", d, "-p", filepath.Join(dir, "none.json")}, 0, `"a": 3001`, ""),
		clitest.C("unreadable ports file", []string{"-s", s, "-i", i, "-d", d, "-p", dir}, 1, "", "previous ports file"),
	})
}

// TestPortsFileCycle writes ports.nix, reads it back with -p (real
// nix-instantiate) and rewrites it in place; an exhausted pool leaves the
// file as it was.
func TestPortsFileCycle(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	s, i, d := models(t, dir)
	ports := filepath.Join(dir, "ports.nix")
	// First run of a -p F -o F cycle: F does not exist yet.
	if code, _, errs := runCmd("-s", s, "-i", i, "-d", d, "-p", ports, "--format", "nix", "-o", ports); code != 0 {
		t.Fatalf("exit %d: %s", code, errs)
	}
	first, _ := os.ReadFile(ports)
	if code, _, errs := runCmd("-s", s, "-i", i, "-d", d, "-p", ports, "--format", "nix", "-o", ports); code != 0 {
		t.Fatalf("exit %d: %s", code, errs)
	}
	second, _ := os.ReadFile(ports)
	if !bytes.Equal(first, second) || !strings.Contains(string(first), `"b" = 8001;`) {
		t.Fatalf("ports file changed or wrong:\n%s\n%s", first, second)
	}
	full := write(t, dir, "full.json", `{"portConfiguration": {"globalConfig": {"lastPort": 1, "minPort": 1, "maxPort": 1, "servicesToPorts": {"x": 1}}, "targetConfigs": {}}}`)
	s2 := write(t, dir, "s2.json", `{"a": {"name": "a", "portAssign": "shared"}, "x": {"name": "x", "portAssign": "shared"}}`)
	d2 := write(t, dir, "d2.json", `{"a": ["t1"], "x": ["t2"]}`)
	code, _, errs := runCmd("-s", s2, "-i", i, "-d", d2, "-p", full, "-o", ports)
	if code != 1 || !strings.Contains(errs, "exhausted") {
		t.Fatalf("exit %d: %s", code, errs)
	}
	if third, _ := os.ReadFile(ports); !bytes.Equal(third, first) {
		t.Fatalf("failed run changed the ports file")
	}
}

// TestXML checks the original's --xml and --output-xml (issue 9 item 6):
// XML models in, the port configuration out as ports.xsl's XML, which
// --xml -p reads back to the same assignment.
func TestXML(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	s := write(t, dir, "s.xml", `<services><service name="a"><property name="portAssign" type="string">shared</property></service>`+
		`<service name="b"><property name="portAssign" type="string">private</property></service></services>`)
	i := write(t, dir, "i.xml", `<infrastructure version="2"><target name="t1"><properties type="attrs"><property name="hostname" type="string">t1</property></properties></target></infrastructure>`)
	d := write(t, dir, "d.xml", `<distribution><service name="a"><mapping><target>t1</target></mapping></service><service name="b"><mapping><target>t1</target></mapping></service></distribution>`)
	want := "<portConfiguration>\n  <globalConfig>\n    <lastPort>3001</lastPort>\n    <minPort>3000</minPort>\n    <maxPort>4000</maxPort>\n" +
		"    <servicesToPorts>\n      <a>3001</a>\n    </servicesToPorts>\n  </globalConfig>\n  <targetConfigs>\n    <t1>\n" +
		"      <lastPort>8001</lastPort>\n      <minPort>8000</minPort>\n      <maxPort>9000</maxPort>\n      <servicesToPorts>\n" +
		"        <b>8001</b>\n      </servicesToPorts>\n    </t1>\n  </targetConfigs>\n</portConfiguration>"
	p := filepath.Join(dir, "ports.xml")
	if code, _, errs := runCmd("--xml", "-s", s, "-i", i, "-d", d, "--output-xml", "-o", p); code != 0 {
		t.Fatalf("exit %d: %s", code, errs)
	}
	if got, _ := os.ReadFile(p); string(got) != want {
		t.Fatalf("ports.xml:\n%s\nwant\n%s", got, want)
	}
	code, out, errs := runCmd("--xml", "-s", s, "-i", i, "-d", d, "-p", p, "--output-xml")
	if code != 0 || out != want {
		t.Errorf("rerun over its own ports.xml: exit %d %s\n%s", code, errs, out)
	}
}
