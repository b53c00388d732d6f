package main

import "testing"

func TestBetween(t *testing.T) {
	t.Parallel()
	cases := []struct {
		x, a, b      uint64
		open, closed bool
	}{
		{5, 1, 10, true, true},
		{10, 1, 10, false, true},
		{1, 1, 10, false, false},
		{0, 10, 1, true, true}, // wraps
		{11, 10, 1, true, true},
		{5, 10, 1, false, false},
		{1, 10, 1, false, true},
		{3, 7, 7, true, true}, // whole ring but a
		{7, 7, 7, false, true},
	}
	for _, c := range cases {
		if got := between(c.x, c.a, c.b); got != c.open {
			t.Errorf("between(%d, %d, %d) = %v", c.x, c.a, c.b, got)
		}
		if got := betweenRight(c.x, c.a, c.b); got != c.closed {
			t.Errorf("betweenRight(%d, %d, %d) = %v", c.x, c.a, c.b, got)
		}
	}
}

func TestNotifyKeepsClosestPredecessor(t *testing.T) {
	t.Parallel()
	r := NewRing("127.0.0.1:1", "", 0, nil)
	self := r.self.ID
	far := Node{ID: self - 100, Addr: "far"}
	near := Node{ID: self - 1, Addr: "near"}
	r.Notify(far)
	r.Notify(near)
	r.Notify(far)
	r.Notify(r.self)
	if st := r.State(); st.Predecessor == nil || st.Predecessor.Addr != "near" {
		t.Errorf("predecessor %v, want near", st.Predecessor)
	}
}
