package visualize

import (
	"encoding/json"
	"os"
	"reflect"
	"strings"
	"testing"
)

func vectorNamed(t *testing.T, name string) vector {
	t.Helper()
	for _, v := range loadVectors(t) {
		if v.Name == name {
			return v
		}
	}
	t.Fatalf("no vector %s", name)
	return vector{}
}

// TestXMLInputs: the original's XML forms (--xml) draw and document the
// same as the JSON models of the vectors.
func TestXMLInputs(t *testing.T) {
	read := func(f string) []byte {
		data, err := os.ReadFile(f)
		if err != nil {
			t.Fatal(err)
		}
		return data
	}
	svcs, err := ServicesFromXML(read("testdata/services.xml"), "services.xml")
	if err != nil {
		t.Fatal(err)
	}
	if got, want := ServicesDOT(svcs, "", false), vectorNamed(t, "visualize-services-containers").Expected.DOT; got != want {
		t.Errorf("services.xml draws\n%s\nwant\n%s", got, want)
	}
	if got, want := svcs["mysql"].Attrs["tags"], []any{"a", true}; !reflect.DeepEqual(got, want) {
		t.Errorf("list property %v, want %v", got, want)
	}
	if got := svcs["mysql"].Attrs["port"]; got != json.Number("3306") {
		t.Errorf("int property %v", got)
	}
	infra, err := InfrastructureFromXML(read("testdata/infrastructure.xml"), "infrastructure.xml")
	if err != nil {
		t.Fatal(err)
	}
	if got, want := InfraDOT(infra), vectorNamed(t, "visualize-infra-testsuite").Expected.DOT; got != want {
		t.Errorf("infrastructure.xml draws\n%s\nwant\n%s", got, want)
	}
	if infra["test1"].System() != "x86_64-linux" || infra["test2"].Containers["mysql-database"]["mysqlPort"] != json.Number("3306") {
		t.Errorf("infrastructure.xml read as %+v %+v", infra["test1"], infra["test2"])
	}
	docs, err := DocsFromXML(read("testdata/docs.xml"), "docs.xml")
	if err != nil {
		t.Fatal(err)
	}
	v := vectorNamed(t, "document-services-docs-fields")
	if got := ServicesHTML(services(t, v.Input.Services), docs, "", false); got != v.Expected.HTML {
		t.Errorf("docs.xml documents\n%s\nwant\n%s", got, v.Expected.HTML)
	}
}

func TestXMLErrors(t *testing.T) {
	for _, c := range []struct {
		name, doc string
		load      func([]byte, string) error
		err       string
	}{
		{"not XML", "{}", servicesXML, "in.xml: not an XML document"},
		{"wrong root", "<infrastructure/>", servicesXML, "in.xml: root element <infrastructure>, expected <services>"},
		{"service without name", "<services><service/></services>", servicesXML, "expected <service name=...>"},
		{"bad int", `<services><service name="a"><property name="n" type="int">x</property></service></services>`, servicesXML, `in.xml: a.n: "x" is not a number`},
		{"bad bool", `<services><service name="a"><property name="n" type="bool">yes</property></service></services>`, servicesXML, `a.n: "yes" is not true or false`},
		{"unknown type", `<services><service name="a"><property name="n" type="set"/></service></services>`, servicesXML, `a.n: unknown type "set"`},
		{"attr without name", `<services><service name="a"><property name="n" type="attrs"><x/></property></service></services>`, servicesXML, "a.n: <x> without a name attribute"},
		{"target without name", "<infrastructure><target/></infrastructure>", infraXML, "expected <target name=...>"},
		{"docs part", "<docs-config><colors/></docs-config>", docsXML, "<colors> in <docs-config>"},
	} {
		t.Run(c.name, func(t *testing.T) {
			if err := c.load([]byte(c.doc), "in.xml"); err == nil || !strings.Contains(err.Error(), c.err) {
				t.Errorf("error %v, want %q", err, c.err)
			}
		})
	}
}

func servicesXML(d []byte, f string) error { _, err := ServicesFromXML(d, f); return err }
func infraXML(d []byte, f string) error    { _, err := InfrastructureFromXML(d, f); return err }
func docsXML(d []byte, f string) error     { _, err := DocsFromXML(d, f); return err }
