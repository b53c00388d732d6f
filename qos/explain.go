package qos

import (
	"bufio"
	"fmt"
	"io"
	"slices"
	"sort"
	"strings"

	"github.com/dydisnix/dydisnix/model"
)

// Explanation records, per service, which step removed which target and why,
// what steps remarked, and the final choice. The pipeline fills it when
// Input.Explain is set: filters give reasons with Env.Reject and Env.Note,
// and the pipeline attributes every removal a filter did not explain (it
// diffs each step's input and output lists) and every added target to the
// step.
type Explanation struct {
	// Policy is the policy file ("" for a policy built in Go).
	Policy string `json:"policy,omitempty"`
	// Steps are the policy's steps in order.
	Steps []StepInfo `json:"steps"`
	// Services holds one entry per service of the final distribution (and
	// of the initial one).
	Services map[string]*ServiceExplanation `json:"services"`
	// FailedStep names the step whose error ended the run ("" when the run
	// got to the end): the candidates shown are those before it, and
	// nothing was chosen.
	FailedStep string `json:"failedStep,omitempty"`
	only       map[string]bool
	shared     map[listID][]string // rendered lists shared between services
}

type listID struct {
	p *Cand
	n int
}

// names renders a candidate list, sharing the result between services whose
// lists share a backing array (the cartesian product).
func (e *Explanation) names(c *Candidates, list []Cand) []string {
	if len(list) < 2 {
		return candNames(c, list)
	}
	id := listID{&list[0], len(list)}
	if r, ok := e.shared[id]; ok {
		return r
	}
	r := candNames(c, list)
	if e.shared == nil {
		e.shared = map[listID][]string{}
	}
	e.shared[id] = r
	return r
}

// StepInfo names one step of the explained run.
type StepInfo struct {
	Index  int    `json:"index"` // 1-based
	Label  string `json:"label"` // the step's name, else its filter
	Filter string `json:"filter"`
}

// ServiceExplanation is what happened to one service's candidates.
type ServiceExplanation struct {
	// Initial are the candidates the pipeline started with.
	Initial []string `json:"initial"`
	// Rejections are the removed candidates, in step order.
	Rejections []Rejection `json:"removed,omitempty"`
	// Notes are the steps' remarks (targets added, kept on previous, ...).
	Notes []Note `json:"notes,omitempty"`
	// Final are the candidates left at the end: the service's distribution.
	Final []string `json:"final"`
	// Previous are the service's targets in the previous distribution, when
	// one was given and it had the service.
	Previous []string `json:"previous,omitempty"`
	// Moved is true when Final differs from Previous (a redeployment moves
	// the service).
	Moved bool `json:"moved,omitempty"`
	// EmptiedBy is the label of the step that removed the last candidate,
	// when none is left ("" otherwise, or when the list started empty).
	EmptiedBy string `json:"emptiedBy,omitempty"`
}

// Rejection is one removed candidate.
type Rejection struct {
	StepIndex int    `json:"step"`
	Step      string `json:"label"`
	Target    string `json:"target"`
	Reason    string `json:"reason"`
}

// Note is a step's remark about a service.
type Note struct {
	StepIndex int    `json:"step"`
	Step      string `json:"label"`
	Text      string `json:"text"`
}

func (e *Explanation) svc(service string) *ServiceExplanation {
	if e.Services == nil {
		e.Services = map[string]*ServiceExplanation{}
	}
	s := e.Services[service]
	if s == nil {
		s = &ServiceExplanation{}
		e.Services[service] = s
	}
	return s
}

func (e *Explanation) reject(index int, step, service, target, reason string) {
	s := e.svc(service)
	s.Rejections = append(s.Rejections, Rejection{StepIndex: index, Step: step, Target: target, Reason: model.Redact(reason)})
}

func (e *Explanation) note(index int, step, service, text string) {
	s := e.svc(service)
	s.Notes = append(s.Notes, Note{StepIndex: index, Step: step, Text: model.Redact(text)})
}

// candName renders a candidate for explanations: the target name, or
// "target (container c)" for a record.
func candName(c *Candidates, x Cand) string {
	if x.Container == NoContainer {
		return c.Strings.Name(x.Target)
	}
	return fmt.Sprintf("%s (container %s)", c.Strings.Name(x.Target), c.Strings.Name(x.Container))
}

func candNames(c *Candidates, list []Cand) []string {
	out := make([]string, len(list))
	for i, x := range list {
		out[i] = candName(c, x)
	}
	return out
}

// record fills in what a step did to every service that the filter did not
// explain itself: removals become rejections with a generic reason, targets
// that appear become notes.
func (e *Explanation) record(index int, label, filter string, in, out *Candidates) {
	same := sameServices(in, out)
	for i, svc := range out.Services {
		if e.only != nil && !e.only[svc] {
			continue
		}
		var inList []Cand
		if same {
			inList = in.Lists[i]
		} else if j := in.Index(svc); j >= 0 {
			inList = in.Lists[j]
		}
		outList := out.Lists[i]
		if sameList(inList, outList) {
			continue
		}
		s := e.svc(svc)
		n := 0
		for k := len(s.Rejections) - 1; k >= 0 && s.Rejections[k].StepIndex == index; k-- {
			n++
		}
		if n > 0 && n == len(inList)-len(outList) {
			continue // the filter explained every removal and added nothing
		}
		explained := map[Cand]int{}
		for k := len(s.Rejections) - n; k < len(s.Rejections); k++ {
			if x, ok := lookupCand(out, s.Rejections[k].Target); ok {
				explained[x]++
			}
		}
		// multiset difference in − out, in input order
		left := map[Cand]int{}
		for _, x := range outList {
			left[x]++
		}
		// One reason string for all of the service's unexplained removals
		// (a divide filter removes all but one of a hundred targets), and
		// room for them at once: at 1000 services × 100 targets this is
		// most of what an explanation keeps.
		reason := ""
		if removed := len(inList) - len(outList) - n; removed > 0 {
			s.Rejections = slices.Grow(s.Rejections, removed)
		}
		for _, x := range inList {
			if left[x] > 0 {
				left[x]--
				continue
			}
			if explained[x] > 0 {
				explained[x]--
				continue
			}
			if reason == "" {
				reason = "dropped by " + filter
				if len(outList) > 0 && len(outList) < len(inList) {
					reason = fmt.Sprintf("not selected by %s (kept %s)", filter, strings.Join(candNames(out, outList), ", "))
				}
				reason = model.Redact(reason)
			}
			s.Rejections = append(s.Rejections, Rejection{StepIndex: index, Step: label, Target: candName(in, x), Reason: reason})
		}
		var added []string
		for x, n := range left {
			if n > 0 {
				added = append(added, candName(out, x))
			}
		}
		if len(added) > 0 {
			sort.Strings(added)
			e.note(index, label, svc, "added "+strings.Join(added, ", "))
		}
	}
	if !same {
		for _, svc := range in.Services {
			if e.only != nil && !e.only[svc] {
				continue
			}
			if out.Index(svc) < 0 {
				e.note(index, label, svc, "service dropped from the distribution")
			}
		}
	}
}

// lookupCand parses a rendered candidate name back to a candidate.
func lookupCand(c *Candidates, name string) (Cand, bool) {
	if t, ok := c.Strings.Lookup(name); ok {
		return Cand{Target: t, Container: NoContainer}, true
	}
	if i := strings.Index(name, " (container "); i > 0 && strings.HasSuffix(name, ")") {
		t, ok1 := c.Strings.Lookup(name[:i])
		k, ok2 := c.Strings.Lookup(name[i+len(" (container ") : len(name)-1])
		if ok1 && ok2 {
			return Cand{Target: t, Container: k}, true
		}
	}
	return Cand{}, false
}

func sameServices(a, b *Candidates) bool {
	if len(a.Services) != len(b.Services) {
		return false
	}
	if len(a.Services) == 0 || &a.Services[0] == &b.Services[0] {
		return true
	}
	for i := range a.Services {
		if a.Services[i] != b.Services[i] {
			return false
		}
	}
	return true
}

func sameList(a, b []Cand) bool {
	if len(a) != len(b) {
		return false
	}
	if len(a) == 0 || &a[0] == &b[0] {
		return true
	}
	for i := range a {
		if a[i] != b[i] {
			return false
		}
	}
	return true
}

// WriteText writes the explanation as text, one block per service in
// byte-wise order:
//
//	service s1:
//	  candidates: t1, t2
//	  step 1 mapAttrOnList: removed t2: type "mysql-database" not in supportedTypes ["process"]
//	  chosen: t1
//
// Four or more consecutive removals by one step for the same reason are
// written as one line ("removed 499 targets (t1, t2, ...): reason"). Only
// the services named in only are written when it is not empty.
func (e *Explanation) WriteText(w io.Writer, only ...string) error {
	bw := bufio.NewWriterSize(w, 64<<10)
	if e.Policy != "" {
		fmt.Fprintf(bw, "policy %s", e.Policy)
	} else {
		bw.WriteString("policy")
	}
	if len(e.Steps) == 0 {
		bw.WriteString(": no steps (the initial candidates are the distribution)\n")
	} else {
		bw.WriteString(":")
		for _, s := range e.Steps {
			if s.Label != s.Filter {
				fmt.Fprintf(bw, " %d. %s (%s)", s.Index, s.Label, s.Filter)
			} else {
				fmt.Fprintf(bw, " %d. %s", s.Index, s.Label)
			}
			if s.Index < len(e.Steps) {
				bw.WriteString(",")
			}
		}
		bw.WriteString("\n")
	}
	names := make([]string, 0, len(e.Services))
	if len(only) > 0 {
		for _, n := range only {
			if _, ok := e.Services[n]; ok {
				names = append(names, n)
			} else {
				fmt.Fprintf(bw, "service %s: not in the distribution\n", n)
			}
		}
	} else {
		for n := range e.Services {
			names = append(names, n)
		}
	}
	sort.Strings(names)
	for _, n := range names {
		s := e.Services[n]
		fmt.Fprintf(bw, "service %s:\n", n)
		fmt.Fprintf(bw, "  candidates: %s\n", listOrNone(s.Initial))
		// Rejections and notes are each in step order: merge them.
		r, k := s.Rejections, s.Notes
		for len(r) > 0 || len(k) > 0 {
			if len(r) > 0 && (len(k) == 0 || r[0].StepIndex <= k[0].StepIndex) {
				run := 1
				for run < len(r) && r[run].StepIndex == r[0].StepIndex && r[run].Reason == r[0].Reason {
					run++
				}
				if run >= 4 {
					fmt.Fprintf(bw, "  step %d %s: removed %d targets (", r[0].StepIndex, r[0].Step, run)
					for i := 0; i < run; i++ {
						if i > 0 {
							bw.WriteString(", ")
						}
						bw.WriteString(r[i].Target)
					}
					fmt.Fprintf(bw, "): %s\n", r[0].Reason)
					r = r[run:]
					continue
				}
				fmt.Fprintf(bw, "  step %d %s: removed %s: %s\n", r[0].StepIndex, r[0].Step, r[0].Target, r[0].Reason)
				r = r[1:]
				continue
			}
			fmt.Fprintf(bw, "  step %d %s: %s\n", k[0].StepIndex, k[0].Step, k[0].Text)
			k = k[1:]
		}
		switch {
		case e.FailedStep != "":
			fmt.Fprintf(bw, "  chosen: none (step %s failed; candidates left before it: %s)\n", e.FailedStep, listOrNone(s.Final))
		case len(s.Final) > 0:
			fmt.Fprintf(bw, "  chosen: %s\n", strings.Join(s.Final, ", "))
		case s.EmptiedBy != "":
			fmt.Fprintf(bw, "  chosen: none (step %s removed the last candidate)\n", s.EmptiedBy)
		default:
			bw.WriteString("  chosen: none\n")
		}
	}
	return bw.Flush()
}

func listOrNone(l []string) string {
	if len(l) == 0 {
		return "none"
	}
	return strings.Join(l, ", ")
}
