package model

import (
	"strings"
	"testing"
)

func TestPreviousFromDisnixManifestXML(t *testing.T) {
	t.Parallel()
	const svc = `<services><service name="k1"><name>web</name><type>process</type></service><service name="k2"><name>db</name><type>mysql-database</type></service></services>`
	for _, tc := range []struct {
		name, xml, want, err string
	}{
		{"automapped", `<manifest version="2">` + svc + `<serviceMappings><mapping><container>process</container><service>k1</service><target>t1</target></mapping><mapping><container>mysql-database</container><service>k2</service><target>t2</target></mapping><mapping><container>process</container><service>k1</service><target>t2</target></mapping></serviceMappings></manifest>`,
			`db:[{t2  false}] web:[{t1  false} {t2  false}]`, ""},
		{"containers", `<manifest version="2">` + svc + `<serviceMappings><mapping><container>other</container><service>k1</service><target>t1</target></mapping></serviceMappings></manifest>`,
			`web:[{t1 other true}]`, ""},
		{"version 1", `<manifest version="1"/>`, "", "disnix-convert"},
		{"unknown key", `<manifest version="2">` + svc + `<serviceMappings><mapping><service>k9</service><target>t1</target></mapping></serviceMappings></manifest>`, "", `service key "k9"`},
		{"no target", `<manifest version="2">` + svc + `<serviceMappings><mapping><service>k1</service></mapping></serviceMappings></manifest>`, "", "no target"},
		{"not xml", `{`, "", "cannot be read"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			d, err := PreviousFromDisnixManifestXML([]byte(tc.xml), "m.xml")
			if tc.err != "" {
				if err == nil || !strings.Contains(err.Error(), tc.err) || !strings.Contains(err.Error(), "m.xml") {
					t.Fatalf("error %v, want one naming m.xml and containing %q", err, tc.err)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			var parts []string
			for _, s := range d.Names() {
				parts = append(parts, s+":"+fmtMappings(d[s]))
			}
			if got := strings.Join(parts, " "); got != tc.want {
				t.Errorf("got %s, want %s", got, tc.want)
			}
		})
	}
}

func fmtMappings(ms []Mapping) string {
	var b strings.Builder
	b.WriteString("[")
	for i, m := range ms {
		if i > 0 {
			b.WriteString(" ")
		}
		b.WriteString("{" + m.Target + " " + m.Container + " ")
		if m.Record {
			b.WriteString("true}")
		} else {
			b.WriteString("false}")
		}
	}
	b.WriteString("]")
	return b.String()
}
