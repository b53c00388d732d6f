package model

import (
	"encoding/json"
	"reflect"
	"strings"
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

// TestDecodeXML checks the original's XML inputs (--xml): every model read
// gives the value of its JSON form.
func TestDecodeXML(t *testing.T) {
	t.Parallel()
	n := func(s string) json.Number { return json.Number(s) }
	for _, c := range []struct {
		name, xml string
		want      any
		err       string
	}{
		{"services", `<?xml version="1.0"?><services><service name="a"><property name="name" type="string">a</property>` +
			`<property name="dependsOn"><dependency>b</dependency></property><property name="connectsTo"/>` +
			`<property name="mem" type="int">5</property><property name="f" type="float">0.5</property><property name="ok" type="bool">true</property>` +
			`<property name="l" type="list"><elem type="string">x</elem></property>` +
			`<property name="s" type="attrs"><property name="k" type="string">v</property></property></service></services>`,
			map[string]any{"a": map[string]any{"name": "a", "dependsOn": []any{"b"}, "connectsTo": []any{}, "mem": n("5"), "f": n("0.5"), "ok": true,
				"l": []any{"x"}, "s": map[string]any{"k": "v"}}}, ""},
		{"infrastructure", `<infrastructure version="2"><target name="t"><properties type="attrs"><property name="hostname" type="string">t</property></properties>` +
			`<containers><container name="c" type="attrs"><property name="p" type="int">1</property></container></containers>` +
			`<system>x86_64-linux</system><numOfCores>2</numOfCores><clientInterface>disnix-ssh-client</clientInterface><targetProperty>hostname</targetProperty></target></infrastructure>`,
			map[string]any{"t": map[string]any{"properties": map[string]any{"hostname": "t"}, "containers": map[string]any{"c": map[string]any{"p": n("1")}},
				"system": "x86_64-linux", "numOfCores": n("2"), "clientInterface": "disnix-ssh-client", "targetProperty": "hostname"}}, ""},
		{"distribution", `<distribution><service name="a"><mapping><container>c</container><target>t2</target></mapping><mapping><target>t1</target><other/></mapping></service><service name="b"/></distribution>`,
			map[string]any{"a": []any{map[string]any{"target": "t2", "container": "c"}, "t1"}, "b": []any{}}, ""},
		{"resources with step", `<resources><resource name="ports"><min>3000</min><max>4000</max><scope>global</scope><step>2</step></resource><resource name="uids"><min/><max>9</max></resource></resources>`,
			map[string]any{"ports": map[string]any{"min": n("3000"), "max": n("4000"), "scope": "global", "step": n("2")}, "uids": map[string]any{"max": n("9")}}, ""},
		{"ids", IDsXML(map[string]any{"ids": map[string]any{"ports": map[string]any{"a": n("3000")}}, "lastAssignmentsPerTarget": map[string]any{"t": map[string]any{"ports": n("3000")}}}),
			map[string]any{"ids": map[string]any{"ports": map[string]any{"a": n("3000")}}, "lastAssignmentsPerTarget": map[string]any{"t": map[string]any{"ports": n("3000")}}}, ""},
		{"gendist --output-xml reads back", DistributionXML(Distribution{"a": {{Target: "t1"}}}), map[string]any{"a": []any{"t1"}}, ""},
		{"unknown root", `<ports/>`, nil, "m.xml: unknown root element <ports>"},
		{"bad int", `<services><service name="a"><property name="p" type="int">x</property></service></services>`, nil, `m.xml: a: p: expected int, got "x"`},
		{"mapping without target", `<distribution><service name="a"><mapping/></service></distribution>`, nil, "m.xml: a: <mapping> without a <target>"},
		{"not XML", `{"a": 1}`, nil, "m.xml: not an XML model"},
	} {
		got, err := DecodeXML([]byte(c.xml), "m.xml")
		if c.err != "" {
			if err == nil || !strings.HasPrefix(err.Error(), c.err) {
				t.Errorf("%s: error %v, want %q", c.name, err, c.err)
			}
			continue
		}
		if err != nil || !reflect.DeepEqual(got, c.want) {
			t.Errorf("%s: %#v, %v\nwant %#v", c.name, got, err, c.want)
		}
	}
}

// TestPortsXML checks the legacy ports.xsl form of a port configuration:
// pools in the order lastPort, minPort, maxPort, servicesToPorts, and that
// DecodeXML reads it back; a name that cannot be an element is refused.
func TestPortsXML(t *testing.T) {
	t.Parallel()
	n := func(s string) json.Number { return json.Number(s) }
	conf := map[string]any{
		"globalConfig":  map[string]any{"lastPort": n("3001"), "minPort": n("3000"), "maxPort": n("4000"), "servicesToPorts": map[string]any{"a": n("3001")}},
		"targetConfigs": map[string]any{"t2": map[string]any{"lastPort": n("8000"), "minPort": n("8000"), "maxPort": n("9000"), "servicesToPorts": map[string]any{}}},
	}
	got, err := PortsXML(map[string]any{"ports": map[string]any{"a": n("3001")}, "portConfiguration": conf})
	want := `<portConfiguration>
  <globalConfig>
    <lastPort>3001</lastPort>
    <minPort>3000</minPort>
    <maxPort>4000</maxPort>
    <servicesToPorts>
      <a>3001</a>
    </servicesToPorts>
  </globalConfig>
  <targetConfigs>
    <t2>
      <lastPort>8000</lastPort>
      <minPort>8000</minPort>
      <maxPort>9000</maxPort>
      <servicesToPorts/>
    </t2>
  </targetConfigs>
</portConfiguration>`
	if err != nil || got != want {
		t.Fatalf("PortsXML: %v\n%s\nwant\n%s", err, got, want)
	}
	back, err := DecodeXML([]byte(got), "ports.xml")
	if err != nil || !reflect.DeepEqual(back, map[string]any{"portConfiguration": conf}) {
		t.Errorf("read back: %#v, %v", back, err)
	}
	if _, err := PortsXML(map[string]any{"portConfiguration": map[string]any{"targetConfigs": map[string]any{"1bad": map[string]any{}}}}); err == nil {
		t.Errorf("target 1bad: no error")
	}
}
