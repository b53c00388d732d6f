package qos

// Explanation records, per service, which step removed which target and why,
// and remarks made by steps. TODO(qos helper): full implementation, output.
type Explanation struct {
	Services map[string]*ServiceExplanation
}

// ServiceExplanation is what happened to one service's candidates.
type ServiceExplanation struct {
	Rejections []Rejection
	Notes      []Note
}

// Rejection is one removed candidate.
type Rejection struct {
	Step, Target, Reason string
}

// Note is a step's remark about a service.
type Note struct {
	Step, Text string
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

func (e *Explanation) reject(step, service, target, reason string) {
	s := e.svc(service)
	s.Rejections = append(s.Rejections, Rejection{Step: step, Target: target, Reason: reason})
}

func (e *Explanation) note(step, service, text string) {
	s := e.svc(service)
	s.Notes = append(s.Notes, Note{Step: step, Text: text})
}
