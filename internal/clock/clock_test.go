package clock

import (
	"testing"
	"time"
)

var t0 = time.Date(2026, 11, 23, 12, 0, 0, 0, time.UTC)

func TestFake(t *testing.T) {
	t.Parallel()
	c := NewFake(t0)
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

func TestFakeReset(t *testing.T) {
	t.Parallel()
	c := NewFake(t0)
	tm := c.NewTimer(time.Second)
	c.Advance(time.Second) // fired, not read
	tm.Reset(2 * time.Second)
	if len(tm.C()) != 0 {
		t.Fatal("Reset must drop an unread firing")
	}
	c.Advance(time.Second)
	if len(tm.C()) != 0 || c.Pending() != 1 {
		t.Fatalf("fired early (pending %d)", c.Pending())
	}
	c.Advance(time.Second)
	if at := <-tm.C(); !at.Equal(t0.Add(3 * time.Second)) {
		t.Fatalf("fired with %v", at)
	}
	tm.Reset(time.Second)
	tm.Reset(3 * time.Second) // re-arming an armed timer moves it
	c.Advance(2 * time.Second)
	if len(tm.C()) != 0 || c.Pending() != 1 {
		t.Fatal("the first Reset still fired")
	}
}

func TestReal(t *testing.T) {
	t.Parallel()
	c := OrReal(nil)
	tm := c.NewTimer(time.Millisecond)
	<-tm.C()
	tm.Reset(time.Millisecond)
	<-tm.C()
	if c.Now().IsZero() {
		t.Fatal("zero time")
	}
}
