package qos

import "fmt"

// leastLoaded is the divideLeastLoaded filter: one target per service, the
// candidate hosting the fewest services of this distribution so far.
// Services with a single candidate (kept in place by preferPrevious, or
// pinned by an earlier step) are counted first; the others are then placed
// in name order, each on its least loaded candidate, ties going to the
// earlier candidate. Services that must move (their machine vanished) thus
// spread over the survivors instead of following one another onto the
// first name, as divideRoundRobin's rotation does when the kept services
// between them pin it.
type leastLoaded struct{}

var leastLoadedSpec = Spec{Name: "divideLeastLoaded", New: noParams(leastLoaded{}), Pure: true,
	Doc: "pick one target per service: the candidate hosting the fewest services so far (single-candidate services counted first)"}

// Apply implements Filter.
func (leastLoaded) Apply(env *Env, in *Candidates) (*Candidates, error) {
	out := in.Derive()
	load := map[int32]int{}
	for i, svc := range in.Services {
		switch list := in.Lists[i]; len(list) {
		case 0:
			return nil, fmt.Errorf("Cannot find a target machine! (service %s has no candidate target)", svc)
		case 1:
			out.Lists[i] = list
			load[list[0].Target]++
		}
	}
	for i, svc := range in.Services {
		list := in.Lists[i]
		if len(list) == 1 {
			continue
		}
		best := 0
		for k, c := range list {
			if load[c.Target] < load[list[best].Target] {
				best = k
			}
		}
		if env.Explains(svc) {
			env.Note(svc, fmt.Sprintf("least loaded candidate: %s, hosting %d service(s) so far", candName(in, list[best]), load[list[best].Target]))
		}
		load[list[best].Target]++
		out.Lists[i] = list[best : best+1 : best+1]
	}
	return out, nil
}
