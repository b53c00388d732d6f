package deployer_test

import (
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/dydisnix/dydisnix/deployer"
	"github.com/dydisnix/dydisnix/internal/testenv"
	"github.com/dydisnix/dydisnix/model"
)

// providerPkg writes a provider's component: the given modules in
// libexec/dysnomia/ and, when file is not "", etc/dysnomia/containers/<container>.
func providerPkg(t *testing.T, container, file string, modules ...string) string {
	t.Helper()
	dir := t.TempDir()
	os.MkdirAll(filepath.Join(dir, "libexec", "dysnomia"), 0o755)
	for _, m := range modules {
		testenv.WriteExecutable(t, filepath.Join(dir, "libexec", "dysnomia", m), "#!/bin/sh\nexit 0\n")
	}
	if file != "" {
		os.MkdirAll(filepath.Join(dir, "etc", "dysnomia", "containers"), 0o755)
		os.WriteFile(filepath.Join(dir, "etc", "dysnomia", "containers", container), []byte(file), 0o644)
	}
	return dir
}

// TestContainerProviderResolution: a service mapped into a container a
// service on the same target provides (named in the distribution, or
// named like its type) is run by the provider's module with the
// provider's properties, after the provider; the errors name the
// service, the target and the container.
func TestContainerProviderResolution(t *testing.T) {
	modType := filepath.Join(t.TempDir(), "provider-module")
	testenv.WriteExecutable(t, modType, "#!/bin/sh\nexit 0\n")
	infra := model.Infrastructure{
		"t1": {Name: "t1", Properties: map[string]any{}, Containers: map[string]map[string]any{"declared": {"x": "1"}}},
		"t2": {Name: "t2", Properties: map[string]any{}},
	}
	named := providerPkg(t, "kv", "flavour=vanilla\n# a comment\nport=1\n", "kv", "other")
	single := providerPkg(t, "kv", "", "the-only-module")
	none := providerPkg(t, "kv", "")
	provider := func(pkg string, attrs map[string]any) *model.Service {
		a := map[string]any{"pkg": pkg}
		for k, v := range attrs {
			a[k] = v
		}
		return &model.Service{Name: "p", Type: modType, Attrs: a}
	}
	hosted := func(typ string) *model.Service {
		return &model.Service{Name: "h", Type: typ, Attrs: map[string]any{}}
	}
	into := func(target, container string) []model.Mapping {
		return []model.Mapping{{Target: target, Container: container}}
	}
	tests := []struct {
		name      string
		p         *model.Service
		h         *model.Service
		dist      model.Distribution
		module    string            // want: the module inside the provider's pkg
		props     map[string]string // want: container properties
		wantErr   []string
		noHosting bool
	}{
		{name: "providesContainers, container named in the distribution",
			p: provider(named, map[string]any{"providesContainers": map[string]any{"kv": map[string]any{"port": "2", "dataDir": "/d"}}}),
			h: hosted("process"), dist: model.Distribution{"p": into("t1", ""), "h": into("t1", "kv")},
			module: "libexec/dysnomia/kv", props: map[string]string{"flavour": "vanilla", "port": "2", "dataDir": "/d"}},
		{name: "providesContainer, container named like the type, single module",
			p: provider(single, map[string]any{"providesContainer": "kv", "port": "7"}),
			h: hosted("kv"), dist: model.Distribution{"p": into("t1", ""), "h": into("t1", "")},
			module: "libexec/dysnomia/the-only-module", props: map[string]string{"port": "7"}},
		{name: "provider on another target: the infrastructure's container",
			p: provider(single, map[string]any{"providesContainer": "declared"}),
			h: hosted("kv"), dist: model.Distribution{"p": into("t2", ""), "h": into("t1", "declared")},
			noHosting: true},
		{name: "container named but neither provided nor declared",
			p: provider(single, map[string]any{"providesContainer": "kv"}),
			h: hosted("process"), dist: model.Distribution{"p": into("t2", ""), "h": into("t1", "kv")},
			wantErr: []string{"service h", "target t1", `container "kv"`, "t1.containers.kv"}},
		{name: "provider without a module",
			p: provider(none, map[string]any{"providesContainer": "kv"}),
			h: hosted("kv"), dist: model.Distribution{"p": into("t1", ""), "h": into("t1", "")},
			wantErr: []string{"p provides container \"kv\"", "libexec/dysnomia/kv", "found 0"}},
		{name: "several modules, none named like the container",
			p: provider(providerPkg(t, "kv", "", "a", "b"), map[string]any{"providesContainer": "kv"}),
			h: hosted("kv"), dist: model.Distribution{"p": into("t1", ""), "h": into("t1", "")},
			wantErr: []string{"no Dysnomia module", "found 2"}},
		{name: "hosted on one target, not on the other",
			p: provider(single, map[string]any{"providesContainer": "kv"}),
			h: hosted("kv"), dist: model.Distribution{"p": into("t1", ""), "h": append(into("t1", ""), into("t2", "")...)},
			wantErr: []string{"service h", "provided by p on t1", "not on t2"}},
		{name: "bad providesContainers",
			p: provider(single, map[string]any{"providesContainers": "kv"}),
			h: hosted("kv"), dist: model.Distribution{"p": into("t1", ""), "h": into("t1", "")},
			wantErr: []string{"p.providesContainers", "attribute set"}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			svcs := model.Services{"p": tc.p, "h": tc.h}
			man, err := deployer.BuildManifest(svcs, infra, tc.dist, deployer.BuildOptions{})
			if tc.wantErr != nil {
				if err == nil {
					t.Fatal("no error")
				}
				for _, w := range tc.wantErr {
					if !strings.Contains(err.Error(), w) {
						t.Errorf("error %q does not say %q", err, w)
					}
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			var h, p model.ManifestService
			var hm, pm model.ServiceMapping
			for _, m := range man.Mappings {
				switch man.Services[m.Service].Name {
				case "h":
					h, hm = man.Services[m.Service], m
				case "p":
					p, pm = man.Services[m.Service], m
				}
			}
			if tc.noHosting {
				if h.Provider != nil || h.Type != tc.h.Type {
					t.Fatalf("h is hosted: type %s, provider %+v", h.Type, h.Provider)
				}
				return
			}
			if h.Provider == nil || h.Provider.Service != "p" || h.Provider.Module != tc.module || h.Provider.Artifact != p.Artifact || p.Artifact == "" {
				t.Fatalf("provider %+v, want p's artifact %s and module %s", h.Provider, p.Artifact, tc.module)
			}
			if h.Type != filepath.Join(p.Pkg, tc.module) {
				t.Errorf("type %s, want the provider's module %s", h.Type, filepath.Join(p.Pkg, tc.module))
			}
			if len(h.DependsOn) != 1 || h.DependsOn[0] != pm {
				t.Errorf("dependsOn %v, want the provider's mapping %v", h.DependsOn, pm)
			}
			req := deployer.ActivateRequest(man, hm)
			if len(req.ContainerProperties) != len(tc.props) {
				t.Errorf("container properties %v, want %v", req.ContainerProperties, tc.props)
			}
			for k, v := range tc.props {
				if req.ContainerProperties[k] != v {
					t.Errorf("container property %s = %q, want %q", k, req.ContainerProperties[k], v)
				}
			}
		})
	}
}

// TestContainerProviderHostsServices deploys with real agents a provider
// whose package ships the module of its container (a script recording
// its calls and keeping a file per hosted service) and two services
// mapped into that container (one named in the distribution, one by its
// type): the module gets the provider's properties, the provider is
// activated first and deactivated last (also when it is upgraded or moves
// with them), and removing a hosted service runs the provider's module's
// deactivate.
func TestContainerProviderHostsServices(t *testing.T) {
	c := newCluster(t, 2)
	dir := t.TempDir()
	calls := filepath.Join(dir, "calls")
	data := filepath.Join(dir, "data")
	os.MkdirAll(data, 0o755)
	// The provider itself is run by a module of its own type.
	own := filepath.Join(dir, "store-server")
	testenv.WriteExecutable(t, own, "#!/bin/sh\necho \"provider $1 on=$DYDISNIX_TARGET\" >> "+calls+"\n")
	pkg := filepath.Join(dir, "store")
	os.MkdirAll(filepath.Join(pkg, "libexec", "dysnomia"), 0o755)
	testenv.WriteExecutable(t, filepath.Join(pkg, "libexec", "dysnomia", "kv-store"), `#!/bin/sh
n=$(basename "$2"); n=${n#*-}
echo "kv-store $1 $n $3 dataDir=$dataDir flavour=$flavour on=$DYDISNIX_TARGET" >> `+calls+`
case "$1" in
activate) echo "$n" > "$dataDir/$n" ;;
deactivate) rm -f "$dataDir/$n" ;;
esac
`)
	os.MkdirAll(filepath.Join(pkg, "etc", "dysnomia", "containers"), 0o755)
	os.WriteFile(filepath.Join(pkg, "etc", "dysnomia", "containers", "kv-store"), []byte("flavour=vanilla\ndataDir=/nowhere\n"), 0o644)

	provider := &model.Service{Name: "store", Type: own, Attrs: map[string]any{"pkg": pkg,
		"providesContainers": map[string]any{"kv-store": map[string]any{"dataDir": data}}}}
	app := &model.Service{Name: "app", Type: "kv-item", Attrs: map[string]any{}}
	cache := &model.Service{Name: "cache", Type: "kv-store", Attrs: map[string]any{}}
	all := model.Services{"store": provider, "app": app, "cache": cache}
	both := model.Distribution{
		"store": {{Target: "t1"}},
		"app":   {{Target: "t1", Container: "kv-store"}},
		"cache": {{Target: "t1"}},
	}
	// readCalls returns the activations and deactivations since the last call.
	readCalls := func() []string {
		b, _ := os.ReadFile(calls)
		os.Remove(calls)
		var out []string
		for _, l := range strings.Split(strings.TrimSpace(string(b)), "\n") {
			if f := strings.Fields(l); len(f) > 1 && (f[1] == "activate" || f[1] == "deactivate") {
				out = append(out, l)
			}
		}
		return out
	}
	exists := func(name string) bool { _, err := os.Stat(filepath.Join(data, name)); return err == nil }
	index := func(lines []string, prefix string) int {
		for i, l := range lines {
			if strings.HasPrefix(l, prefix) {
				return i
			}
		}
		t.Fatalf("no call %q in %q", prefix, lines)
		return -1
	}

	c.mustDeploy(all, both)
	got := readCalls()
	for _, want := range []string{"kv-store activate app kv-store dataDir=" + data + " flavour=vanilla", "kv-store activate cache kv-store dataDir=" + data + " flavour=vanilla"} {
		if index(got, want) < index(got, "provider activate") {
			t.Errorf("%q before the provider's activation: %q", want, got)
		}
	}
	if !exists("app") || !exists("cache") {
		t.Fatal("the provider's module keeps no file of a hosted service")
	}

	// Removing a hosted service: the provider's module deactivates it.
	c.mustDeploy(all, model.Distribution{"store": both["store"], "cache": both["cache"]})
	got = readCalls()
	if len(got) != 1 || got[0] != "kv-store deactivate app kv-store dataDir="+data+" flavour=vanilla on=t1" {
		t.Errorf("removing app ran %q, want the provider's module's deactivate of app alone", got)
	}
	if exists("app") || !exists("cache") {
		t.Error("app's file is still there, or cache's is gone")
	}

	// A new version of the provider: the service it hosts is redeployed
	// with it (its key holds the provider's), deactivated before it and
	// activated after it.
	os.WriteFile(filepath.Join(pkg, "VERSION"), []byte("2\n"), 0o644)
	c.mustDeploy(all, model.Distribution{"store": both["store"], "cache": both["cache"]})
	got = readCalls()
	if d, a := index(got, "kv-store deactivate cache"), index(got, "kv-store activate cache"); d > index(got, "provider deactivate") || a < index(got, "provider activate") {
		t.Errorf("the upgraded provider's hosted service was not redeployed around it: %q", got)
	}

	// The provider moves to t2 with the service it hosts: there too it is
	// activated first; on t1 it is deactivated last.
	c.mustDeploy(all, model.Distribution{"store": {{Target: "t2"}}, "cache": {{Target: "t2"}}})
	got = readCalls()
	if index(got, "kv-store deactivate cache kv-store dataDir="+data+" flavour=vanilla on=t1") > index(got, "provider deactivate on=t1") ||
		index(got, "kv-store activate cache kv-store dataDir="+data+" flavour=vanilla on=t2") < index(got, "provider activate on=t2") {
		t.Errorf("moving the provider with the service it hosts: %q", got)
	}
	if !exists("cache") {
		t.Error("cache's file is gone after the move")
	}

	// Removing everything: the provider is deactivated last.
	c.mustDeploy(all, model.Distribution{})
	got = readCalls()
	if index(got, "kv-store deactivate cache") > index(got, "provider deactivate") {
		t.Errorf("the provider was deactivated before the service it hosts: %q", got)
	}
	if exists("cache") {
		t.Error("cache's file is still there")
	}
}

// TestNestedContainerProviders: a provider may itself be hosted in a
// container another service provides (supervisord → mysql → databases):
// each level runs the module of the level above, after it.
func TestNestedContainerProviders(t *testing.T) {
	ownType := filepath.Join(t.TempDir(), "init")
	testenv.WriteExecutable(t, ownType, "#!/bin/sh\nexit 0\n")
	infra := model.Infrastructure{"t1": {Name: "t1", Properties: map[string]any{}}}
	sup := providerPkg(t, "supervisord-program", "", "supervisord-program")
	mysql := providerPkg(t, "mysql-database", "", "mysql-database")
	svcs := model.Services{
		"supervisord": {Name: "supervisord", Type: ownType, Attrs: map[string]any{"pkg": sup, "providesContainer": "supervisord-program"}},
		"mysql":       {Name: "mysql", Type: "supervisord-program", Attrs: map[string]any{"pkg": mysql, "providesContainer": "mysql-database", "mysqlPort": "3306"}},
		"db":          {Name: "db", Type: "mysql-database", Attrs: map[string]any{}},
	}
	d := model.Distribution{"supervisord": {{Target: "t1"}}, "mysql": {{Target: "t1"}}, "db": {{Target: "t1"}}}
	man, err := deployer.BuildManifest(svcs, infra, d, deployer.BuildOptions{})
	if err != nil {
		t.Fatal(err)
	}
	byName := map[string]model.ManifestService{}
	keyOf := map[string]string{}
	for k, s := range man.Services {
		byName[s.Name], keyOf[s.Name] = s, k
	}
	for _, tc := range []struct{ svc, provider, pkg, module string }{
		{"mysql", "supervisord", sup, "libexec/dysnomia/supervisord-program"},
		{"db", "mysql", mysql, "libexec/dysnomia/mysql-database"},
	} {
		s := byName[tc.svc]
		if s.Type != filepath.Join(tc.pkg, tc.module) || s.Provider == nil || s.Provider.Service != tc.provider {
			t.Errorf("%s: type %s, provider %+v; want %s's module", tc.svc, s.Type, s.Provider, tc.provider)
		}
		if len(s.DependsOn) != 1 || s.DependsOn[0].Service != keyOf[tc.provider] {
			t.Errorf("%s: dependsOn %v, want %s's mapping", tc.svc, s.DependsOn, tc.provider)
		}
	}
	if got := deployer.ActivateRequest(man, model.ServiceMapping{Service: keyOf["db"], Target: "t1", Container: "mysql-database"}).ContainerProperties["mysqlPort"]; got != "3306" {
		t.Errorf("db's container property mysqlPort = %q, want mysql's 3306", got)
	}
}
