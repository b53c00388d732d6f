package agent

import (
	"archive/tar"
	"bytes"
	"compress/gzip"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/dydisnix/dydisnix/deployer/agentapi"
	"github.com/dydisnix/dydisnix/internal/testenv"
	"github.com/dydisnix/dydisnix/model"
)

func newAgentWith(t *testing.T, cfg Config) (*Agent, *agentapi.Client) {
	t.Helper()
	cfg.StateDir, cfg.Token = t.TempDir(), []byte("tok")
	a, err := New(cfg)
	if err != nil {
		t.Fatal(err)
	}
	srv := httptest.NewServer(a.Handler())
	t.Cleanup(func() { srv.Close(); a.Close(true) })
	return a, agentapi.NewClient(srv.URL, "tok", nil)
}

// uploadComponent uploads dir as a directory artifact and returns its digest.
func uploadComponent(t *testing.T, c *agentapi.Client, dir string) string {
	t.Helper()
	var buf bytes.Buffer
	if err := agentapi.WriteTarball(&buf, dir, gzip.BestSpeed); err != nil {
		t.Fatal(err)
	}
	sum := sha256.Sum256(buf.Bytes())
	digest := "sha256:" + hex.EncodeToString(sum[:])
	file := filepath.Join(t.TempDir(), "component.tar.gz")
	os.WriteFile(file, buf.Bytes(), 0o600)
	if _, err := c.UploadArtifact(context.Background(), digest, file); err != nil {
		t.Fatal(err)
	}
	return digest
}

// TestFilesetStateMovesBetweenAgents moves the state of a fileset
// component from one agent to another (snapshot, download, upload,
// restore), with a third-party module script (testdata/dysnomia, found on
// DYSNOMIA_MODULES_PATH) and with the built-in module.
func TestFilesetStateMovesBetweenAgents(t *testing.T) {
	t.Parallel()
	modules, err := filepath.Abs("testdata/dysnomia")
	if err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct{ name, modulesPath string }{{"third-party script", modules}, {"built-in", "/nonexistent"}} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			ctx := context.Background()
			comp := t.TempDir()
			os.MkdirAll(filepath.Join(comp, "bin"), 0o755)
			os.WriteFile(filepath.Join(comp, "bin", "show"), []byte("#!/bin/sh\n"), 0o755)
			os.WriteFile(filepath.Join(comp, ".dysnomia-fileset"), []byte("symlink bin\nmkdir uploads\n"), 0o644)
			a1, c1 := newAgentWith(t, Config{ModulesPath: tc.modulesPath})
			a2, c2 := newAgentWith(t, Config{ModulesPath: tc.modulesPath})
			dig1, dig2 := uploadComponent(t, c1, comp), uploadComponent(t, c2, comp)
			if dig1 != dig2 {
				t.Fatal("the same directory has two digests")
			}
			req := func(target string) agentapi.ActivateRequest {
				return agentapi.ActivateRequest{Key: "k-" + target, Target: target, Container: "fileset",
					Service:             model.ManifestService{Name: "files", Type: "fileset", Artifact: dig1, ArtifactDir: true, DeployState: true},
					ContainerProperties: map[string]string{"targetDir": filepath.Join(t.TempDir(), "www")}}
			}
			r1, r2 := req("t1"), req("t2")
			if err := c1.Activate(ctx, r1); err != nil {
				t.Fatal(err)
			}
			www1 := r1.ContainerProperties["targetDir"]
			if fi, err := os.Lstat(filepath.Join(www1, "bin")); err != nil || fi.Mode()&os.ModeSymlink == 0 {
				t.Fatalf("activate did not link bin: %v", err)
			}
			os.WriteFile(filepath.Join(www1, "uploads", "photo.jpg"), []byte("pixels"), 0o644)
			if err := c1.Deactivate(ctx, r1.Key); err != nil {
				t.Fatal(err)
			}
			// The snapshot is taken after deactivation: the agent knows the mapping.
			info, err := c1.Snapshot(ctx, "files")
			if err != nil {
				t.Fatal(err)
			}
			st := a1.dysnomiaStore()
			all, err := st.QueryAll("fileset", "files", true)
			if err != nil || len(all) != 1 {
				t.Fatalf("the module's store on t1: %v %v", all, err)
			}
			if _, err := os.Stat(filepath.Join(st.Dir, "generations", "fileset", "files", "1")); err != nil {
				t.Fatalf("no generation link in the store layout: %v", err)
			}
			var snap bytes.Buffer
			if err := c1.FetchSnapshot(ctx, "files", info.Digest, &snap); err != nil {
				t.Fatal(err)
			}
			if err := c2.PutSnapshot(ctx, "files", info.Digest, bytes.NewReader(snap.Bytes())); err != nil {
				t.Fatal(err)
			}
			if err := c2.RestoreMapping(ctx, agentapi.RestoreRequest{Service: "files", Digest: info.Digest, Mapping: &r2}); err != nil {
				t.Fatal(err)
			}
			www2 := r2.ContainerProperties["targetDir"]
			if b, err := os.ReadFile(filepath.Join(www2, "uploads", "photo.jpg")); err != nil || string(b) != "pixels" {
				t.Fatalf("restored file on t2: %q %v", b, err)
			}
			if err := c2.Activate(ctx, r2); err != nil {
				t.Fatal(err)
			}
			if latest, _ := a2.dysnomiaStore().QueryLatest("", "", true); len(latest) != 1 || latest[0] != all[0] {
				t.Fatalf("t2's store holds %v, want %v", latest, all)
			}
			// The old copy is garbage on t1: collected with --delete-state.
			if err := c1.DeleteState(ctx, "files"); err != nil {
				t.Fatal(err)
			}
			if _, err := os.Stat(filepath.Join(www1, "uploads")); !os.IsNotExist(err) {
				t.Fatalf("collect-garbage left the old mutable directory: %v", err)
			}
			// Nothing uses the component on t1 any more: garbage collection removes it.
			if res, err := c1.CollectGarbage(ctx, agentapi.GCRequest{}); err != nil || res.Artifacts != 2 {
				t.Fatalf("collect garbage on t1: %+v %v, want the artifact and its unpacked component removed", res, err)
			}
			if ents, _ := os.ReadDir(a1.path("components")); len(ents) != 0 {
				t.Fatalf("components left on t1: %v", ents)
			}

			// A snapshot whose payload fails its checksum is never restored.
			bad := tamperedSnapshot(t, snap.Bytes())
			sum := sha256.Sum256(bad)
			bd := "sha256:" + hex.EncodeToString(sum[:])
			if err := c2.PutSnapshot(ctx, "files", bd, bytes.NewReader(bad)); err != nil {
				t.Fatal(err)
			}
			os.WriteFile(filepath.Join(www2, "uploads", "new.txt"), []byte("kept"), 0o644)
			err = c2.RestoreMapping(ctx, agentapi.RestoreRequest{Service: "files", Digest: bd, Mapping: &r2})
			if code(err) != 422 || !strings.Contains(err.Error(), "fails its checksum") {
				t.Fatalf("restore of a tampered snapshot: %v, want 422 naming the checksum", err)
			}
			if _, err := os.Stat(filepath.Join(www2, "uploads", "new.txt")); err != nil {
				t.Fatal("a refused restore touched the state")
			}
		})
	}
}

// tamperedSnapshot rewrites a packed module snapshot with one byte of its
// payload changed (the checksum entry kept).
func tamperedSnapshot(t *testing.T, b []byte) []byte {
	t.Helper()
	gz, err := gzip.NewReader(bytes.NewReader(b))
	if err != nil {
		t.Fatal(err)
	}
	tr := tar.NewReader(gz)
	var out bytes.Buffer
	gw := gzip.NewWriter(&out)
	tw := tar.NewWriter(gw)
	for {
		hdr, err := tr.Next()
		if err != nil {
			break
		}
		var data bytes.Buffer
		data.ReadFrom(tr)
		body := data.Bytes()
		if hdr.Typeflag == tar.TypeReg && hdr.Name != "checksum" && len(body) > 0 {
			body[len(body)-1] ^= 0xff
		}
		tw.WriteHeader(hdr)
		tw.Write(body)
	}
	tw.Close()
	gw.Close()
	return out.Bytes()
}

// TestModuleRefusesLock: a module whose lock operation fails refuses the
// agent's lock (the transition does not start); the unlock operation runs
// when the lock is released.
func TestModuleRefusesLock(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	calls := filepath.Join(dir, "calls")
	mod := filepath.Join(dir, "busy")
	testenv.WriteExecutable(t, mod, "#!/bin/sh\necho $1 >> "+calls+"\nif [ \"$1\" = lock ] && [ -e "+filepath.Join(dir, "busy-now")+" ]; then echo 'a backup is running' >&2; exit 1; fi\n")
	_, c := newAgentWith(t, Config{})
	ctx := context.Background()
	req := agentapi.ActivateRequest{Key: "k", Container: "c", Service: model.ManifestService{Name: "svc", Type: mod}}
	if err := c.Activate(ctx, req); err != nil {
		t.Fatal(err)
	}
	if err := c.Lock(ctx, "coord"); err != nil {
		t.Fatal(err)
	}
	if err := c.Unlock(ctx, "coord"); err != nil {
		t.Fatal(err)
	}
	os.WriteFile(filepath.Join(dir, "busy-now"), nil, 0o600)
	err := c.Lock(ctx, "coord")
	if err == nil || !strings.Contains(err.Error(), "lock refused") || !strings.Contains(err.Error(), "a backup is running") || !strings.Contains(err.Error(), "lock of svc") {
		t.Fatalf("lock with a refusing module: %v", err)
	}
	if h, _ := c.Health(ctx); h.Locked {
		t.Error("the agent stayed locked after the refusal")
	}
	b, _ := os.ReadFile(calls)
	if got := strings.Fields(string(b)); strings.Join(got, " ") != "activate lock unlock lock" {
		t.Errorf("module calls %v", got)
	}
}
