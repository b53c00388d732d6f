package deployer

import (
	"crypto/sha256"
	"encoding/hex"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/dydisnix/dydisnix/model"
)

func TestStoreGenerations(t *testing.T) {
	t.Parallel()
	st, err := OpenStore(t.TempDir(), 2)
	if err != nil {
		t.Fatal(err)
	}
	if m, err := st.Latest(); err != nil || m != nil {
		t.Fatalf("empty store: %v %v", m, err)
	}
	m1 := mustBuild(t, model.Services{"a": echoSvc("a", nil, nil, false)}, infraOf("t1"), distOf("a", "t1"))
	if g, err := st.SaveManifest(m1); err != nil || g != 1 {
		t.Fatalf("save: %d %v", g, err)
	}
	if g, _ := st.SaveManifest(m1); g != 1 {
		t.Errorf("identical manifest got generation %d", g)
	}
	m2 := mustBuild(t, model.Services{"a": echoSvc("a", nil, nil, false)}, infraOf("t1", "t2"), distOf("a", "t2"))
	if g, _ := st.SaveManifest(m2); g != 2 {
		t.Errorf("new manifest got generation %d", g)
	}
	latest, _ := st.Latest()
	if latest.Generation != 2 || !latest.Equivalent(m2) {
		t.Error("latest is not generation 2")
	}
	fi, _ := os.Stat(filepath.Join(st.Dir, "manifests", "2.json"))
	if fi.Mode().Perm() != 0o600 {
		t.Errorf("manifest mode %v", fi.Mode().Perm())
	}
	unlock, err := st.Lock()
	if err != nil {
		t.Fatal(err)
	}
	if _, err := st.Lock(); err == nil {
		t.Error("second lock of the state dir succeeded")
	}
	unlock()
}

func TestStoreSnapshotsKeepAndVerify(t *testing.T) {
	t.Parallel()
	st, _ := OpenStore(t.TempDir(), 2)
	var digests []string
	for _, body := range []string{"one", "two", "three"} {
		sum := sha256.Sum256([]byte(body))
		d := "sha256:" + hex.EncodeToString(sum[:])
		digests = append(digests, d)
		if _, err := st.PutSnapshot("db", d, strings.NewReader(body)); err != nil {
			t.Fatal(err)
		}
	}
	gens, _ := st.Snapshots("db")
	if len(gens) != 2 || gens[1].Digest != digests[2] || gens[1].Generation != 3 {
		t.Fatalf("generations = %+v", gens)
	}
	if _, err := os.Stat(st.SnapshotPath("db", digests[0])); !os.IsNotExist(err) {
		t.Error("dropped generation's file kept")
	}
	if _, err := st.PutSnapshot("db", digests[0], strings.NewReader("tampered")); err == nil {
		t.Error("corrupt transfer accepted")
	}
	if _, err := st.PutSnapshot("../x", "", strings.NewReader("x")); err == nil {
		t.Error("bad service name accepted")
	}
	if info, ok, _ := st.LatestSnapshot("db"); !ok || info.Digest != digests[2] {
		t.Errorf("latest = %+v", info)
	}
}

// TestStoreRenew: the newest snapshot, asked for by its digest, is renewed
// (stored now, same generation); an older digest, an unknown service or a
// snapshot whose file is gone is not.
func TestStoreRenew(t *testing.T) {
	t.Parallel()
	st, _ := OpenStore(t.TempDir(), 3)
	var digests []string
	for _, body := range []string{"one", "two"} {
		sum := sha256.Sum256([]byte(body))
		d := "sha256:" + hex.EncodeToString(sum[:])
		digests = append(digests, d)
		if _, err := st.PutSnapshot("db", d, strings.NewReader(body)); err != nil {
			t.Fatal(err)
		}
	}
	old := time.Now().Add(-time.Hour)
	if err := os.Chtimes(st.SnapshotPath("db", digests[1]), old, old); err != nil {
		t.Fatal(err)
	}
	info, ok, err := st.Renew("db", digests[1])
	if err != nil || !ok || info.Generation != 2 || info.Digest != digests[1] {
		t.Fatalf("Renew(newest) = %+v, %v, %v; want generation 2, renewed", info, ok, err)
	}
	if at, _, _ := st.SnapshotTime("db"); !at.After(old.Add(59 * time.Minute)) {
		t.Errorf("renewed snapshot stored at %v, want now", at)
	}
	for _, tc := range []struct{ service, digest string }{{"db", digests[0]}, {"nope", digests[1]}} {
		if _, ok, err := st.Renew(tc.service, tc.digest); ok || err != nil {
			t.Errorf("Renew(%s, %s) = %v, %v; want not renewed, no error", tc.service, tc.digest, ok, err)
		}
	}
	if err := os.WriteFile(st.SnapshotPath("db", digests[1]), []byte("tw"), 0o600); err != nil {
		t.Fatal(err)
	}
	if _, ok, err := st.Renew("db", digests[1]); ok || err != nil {
		t.Errorf("Renew of a file cut short = %v, %v; want not renewed, no error", ok, err)
	}
	os.Remove(st.SnapshotPath("db", digests[1]))
	if _, ok, err := st.Renew("db", digests[1]); ok || err != nil {
		t.Errorf("Renew of a missing file = %v, %v; want not renewed, no error", ok, err)
	}
	if gens, _ := st.Snapshots("db"); len(gens) != 2 {
		t.Errorf("generations after renewals = %+v, want the two stored", gens)
	}
}
