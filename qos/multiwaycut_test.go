package qos

import "testing"

func TestMultiwayCutVectors(t *testing.T) { algRunVectors(t, "multiwaycut") }
