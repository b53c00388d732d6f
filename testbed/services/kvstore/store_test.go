package main

import (
	"bytes"
	"os"
	"path/filepath"
	"strconv"
	"testing"
)

func TestStoreReopenAndTornTail(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	s, err := Open(dir)
	if err != nil {
		t.Fatal(err)
	}
	for _, kv := range [][2]string{{"a", "1"}, {"b", "two"}, {"a", "3"}, {"c", ""}} {
		if err := s.Put(kv[0], []byte(kv[1])); err != nil {
			t.Fatal(err)
		}
	}
	if err := s.Delete("b"); err != nil {
		t.Fatal(err)
	}
	sum, n := s.Checksum()
	s.Close()

	// A crash in the middle of a write leaves a torn record at the end.
	log := filepath.Join(dir, LogFile)
	f, err := os.OpenFile(log, os.O_APPEND|os.O_WRONLY, 0)
	if err != nil {
		t.Fatal(err)
	}
	f.WriteString(`0badf00d {"op":"put","k":"torn"`)
	f.Close()

	s, err = Open(dir)
	if err != nil {
		t.Fatal(err)
	}
	if got, gn := s.Checksum(); got != sum || gn != n || n != 2 {
		t.Errorf("after reopen: checksum %s/%d keys, want %s/%d (2 keys)", got, gn, sum, n)
	}
	if v, ok := s.Get("a"); !ok || string(v) != "3" {
		t.Errorf("a = %q %v, want 3", v, ok)
	}
	// New writes follow the last good record.
	if err := s.Put("d", []byte("4")); err != nil {
		t.Fatal(err)
	}
	s.Close()
	s, err = Open(dir)
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	if v, ok := s.Get("d"); !ok || string(v) != "4" {
		t.Errorf("d after torn tail = %q %v", v, ok)
	}
	if _, ok := s.Get("torn"); ok {
		t.Error("torn record was applied")
	}
}

func TestStoreCompaction(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	s, err := Open(dir)
	if err != nil {
		t.Fatal(err)
	}
	for i := 0; i < 200; i++ {
		if err := s.Put("k", []byte{byte(i)}); err != nil {
			t.Fatal(err)
		}
	}
	sum, _ := s.Checksum()
	s.Close()
	s, err = Open(dir)
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	if s.recs != 1 {
		t.Errorf("log has %d records after compaction, want 1", s.recs)
	}
	if got, _ := s.Checksum(); got != sum {
		t.Error("compaction changed the contents")
	}
	if err := s.Put("x", []byte("y")); err != nil {
		t.Fatal(err)
	}
}

func TestChecksumDependsOnContentOnly(t *testing.T) {
	t.Parallel()
	a, _ := Open(t.TempDir())
	b, _ := Open(t.TempDir())
	defer a.Close()
	defer b.Close()
	a.Put("x", []byte("1"))
	a.Put("y", []byte("2"))
	b.Put("y", []byte("2"))
	b.Put("x", []byte("0"))
	b.Put("x", []byte("1"))
	sa, _ := a.Checksum()
	sb, _ := b.Checksum()
	if sa != sb {
		t.Error("same contents, different checksums")
	}
	// Length prefixes keep ("ab","c") and ("a","bc") apart.
	c, _ := Open(t.TempDir())
	d, _ := Open(t.TempDir())
	defer c.Close()
	defer d.Close()
	c.Put("ab", []byte("c"))
	d.Put("a", []byte("bc"))
	sc, _ := c.Checksum()
	sd, _ := d.Checksum()
	if sc == sd {
		t.Error("different contents, same checksum")
	}
}

// FuzzReplay checks that no log content makes replay panic and that the
// good prefix it reports re-reads to the same map.
func FuzzReplay(f *testing.F) {
	f.Add(encodeRecord(record{Op: "put", K: "a", V: []byte("1")}))
	f.Add(append(encodeRecord(record{Op: "put", K: "a", V: []byte("1")}), encodeRecord(record{Op: "del", K: "a"})...))
	f.Add([]byte("00000000 {}\n"))
	f.Add([]byte("zzzzzzzz {\"op\":\"put\"}\n"))
	f.Add([]byte{})
	f.Fuzz(func(t *testing.T, data []byte) {
		m, _, good, err := replay(bytes.NewReader(data))
		if err != nil {
			t.Fatal(err)
		}
		if good > int64(len(data)) {
			t.Fatalf("good offset %d beyond %d bytes", good, len(data))
		}
		m2, _, good2, _ := replay(bytes.NewReader(data[:good]))
		if good2 != good || len(m2) != len(m) {
			t.Fatalf("prefix re-read differs: %d/%d keys, offset %d/%d", len(m2), len(m), good2, good)
		}
	})
}

// BenchmarkPut measures a durable write (append + fsync).
func BenchmarkPut(b *testing.B) {
	s, err := Open(b.TempDir())
	if err != nil {
		b.Fatal(err)
	}
	defer s.Close()
	v := bytes.Repeat([]byte("x"), 100)
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		if err := s.Put("key"+string(rune('a'+i%26)), v); err != nil {
			b.Fatal(err)
		}
	}
}

// BenchmarkOpen10k measures replaying a log of 10000 keys at start.
func BenchmarkOpen10k(b *testing.B) {
	dir := b.TempDir()
	var log []byte
	for i := 0; i < 10000; i++ {
		log = append(log, encodeRecord(record{Op: "put", K: "key-" + strconv.Itoa(i), V: bytes.Repeat([]byte("v"), 64)})...)
	}
	if err := os.WriteFile(filepath.Join(dir, LogFile), log, 0o600); err != nil {
		b.Fatal(err)
	}
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		s, err := Open(dir)
		if err != nil {
			b.Fatal(err)
		}
		s.Close()
	}
}
