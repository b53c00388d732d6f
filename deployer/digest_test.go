package deployer_test

import (
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"testing"

	"github.com/dydisnix/dydisnix/deployer"
	"github.com/dydisnix/dydisnix/model"
)

// sharedArtifacts writes files executables of size bytes each and returns
// n process services spread over them, all on target t1.
func sharedArtifacts(tb testing.TB, files, n, size int) ([]string, model.Services, model.Infrastructure, model.Distribution) {
	tb.Helper()
	dir := tb.TempDir()
	var paths []string
	for i := 0; i < files; i++ {
		p := filepath.Join(dir, fmt.Sprintf("bin%d", i))
		b := make([]byte, size)
		b[0] = byte(i)
		if err := os.WriteFile(p, b, 0o755); err != nil {
			tb.Fatal(err)
		}
		paths = append(paths, p)
	}
	svcs := model.Services{}
	d := model.Distribution{}
	for i := 0; i < n; i++ {
		name := fmt.Sprintf("s%04d", i)
		svcs[name] = &model.Service{Name: name, Type: "process", Attrs: map[string]any{"pkg": paths[i%files]}}
		d[name] = []model.Mapping{{Target: "t1"}}
	}
	infra := model.Infrastructure{"t1": &model.Target{Name: "t1", Properties: map[string]any{"agentURL": "http://127.0.0.1:1"}, Extra: map[string]any{}}}
	return paths, svcs, infra, d
}

// TestDigestsOncePerDistinctFile: 1000 services sharing 4 files cost 4
// hashes over any number of builds; a file changed in place (same size)
// or replaced by a rename is hashed again, and only that one.
func TestDigestsOncePerDistinctFile(t *testing.T) {
	paths, svcs, infra, d := sharedArtifacts(t, 4, 1000, 4096)
	dc := deployer.NewDigestCache()
	build := func() *model.Manifest {
		t.Helper()
		man, err := deployer.BuildManifest(svcs, infra, d, deployer.BuildOptions{Digests: dc})
		if err != nil {
			t.Fatal(err)
		}
		return man
	}
	artifactOf := func(man *model.Manifest, svc string) string {
		for _, ms := range man.Services {
			if ms.Name == svc {
				return ms.Artifact
			}
		}
		t.Fatalf("no service %s in the manifest", svc)
		return ""
	}
	first := build()
	if got := dc.Computed(); got != 4 {
		t.Fatalf("first build hashed %d times, want 4 (one per distinct file)", got)
	}
	build()
	if got := dc.Computed(); got != 4 {
		t.Fatalf("after an unchanged rebuild: %d hashes, want still 4", got)
	}

	tests := []struct {
		name   string
		change func(string) error
	}{
		{"rewritten in place, same size", func(p string) error {
			f, err := os.OpenFile(p, os.O_WRONLY, 0)
			if err != nil {
				return err
			}
			defer f.Close()
			_, err = f.WriteAt([]byte{0xff, 0xfe}, 10)
			return err
		}},
		{"replaced by a rename", func(p string) error {
			b := make([]byte, 4096)
			b[100] = 0x42
			tmp := p + ".new"
			if err := os.WriteFile(tmp, b, 0o755); err != nil {
				return err
			}
			return os.Rename(tmp, p)
		}},
	}
	prev := first
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			before := dc.Computed()
			if err := tc.change(paths[1]); err != nil {
				t.Fatal(err)
			}
			man := build()
			if got := dc.Computed() - before; got != 1 {
				t.Fatalf("%d hashes after one file changed, want 1", got)
			}
			if artifactOf(man, "s0001") == artifactOf(prev, "s0001") {
				t.Fatal("the changed file kept its old digest")
			}
			if artifactOf(man, "s0000") != artifactOf(first, "s0000") {
				t.Fatal("an unchanged file's digest changed")
			}
			prev = man
		})
	}
}

// BenchmarkBuildManifest1000x4 measures the per-deploy preparation of 1000
// services sharing 4 binaries of 9.5 MB: "cached" is every redeploy after
// the first (no file changed), "uncached" hashes each distinct file once
// per build (a first deploy). Before the cache every build hashed each
// service's file: 250 times the uncached figure here.
func BenchmarkBuildManifest1000x4(b *testing.B) {
	_, svcs, infra, d := sharedArtifacts(b, 4, 1000, 9_500_000)
	b.Run("cached", func(b *testing.B) {
		dc := deployer.NewDigestCache()
		for i := 0; i < b.N; i++ {
			if _, err := deployer.BuildManifest(svcs, infra, d, deployer.BuildOptions{Digests: dc}); err != nil {
				b.Fatal(err)
			}
		}
	})
	b.Run("uncached", func(b *testing.B) {
		for i := 0; i < b.N; i++ {
			if _, err := deployer.BuildManifest(svcs, infra, d, deployer.BuildOptions{Digests: deployer.NewDigestCache()}); err != nil {
				b.Fatal(err)
			}
		}
	})
}

// TestUploadOncePerTargetAndDigest: services sharing an artifact on one
// target need a single upload there; every activation waits for it.
func TestUploadOncePerTargetAndDigest(t *testing.T) {
	_, svcs, infra, d := sharedArtifacts(t, 4, 100, 64)
	infra["t2"] = &model.Target{Name: "t2", Properties: map[string]any{"agentURL": "http://127.0.0.1:2"}, Extra: map[string]any{}}
	for i, name := range d.Names() {
		if (i/4)%2 == 1 { // every artifact on both targets
			d[name] = []model.Mapping{{Target: "t2"}}
		}
	}
	man, err := deployer.BuildManifest(svcs, infra, d, deployer.BuildOptions{})
	if err != nil {
		t.Fatal(err)
	}
	plan, err := deployer.PlanTransition(nil, man, deployer.PlanOptions{})
	if err != nil {
		t.Fatal(err)
	}
	uploads := map[[2]string]int{} // (target, digest) → upload step ID
	for _, s := range plan.Steps {
		if s.Kind != deployer.StepUpload {
			continue
		}
		k := [2]string{s.Target, s.Artifact}
		if uploads[k] != 0 {
			t.Errorf("artifact %s uploaded to %s twice (steps %d and %d)", s.Artifact, s.Target, uploads[k], s.ID)
		}
		uploads[k] = s.ID
	}
	if len(uploads) != 8 {
		t.Errorf("%d uploads, want 8 (4 artifacts on 2 targets)", len(uploads))
	}
	for _, s := range plan.Steps {
		if s.Kind != deployer.StepActivate {
			continue
		}
		up := uploads[[2]string{s.Target, man.Services[s.Key].Artifact}]
		if !slices.Contains(s.Deps, up) {
			t.Errorf("step %d (%s on %s) does not wait for its upload (step %d)", s.ID, s.Service, s.Target, up)
		}
	}
}

// BenchmarkRedeployPrep1000x4 measures everything a redeploy does before
// its first step, on 1000 services sharing 4 binaries of 9.5 MB over 100
// targets, when one target is lost: build the new manifest (digests
// cached) and plan the transition from the previous one (10 services
// move, their state restored from the store).
func BenchmarkRedeployPrep1000x4(b *testing.B) {
	_, svcs, infra, d := sharedArtifacts(b, 4, 1000, 9_500_000)
	for i := 0; i < 100; i++ {
		name := fmt.Sprintf("t%03d", i)
		infra[name] = &model.Target{Name: name, Properties: map[string]any{"agentURL": "http://" + name + ":7420"}, Extra: map[string]any{}}
	}
	delete(infra, "t1")
	for i, name := range d.Names() {
		d[name] = []model.Mapping{{Target: fmt.Sprintf("t%03d", i%100)}}
		svcs[name].Attrs["deployState"] = i%10 == 0
	}
	dc := deployer.NewDigestCache()
	old, err := deployer.BuildManifest(svcs, infra, d, deployer.BuildOptions{Digests: dc})
	if err != nil {
		b.Fatal(err)
	}
	// t000 is lost: its services go to t001.
	next := d.Clone()
	for _, name := range next.Names() {
		if next[name][0].Target == "t000" {
			next[name] = []model.Mapping{{Target: "t001"}}
		}
	}
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		man, err := deployer.BuildManifest(svcs, infra, next, deployer.BuildOptions{Digests: dc})
		if err != nil {
			b.Fatal(err)
		}
		plan, err := deployer.PlanTransition(old, man, deployer.PlanOptions{Unreachable: map[string]bool{"t000": true}})
		if err != nil {
			b.Fatal(err)
		}
		if len(plan.Steps) == 0 {
			b.Fatal("empty plan")
		}
	}
}
