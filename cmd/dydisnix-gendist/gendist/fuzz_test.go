package gendist

import (
	"os"
	"strings"
	"testing"

	"github.com/dydisnix/dydisnix/model"
)

// FuzzPreviousXMLManifest feeds arbitrary text to the XML manifest reader
// of --previous: it must never panic, and errors name the file.
func FuzzPreviousXMLManifest(f *testing.F) {
	seed, err := os.ReadFile("../testdata/manifest.xml")
	if err != nil {
		f.Fatal(err)
	}
	f.Add(string(seed))
	f.Add(`<manifest version="2"><serviceMappings><mapping><service>x</service></mapping></serviceMappings></manifest>`)
	f.Add(`<manifest version="1"/>`)
	f.Add(`<manifest`)
	f.Fuzz(func(t *testing.T, text string) {
		d, err := model.PreviousFromDisnixManifestXML([]byte(text), "m.xml")
		if err != nil {
			if !strings.Contains(err.Error(), "m.xml") {
				t.Fatalf("error does not name the file: %v", err)
			}
			return
		}
		n := 0
		for _, ms := range d {
			n += len(ms)
		}
		if n != strings.Count(text, "<mapping") && n > strings.Count(text, "<mapping") {
			t.Fatalf("%d mappings from %d <mapping> elements", n, strings.Count(text, "<mapping"))
		}
	})
}
