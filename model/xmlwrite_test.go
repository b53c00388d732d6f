package model

import (
	"encoding/json"
	"testing"
)

// TestDistributionXML checks the original gendist --output-xml text
// (vector gendist-output-format's xmlText) and the order of record and
// plain mappings (xsl/distribution.xsl, dydisnix.md §1.4(c)).
func TestDistributionXML(t *testing.T) {
	t.Parallel()
	for _, c := range []struct {
		name string
		d    Distribution
		want string
	}{
		{"vector gendist-output-format", Distribution{"testService1": {{Target: "testtarget1"}}, "testService2": {{Target: "testtarget2"}}, "testService3": {{Target: "testtarget1"}}},
			"<?xml version=\"1.0\"?>\n<distribution><service name=\"testService1\"><mapping><target>testtarget1</target></mapping></service><service name=\"testService2\"><mapping><target>testtarget2</target></mapping></service><service name=\"testService3\"><mapping><target>testtarget1</target></mapping></service></distribution>\n"},
		{"records first, containers kept", Distribution{"a": {{Target: "t1"}, {Target: "t2", Container: "c", Record: true}}},
			"<?xml version=\"1.0\"?>\n<distribution><service name=\"a\"><mapping><container>c</container><target>t2</target></mapping><mapping><target>t1</target></mapping></service></distribution>\n"},
		{"empty service, escaped names", Distribution{"a&b": {}, "c": {{Target: "<t>"}}},
			"<?xml version=\"1.0\"?>\n<distribution><service name=\"a&amp;b\"/><service name=\"c\"><mapping><target>&lt;t&gt;</target></mapping></service></distribution>\n"},
		{"empty", Distribution{}, "<?xml version=\"1.0\"?>\n<distribution></distribution>\n"},
	} {
		if got := DistributionXML(c.d); got != c.want {
			t.Errorf("%s:\ngot  %q\nwant %q", c.name, got, c.want)
		}
	}
}

// TestIDsXML checks the XML form of an ids file (dydisnix.md §1.9): every
// level sorted, the optional sections only when they are not empty.
func TestIDsXML(t *testing.T) {
	t.Parallel()
	n := func(s string) json.Number { return json.Number(s) }
	for _, c := range []struct {
		name string
		ids  map[string]any
		want string
	}{
		{"all sections", map[string]any{
			"ids":                      map[string]any{"ports": map[string]any{"b": n("3001"), "a": n("3000")}, "uids": map[string]any{}},
			"lastAssignments":          map[string]any{"ports": n("3001")},
			"lastAssignmentsPerTarget": map[string]any{"t2": map[string]any{"ports": n("8001")}},
		}, `<ids>
  <ids>
    <resource name="ports">
      <assignment name="a">3000</assignment>
      <assignment name="b">3001</assignment>
    </resource>
    <resource name="uids"/>
  </ids>
  <lastAssignments>
    <assignment name="ports">3001</assignment>
  </lastAssignments>
  <lastAssignmentsPerTarget>
    <target name="t2">
      <assignment name="ports">8001</assignment>
    </target>
  </lastAssignmentsPerTarget>
</ids>`},
		{"nothing assigned", map[string]any{"ids": map[string]any{}}, "<ids>\n  <ids/>\n</ids>"},
	} {
		if got := IDsXML(c.ids); got != c.want {
			t.Errorf("%s:\ngot  %q\nwant %q", c.name, got, c.want)
		}
	}
}
