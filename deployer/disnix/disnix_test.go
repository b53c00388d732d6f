package disnix

import (
	"bytes"
	"context"
	"errors"
	"github.com/dydisnix/dydisnix/internal/testenv"
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"testing"
	"time"

	"github.com/dydisnix/dydisnix/model"
)

// fakeDisnix installs the FAKE Disnix tools (testdata/fake-disnix.sh) into a
// temporary bin directory and returns it with the directory they record into.
func fakeDisnix(t *testing.T) (bin, rec string) {
	t.Helper()
	script, err := os.ReadFile(filepath.Join("testdata", "fake-disnix.sh"))
	if err != nil {
		t.Fatal(err)
	}
	bin, rec = t.TempDir(), t.TempDir()
	for _, tool := range []string{ToolEnv, ToolSnapshot, ToolReconstruct, ToolDeleteState, ToolCleanSnapshots} {
		testenv.WriteExecutable(t, filepath.Join(bin, tool), string(script))
	}
	return bin, rec
}

// recorded reads what a fake tool recorded: its arguments and its Disnix
// environment variables.
func recorded(t *testing.T, rec, tool string) (args []string, env map[string]string) {
	t.Helper()
	data, err := os.ReadFile(filepath.Join(rec, tool+".log"))
	if err != nil {
		t.Fatalf("%s was not run: %v", tool, err)
	}
	env = map[string]string{}
	for _, line := range strings.Split(strings.TrimSuffix(string(data), "\n"), "\n") {
		switch {
		case strings.HasPrefix(line, "arg="):
			args = append(args, strings.TrimPrefix(line, "arg="))
		case strings.HasPrefix(line, "env="):
			k, v, _ := strings.Cut(strings.TrimPrefix(line, "env="), "=")
			env[k] = v
		}
	}
	return args, env
}

func writeServices(t *testing.T) string {
	t.Helper()
	f := filepath.Join(t.TempDir(), "services.nix")
	if err := os.WriteFile(f, []byte("{system, pkgs, distribution, invDistribution}: {}\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	return f
}

func TestFakeDisnixEnvForwardsOptions(t *testing.T) {
	t.Parallel()
	bin, rec := fakeDisnix(t)
	svc := writeServices(t)
	work := t.TempDir()
	infra := mustInfra(t, testInfra)
	dist := mustDist(t, `{"svcA": ["test1"], "db": [{"target": "test-2", "container": "mysql-database"}]}`)
	cases := []struct {
		name     string
		opts     Options
		wantArgs []string
		wantEnv  map[string]string
	}{
		{
			name:     "defaults",
			wantArgs: []string{"-s", svc, "-i", filepath.Join(work, "defaults", InfrastructureFile), "-d", filepath.Join(work, "defaults", DistributionFile)},
			wantEnv:  map[string]string{},
		},
		{
			name: "all",
			opts: Options{
				Profile: "prof", CoordinatorProfilePath: "/coord", MaxConcurrentTransfers: 4, Keep: 3,
				DeployState: true, NoMigration: true, DeleteState: true, DepthFirst: true, BuildOnTargets: true,
				NoUpgrade: true, NoLock: true, ShowTrace: true, ExtraParams: "{ a = 1; }", Packages: "/p/packages.nix",
				ClientInterface: "disnix-soap-client", TargetProperty: "targetEPR",
			},
			wantArgs: []string{"-s", svc, "-i", filepath.Join(work, "all", InfrastructureFile), "-d", filepath.Join(work, "all", DistributionFile),
				"-P", "/p/packages.nix", "--profile", "prof", "--coordinator-profile-path", "/coord",
				"--max-concurrent-transfers", "4", "--deploy-state", "--no-migration", "--delete-state", "--depth-first",
				"--keep", "3", "--build-on-targets", "--no-upgrade", "--no-lock",
				"--interface", "disnix-soap-client", "--target-property", "targetEPR",
				"--extra-params", "{ a = 1; }", "--show-trace"},
			wantEnv: map[string]string{
				"DISNIX_CLIENT_INTERFACE": "disnix-soap-client", "DISNIX_TARGET_PROPERTY": "targetEPR",
				"DISNIX_PROFILE": "prof", "DISNIX_DEPLOY_STATE": "1", "DISNIX_DELETE_STATE": "1",
			},
		},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			// Not parallel: the cases share the fake's record directory.
			var log bytes.Buffer
			b := &Backend{Options: tc.opts, Bin: bin, WorkDir: filepath.Join(work, tc.name), Log: &log,
				Env: []string{"FAKE_DISNIX_DIR=" + rec, "FAKE_DISNIX_EVAL=1"}}
			if err := b.Deploy(context.Background(), svc, infra, dist); err != nil {
				t.Fatal(err)
			}
			args, env := recorded(t, rec, ToolEnv)
			if !reflect.DeepEqual(args, tc.wantArgs) {
				t.Errorf("disnix-env args\n got %q\nwant %q", args, tc.wantArgs)
			}
			if !reflect.DeepEqual(env, tc.wantEnv) {
				t.Errorf("disnix-env env\n got %v\nwant %v", env, tc.wantEnv)
			}
			// The fake evaluated the written distribution against the written infrastructure.
			ev, err := os.ReadFile(filepath.Join(rec, ToolEnv+".eval"))
			if err != nil {
				t.Fatal(err)
			}
			if got := strings.TrimSpace(string(ev)); got != `["db","svcA"]` {
				t.Errorf("evaluated distribution services = %s", got)
			}
			if !strings.Contains(log.String(), "[coordinator]: disnix-env finished") {
				t.Errorf("progress not forwarded to Log: %q", log.String())
			}
			// The written files are the golden-tested ones and stay in WorkDir.
			want, _ := InfrastructureNix(infra)
			got, err := os.ReadFile(filepath.Join(work, tc.name, InfrastructureFile))
			if err != nil || !bytes.Equal(got, want) {
				t.Errorf("infrastructure file not kept in WorkDir: %v", err)
			}
			if got := b.DeployCommand(svc); !reflect.DeepEqual(got, append([]string{ToolEnv}, tc.wantArgs...)) {
				t.Errorf("DeployCommand = %q", got)
			}
		})
	}
}

func TestFakeDisnixEnvFailureSurfacesStderr(t *testing.T) {
	t.Parallel()
	bin, rec := fakeDisnix(t)
	b := &Backend{Bin: bin, Env: []string{"FAKE_DISNIX_DIR=" + rec, "FAKE_DISNIX_FAIL=cannot connect to target test1"}}
	err := b.Deploy(context.Background(), writeServices(t), mustInfra(t, testInfra), mustDist(t, `{"svcA": ["test1"]}`))
	var ce *CommandError
	if !errors.As(err, &ce) {
		t.Fatalf("error %v is not a *CommandError", err)
	}
	if ce.Tool != ToolEnv || ce.ExitCode() != 3 {
		t.Errorf("tool %q exit %d, want disnix-env exit 3", ce.Tool, ce.ExitCode())
	}
	if !strings.Contains(err.Error(), "cannot connect to target test1") {
		t.Errorf("error does not carry stderr: %v", err)
	}
}

func TestFakeDisnixEnvTempFilesRemoved(t *testing.T) {
	t.Parallel()
	bin, rec := fakeDisnix(t)
	b := &Backend{Bin: bin, Env: []string{"FAKE_DISNIX_DIR=" + rec}}
	if err := b.Deploy(context.Background(), writeServices(t), mustInfra(t, testInfra), mustDist(t, `{"svcA": ["test1"]}`)); err != nil {
		t.Fatal(err)
	}
	args, _ := recorded(t, rec, ToolEnv)
	if _, err := os.Stat(filepath.Dir(args[3])); !os.IsNotExist(err) {
		t.Errorf("temporary work directory %s left behind (err %v)", filepath.Dir(args[3]), err)
	}
	// The fake kept a copy: it is the infrastructure the backend wrote.
	got, err := os.ReadFile(filepath.Join(rec, ToolEnv+"-"+InfrastructureFile))
	if err != nil {
		t.Fatal(err)
	}
	want, _ := InfrastructureNix(mustInfra(t, testInfra))
	if !bytes.Equal(got, want) {
		t.Error("disnix-env was given a different infrastructure")
	}
}

func TestFakeDisnixEnvCancelSendsInterrupt(t *testing.T) {
	t.Parallel()
	bin, rec := fakeDisnix(t)
	b := &Backend{Bin: bin, StopGrace: 10 * time.Second, Env: []string{"FAKE_DISNIX_DIR=" + rec, "FAKE_DISNIX_BLOCK=1"}}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() {
		done <- b.Deploy(ctx, writeServices(t), mustInfra(t, testInfra), mustDist(t, `{"svcA": ["test1"]}`))
	}()
	// Wait until the fake is running (it writes its ready file), then cancel.
	deadline := time.Now().Add(time.Minute) // only keeps a broken fake from hanging the test
	for {
		if _, err := os.Stat(filepath.Join(rec, ToolEnv+".ready")); err == nil {
			break
		}
		if time.Now().After(deadline) {
			t.Fatal("fake disnix-env did not start")
		}
		time.Sleep(10 * time.Millisecond)
	}
	cancel()
	err := <-done
	if !errors.Is(err, context.Canceled) {
		t.Errorf("error %v does not wrap context.Canceled", err)
	}
	if _, serr := os.Stat(filepath.Join(rec, ToolEnv+".signal")); serr != nil {
		t.Errorf("disnix-env did not get SIGINT (so it could roll back and unlock): %v", serr)
	}
}

func TestFakeDisnixOtherTools(t *testing.T) {
	t.Parallel()
	infra := mustInfra(t, testInfra)
	opts := Options{Profile: "prof", CoordinatorProfilePath: "/coord", MaxConcurrentTransfers: 5, Keep: 2, DepthFirst: true,
		ShowTrace: true, ClientInterface: "disnix-ssh-client", TargetProperty: "sshTarget"}
	cases := []struct {
		name string
		tool string
		run  func(ctx context.Context, b *Backend) error
		want func(work string) []string
	}{
		{"snapshot", ToolSnapshot,
			func(ctx context.Context, b *Backend) error {
				return b.Snapshot(ctx, SnapshotOptions{Container: "mysql-database", Component: "db", All: true})
			},
			func(string) []string {
				return []string{"--profile", "prof", "--coordinator-profile-path", "/coord", "--max-concurrent-transfers", "5",
					"--depth-first", "--keep", "2", "--all", "--container", "mysql-database", "--component", "db"}
			}},
		{"snapshot-manifest", ToolSnapshot,
			func(ctx context.Context, b *Backend) error {
				return b.Snapshot(ctx, SnapshotOptions{TransferOnly: true, Manifest: "/m/manifest.xml"})
			},
			func(string) []string {
				return []string{"--profile", "prof", "--coordinator-profile-path", "/coord", "--max-concurrent-transfers", "5",
					"--depth-first", "--keep", "2", "--transfer-only", "/m/manifest.xml"}
			}},
		{"reconstruct", ToolReconstruct,
			func(ctx context.Context, b *Backend) error { return b.Reconstruct(ctx, infra) },
			func(work string) []string {
				return []string{"--profile", "prof", "--coordinator-profile-path", "/coord", "--max-concurrent-transfers", "5",
					"--show-trace", filepath.Join(work, InfrastructureFile)}
			}},
		{"delete-state", ToolDeleteState,
			func(ctx context.Context, b *Backend) error { return b.DeleteObsoleteState(ctx, "/m/old.xml") },
			func(string) []string {
				return []string{"--profile", "prof", "--coordinator-profile-path", "/coord", "--max-concurrent-transfers", "5", "/m/old.xml"}
			}},
		{"clean-snapshots", ToolCleanSnapshots,
			func(ctx context.Context, b *Backend) error { return b.CleanSnapshots(ctx, infra, 0, "process", "") },
			func(work string) []string {
				return []string{"--keep", "0", "--container", "process", filepath.Join(work, InfrastructureFile)}
			}},
		{"undeploy", ToolEnv,
			func(ctx context.Context, b *Backend) error { return b.Undeploy(ctx, infra) },
			func(work string) []string {
				return []string{"--undeploy", "-i", filepath.Join(work, InfrastructureFile), "--profile", "prof",
					"--coordinator-profile-path", "/coord", "--max-concurrent-transfers", "5", "--depth-first", "--keep", "2", "--show-trace"}
			}},
		{"rollback", ToolEnv,
			func(ctx context.Context, b *Backend) error { return b.Rollback(ctx) },
			func(string) []string {
				return []string{"--rollback", "--profile", "prof", "--coordinator-profile-path", "/coord",
					"--max-concurrent-transfers", "5", "--depth-first", "--keep", "2"}
			}},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			bin, rec := fakeDisnix(t)
			work := t.TempDir()
			b := &Backend{Options: opts, Bin: bin, WorkDir: work, Env: []string{"FAKE_DISNIX_DIR=" + rec}}
			if err := tc.run(context.Background(), b); err != nil {
				t.Fatal(err)
			}
			args, env := recorded(t, rec, tc.tool)
			if want := tc.want(work); !reflect.DeepEqual(args, want) {
				t.Errorf("%s args\n got %q\nwant %q", tc.tool, args, want)
			}
			if env["DISNIX_CLIENT_INTERFACE"] != "disnix-ssh-client" || env["DISNIX_TARGET_PROPERTY"] != "sshTarget" || env["DISNIX_PROFILE"] != "prof" {
				t.Errorf("%s env %v lacks the client interface, target property or profile", tc.tool, env)
			}
		})
	}
}

func TestDisnixUsageErrors(t *testing.T) {
	t.Parallel()
	infra := mustInfra(t, testInfra)
	dist := mustDist(t, `{"svcA": ["test1"]}`)
	dir := t.TempDir()
	jsonSvc := filepath.Join(dir, "services.json")
	os.WriteFile(jsonSvc, []byte("{}"), 0o644)
	cases := []struct {
		name, services, bin, want string
		dist                      model.Distribution
	}{
		{"json services", jsonSvc, dir, "needs a Nix services model", dist},
		{"missing services", filepath.Join(dir, "nope.nix"), dir, "nope.nix", dist},
		{"no disnix", writeServices(t), dir, "disnix-env", dist},
		{"bad distribution", writeServices(t), dir, "not in the infrastructure", model.Distribution{"x": {{Target: "ghost"}}}},
	}
	for _, tc := range cases {
		b := &Backend{Bin: tc.bin}
		err := b.Deploy(context.Background(), tc.services, infra, tc.dist)
		if err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("%s: error %v, want one mentioning %q", tc.name, err, tc.want)
		}
	}
	if err := (&Backend{}).CleanSnapshots(context.Background(), infra, -1, "", ""); err == nil {
		t.Error("negative keep accepted")
	}
}
