package qos

import "testing"

func TestGraphColVectors(t *testing.T) { algRunVectors(t, "graphcol") }
