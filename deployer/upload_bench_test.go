package deployer_test

import (
	"context"
	"crypto/rand"
	"crypto/sha256"
	"crypto/tls"
	"encoding/hex"
	"net/http/httptest"
	"os"
	"path/filepath"
	"syscall"
	"testing"
	"time"

	"github.com/dydisnix/dydisnix/deployer"
	"github.com/dydisnix/dydisnix/deployer/agent"
	"github.com/dydisnix/dydisnix/deployer/agentapi"
	"github.com/dydisnix/dydisnix/internal/fleettls"
	"github.com/dydisnix/dydisnix/internal/testenv"
	"github.com/dydisnix/dydisnix/model"
)

// BenchmarkUploadArtifact10MB uploads a 10 MB artifact to a real agent
// over TLS with the coordinator's agent client: the first deploy at scale
// sends one per target and distinct package, 300 at N = 100. Client and
// agent share this process: ns/op is the time of one upload (the two ends
// overlap on several cores), cpu-ms/op the CPU of both ends (the process's
// user and system time, with the removal of the stored copy between
// uploads).
func BenchmarkUploadArtifact10MB(b *testing.B) {
	fleet := testenv.NewFleet(b, "machine1")
	args := fleet.AgentArgs("machine1")
	cert, err := tls.LoadX509KeyPair(args[1], args[3])
	if err != nil {
		b.Fatal(err)
	}
	dir := b.TempDir()
	a, err := agent.New(agent.Config{StateDir: dir, Token: []byte(testToken)})
	if err != nil {
		b.Fatal(err)
	}
	defer a.Close(true)
	srv := httptest.NewUnstartedServer(a.Handler())
	srv.TLS = &tls.Config{Certificates: []tls.Certificate{cert}}
	srv.StartTLS()
	defer srv.Close()
	coord := fleet.CoordinatorArgs()
	cfg, err := fleettls.ClientConfig(coord[1], coord[3], coord[5])
	if err != nil {
		b.Fatal(err)
	}
	hc, err := (&deployer.AgentTLS{Config: cfg}).Client(&model.Target{Name: "m1", Properties: map[string]any{"hostname": "machine1"}}, srv.URL)
	if err != nil {
		b.Fatal(err)
	}
	c := agentapi.NewClient(srv.URL, testToken, hc)

	data := make([]byte, 10<<20)
	rand.Read(data)
	sum := sha256.Sum256(data)
	hexd := hex.EncodeToString(sum[:])
	file := filepath.Join(b.TempDir(), "pkg")
	if err := os.WriteFile(file, data, 0o644); err != nil {
		b.Fatal(err)
	}
	stored := filepath.Join(dir, "artifacts", hexd)
	b.SetBytes(int64(len(data)))
	b.ReportAllocs()
	cpu0 := processCPU(b)
	for b.Loop() {
		sent, err := c.UploadArtifact(context.Background(), "sha256:"+hexd, file)
		if err != nil || !sent {
			b.Fatalf("upload: sent %v, %v", sent, err)
		}
		b.StopTimer()
		if err := os.Remove(stored); err != nil {
			b.Fatal(err)
		}
		b.StartTimer()
	}
	b.ReportMetric(float64((processCPU(b)-cpu0).Microseconds())/1000/float64(b.N), "cpu-ms/op")
}

// processCPU is the CPU time (user and system) this process has used.
func processCPU(b *testing.B) time.Duration {
	var ru syscall.Rusage
	if err := syscall.Getrusage(syscall.RUSAGE_SELF, &ru); err != nil {
		b.Fatal(err)
	}
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
}
