package testenv

import (
	"os"
	"testing"
)

func helper() bool { return os.Getenv("DYDISNIX_TESTENV_HELPER") != "" }

func testBinary(t *testing.T) string {
	t.Helper()
	exe, err := os.Executable()
	if err != nil {
		t.Fatal(err)
	}
	return exe
}
