package agent

import (
	"context"
	"strings"
	"testing"

	"github.com/dydisnix/dydisnix/deployer/agentapi"
	"github.com/dydisnix/dydisnix/model"
)

// TestHostedServiceBadProvider: an activation whose container provider
// reference is malformed (a module path leaving the component, a bad
// digest) or names a provider whose component is not on the agent fails
// with an error naming it, and runs nothing.
func TestHostedServiceBadProvider(t *testing.T) {
	t.Parallel()
	_, c := newAgentWith(t, Config{})
	digest := "sha256:" + strings.Repeat("ab", 32)
	for _, tc := range []struct {
		name string
		p    model.ContainerProvider
		want []string
	}{
		{"module leaves the component", model.ContainerProvider{Service: "store", Container: "kv", Artifact: digest, Module: "../../../bin/sh"}, []string{"400", "relative module path"}},
		{"bad digest", model.ContainerProvider{Service: "store", Container: "kv", Artifact: "md5:x", Module: "libexec/dysnomia/kv"}, []string{"400", "sha256"}},
		{"provider not activated", model.ContainerProvider{Service: "store", Container: "kv", Artifact: digest, Module: "libexec/dysnomia/kv"}, []string{"422", "container kv", "provider store", "not on this target"}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			p := tc.p
			err := c.Activate(context.Background(), agentapi.ActivateRequest{Key: "k-app", Target: "t1", Container: "kv",
				Service: model.ManifestService{Name: "app", Type: "/provider/libexec/dysnomia/kv", Provider: &p}})
			if err == nil {
				t.Fatal("the activation succeeded")
			}
			for _, w := range tc.want {
				if !strings.Contains(err.Error(), w) {
					t.Errorf("error %q does not say %q", err, w)
				}
			}
		})
	}
}
