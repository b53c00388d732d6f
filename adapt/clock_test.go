package adapt

import (
	"testing"
	"time"
)

func TestFakeClock(t *testing.T) {
	t.Parallel()
	c := NewFakeClock(t0)
	a := c.NewTimer(2 * time.Second)
	b := c.NewTimer(time.Second)
	stopped := c.NewTimer(time.Second)
	if !stopped.Stop() || stopped.Stop() {
		t.Fatal("Stop must report an active timer once")
	}
	c.Advance(1500 * time.Millisecond)
	select {
	case at := <-b.C():
		if !at.Equal(t0.Add(time.Second)) {
			t.Errorf("fired with %v", at)
		}
	default:
		t.Fatal("due timer did not fire")
	}
	select {
	case <-a.C():
		t.Fatal("timer fired early")
	case <-stopped.C():
		t.Fatal("stopped timer fired")
	default:
	}
	if c.Pending() != 1 || !c.Now().Equal(t0.Add(1500*time.Millisecond)) {
		t.Fatalf("pending %d now %v", c.Pending(), c.Now())
	}
	c.Advance(time.Second)
	<-a.C()
	if z := c.NewTimer(0); len(z.C()) != 1 {
		t.Error("a zero timer must fire at once")
	}
}

func TestRealClock(t *testing.T) {
	t.Parallel()
	var c Clock = RealClock{}
	tm := c.NewTimer(time.Millisecond)
	<-tm.C()
	if c.Now().IsZero() {
		t.Fatal("zero time")
	}
}
