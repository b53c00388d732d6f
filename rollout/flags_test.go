package rollout_test

import (
	"strings"
	"testing"

	"github.com/spf13/pflag"

	"github.com/dydisnix/dydisnix/rollout"
)

// TestConfigCheck: the flags both commands check alike are refused out of
// range, each error naming its flag; the defaults pass.
func TestConfigCheck(t *testing.T) {
	t.Parallel()
	tests := []struct {
		args []string
		want string // in the error; "" for none
	}{
		{nil, ""},
		{[]string{"-m", "0", "--max-uploads", "0", "--max-per-target", "1"}, ""},
		{[]string{"-m", "-1"}, "-m: expected"},
		{[]string{"--max-per-target", "0"}, "--max-per-target: expected"},
		{[]string{"--max-uploads", "-1"}, "--max-uploads: expected"},
		{[]string{"--ids", "ids.nix"}, "--id-resources and --ids go together"},
	}
	for _, tc := range tests {
		t.Run(strings.Join(tc.args, " "), func(t *testing.T) {
			t.Parallel()
			var c rollout.Config
			fs := pflag.NewFlagSet("test", pflag.ContinueOnError)
			c.AddFlags(fs, true)
			if err := fs.Parse(tc.args); err != nil {
				t.Fatal(err)
			}
			err := c.Check()
			switch {
			case tc.want == "" && err != nil:
				t.Errorf("Check() = %v, want nil", err)
			case tc.want != "" && (err == nil || !strings.Contains(err.Error(), tc.want)):
				t.Errorf("Check() = %v, want an error with %q", err, tc.want)
			}
		})
	}
}
