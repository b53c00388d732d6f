package disnix

import (
	"context"
	"errors"
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"testing"

	"github.com/dydisnix/dydisnix/deployer"
	"github.com/dydisnix/dydisnix/model"
)

func TestPreviousDistribution(t *testing.T) {
	t.Parallel()
	data, err := os.ReadFile(filepath.Join("testdata", "manifest.xml"))
	if err != nil {
		t.Fatal(err)
	}
	got, err := PreviousDistribution(data, "manifest.xml")
	if err != nil {
		t.Fatal(err)
	}
	want := model.Distribution{
		"ZipcodeService": {{Target: "test1"}, {Target: "test2"}},
		"zipcodes":       {{Target: "test2"}},
	}
	if !reflect.DeepEqual(got, want) {
		t.Errorf("got %v, want %v", got, want)
	}
	// One container that is not the type: every mapping becomes a record.
	custom := strings.Replace(string(data), "<target>test2</target><container>mysql-database</container>", "<target>test2</target><container>mysql-secondary</container>", 1)
	got, err = PreviousDistribution([]byte(custom), "manifest.xml")
	if err != nil {
		t.Fatal(err)
	}
	if m := got["zipcodes"][0]; !m.Record || m.Container != "mysql-secondary" {
		t.Errorf("zipcodes = %+v, want a record with container mysql-secondary", m)
	}
	if m := got["ZipcodeService"][0]; !m.Record || m.Container != "tomcat-webapplication" {
		t.Errorf("ZipcodeService = %+v, want a record", m)
	}
	for name, bad := range map[string]string{
		"not xml":        "{}",
		"version 1":      `<manifest version="1"/>`,
		"unknown key":    `<manifest version="2"><services/><serviceMappings><mapping><service>x</service><target>t</target></mapping></serviceMappings></manifest>`,
		"mapping target": `<manifest version="2"><services><service name="k"><name>a</name><type>p</type></service></services><serviceMappings><mapping><service>k</service></mapping></serviceMappings></manifest>`,
	} {
		if _, err := PreviousDistribution([]byte(bad), "m.xml"); err == nil || !strings.Contains(err.Error(), "m.xml") {
			t.Errorf("%s: error %v, want one naming the file", name, err)
		}
	}
}

func TestCurrentFromCoordinatorProfile(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	b := &Backend{Options: Options{CoordinatorProfilePath: dir, Profile: "prod"}}
	if d, err := b.Current(context.Background()); err != nil || d != nil {
		t.Fatalf("no profile: %v %v, want nil, nil", d, err)
	}
	// prod → prod-1-link → the manifest file, as nix-env --set makes it.
	abs, _ := filepath.Abs(filepath.Join("testdata", "manifest.xml"))
	if err := os.Symlink(abs, filepath.Join(dir, "prod-1-link")); err != nil {
		t.Fatal(err)
	}
	if err := os.Symlink("prod-1-link", filepath.Join(dir, "prod")); err != nil {
		t.Fatal(err)
	}
	d, err := b.Current(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	if got := d.Targets("ZipcodeService"); !reflect.DeepEqual(got, []string{"test1", "test2"}) {
		t.Errorf("ZipcodeService on %v", got)
	}
	if b.CoordinatorManifest() != filepath.Join(dir, "prod") {
		t.Errorf("CoordinatorManifest = %s", b.CoordinatorManifest())
	}
}

func TestFakeDisnixExecutorDeploysPlan(t *testing.T) {
	t.Parallel()
	bin, rec := fakeDisnix(t)
	svcs, err := model.ServicesFromValue(mustValue(t, `{
		"db": {"name": "db", "type": "mysql-database"},
		"web": {"name": "web", "type": "tomcat-webapplication", "dependsOn": ["db"]}}`), "test")
	if err != nil {
		t.Fatal(err)
	}
	infra := mustInfra(t, testInfra)
	dist := mustDist(t, `{"db": [{"target": "test1", "container": "mysql-database"}], "web": ["test1", "test-2"]}`)
	man, err := deployer.BuildManifest(svcs, infra, dist, deployer.BuildOptions{SkipArtifacts: true})
	if err != nil {
		t.Fatal(err)
	}
	plan, err := deployer.PlanTransition(nil, man, deployer.PlanOptions{})
	if err != nil {
		t.Fatal(err)
	}
	var events []deployer.StepEvent
	e := &Executor{Backend: &Backend{Bin: bin, Env: []string{"FAKE_DISNIX_DIR=" + rec, "FAKE_DISNIX_EVAL=1"}}, ServicesFile: writeServices(t)}
	if err := e.Execute(context.Background(), plan, func(ev deployer.StepEvent) { events = append(events, ev) }); err != nil {
		t.Fatal(err)
	}
	if len(events) != 2 || events[0].Phase != deployer.PhaseStart || events[1].Phase != deployer.PhaseDone {
		t.Errorf("events %v", events)
	}
	// The distribution handed to disnix-env is the plan's: db's container is
	// its type, so plain names are written.
	got, err := os.ReadFile(filepath.Join(rec, ToolEnv+"-"+DistributionFile))
	if err != nil {
		t.Fatal(err)
	}
	want, _ := DistributionNix(model.Distribution{"db": {{Target: "test1"}}, "web": {{Target: "test-2"}, {Target: "test1"}}}, infra)
	if string(got) != string(want) {
		t.Errorf("distribution given to disnix-env:\n%s\nwant\n%s", got, want)
	}

	// A failing disnix-env is a StepError that carries its stderr.
	e.Env = append(e.Env, "FAKE_DISNIX_FAIL=activation of web failed")
	err = e.Execute(context.Background(), plan, nil)
	var se *deployer.StepError
	if !errors.As(err, &se) || se.Step.Kind != StepDisnixEnv || !strings.Contains(err.Error(), "activation of web failed") {
		t.Errorf("error %v, want a StepError carrying disnix-env's stderr", err)
	}
}

// FuzzPreviousDistribution checks that no manifest text makes the reader
// panic, and that what it accepts names only services and targets that
// the manifest has.
func FuzzPreviousDistribution(f *testing.F) {
	if data, err := os.ReadFile(filepath.Join("testdata", "manifest.xml")); err == nil {
		f.Add(data)
	}
	f.Add([]byte(`<manifest version="2"><services/><serviceMappings/></manifest>`))
	f.Add([]byte(`<manifest version="2"><services><service name="k"><name>a</name><type>p</type></service></services><serviceMappings><mapping><service>k</service><target>t</target><container>c</container></mapping></serviceMappings></manifest>`))
	f.Add([]byte(`<manifest`))
	f.Fuzz(func(t *testing.T, data []byte) {
		d, err := PreviousDistribution(data, "fuzz.xml")
		if err != nil {
			return
		}
		for svc, ms := range d {
			if len(ms) == 0 {
				t.Errorf("service %q with no mappings", svc)
			}
			for _, m := range ms {
				if m.Target == "" {
					t.Errorf("service %q: empty target", svc)
				}
			}
		}
	})
}
