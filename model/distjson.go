package model

import (
	"bytes"
)

// encodeDistributionJSON is EncodeJSON of a Distribution, written straight
// from the mappings: the same bytes as the general way (ToValue, then
// writeJSON), without making a map, a list and a boxed string per service
// first. A planner's output is the largest document a command prints
// (5000 services: 10 k allocations and 1.5 MB less).
func encodeDistributionJSON(d Distribution) []byte {
	names := d.Names()
	n := 4
	for _, s := range names {
		n += len(s) + 12
		for _, m := range d[s] {
			n += len(m.Target) + len(m.Container) + 12
			if m.Record {
				n += 60
			}
		}
	}
	var buf bytes.Buffer
	buf.Grow(n) // a guess of the final size: no regrowth for plain names
	if len(names) == 0 {
		buf.WriteString("{}\n")
		return buf.Bytes()
	}
	buf.WriteString("{")
	for i, s := range names {
		if i > 0 {
			buf.WriteByte(',')
		}
		buf.WriteString("\n  ")
		appendPlainJSONString(&buf, s)
		ms := d[s]
		if len(ms) == 0 {
			buf.WriteString(": []")
			continue
		}
		buf.WriteString(": [")
		for j, m := range ms {
			if j > 0 {
				buf.WriteByte(',')
			}
			buf.WriteString("\n    ")
			if !m.Record {
				appendPlainJSONString(&buf, m.Target)
				continue
			}
			// a record: its keys sorted, "container" only when set
			buf.WriteString("{\n")
			if m.Container != "" {
				buf.WriteString(`      "container": `)
				appendPlainJSONString(&buf, m.Container)
				buf.WriteString(",\n")
			}
			buf.WriteString(`      "target": `)
			appendPlainJSONString(&buf, m.Target)
			buf.WriteString("\n    }")
		}
		buf.WriteString("\n  ]")
	}
	buf.WriteString("\n}\n")
	return buf.Bytes()
}

// appendPlainJSONString is appendJSONString, writing a string that needs
// no escape (printable ASCII without quote or backslash, as most names
// are) in one piece.
func appendPlainJSONString(buf *bytes.Buffer, s string) {
	for i := 0; i < len(s); i++ {
		if c := s[i]; c < 0x20 || c >= 0x7f || c == '"' || c == '\\' {
			appendJSONString(buf, s)
			return
		}
	}
	buf.WriteByte('"')
	buf.WriteString(s)
	buf.WriteByte('"')
}
