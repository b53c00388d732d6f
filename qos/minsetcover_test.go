package qos

import "testing"

func TestMinSetCoverVectors(t *testing.T) { algRunVectors(t, "minsetcover") }
