package main

import (
	"bufio"
	"bytes"
	"crypto/sha256"
	"encoding/binary"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"hash/crc32"
	"io"
	"maps"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"sync"
)

// LogFile is the name of the store's write-ahead log in the state directory.
const LogFile = "kvstore.log"

var castagnoli = crc32.MakeTable(crc32.Castagnoli)

// record is one log entry. Op is "put" or "del"; V is base64 in JSON.
type record struct {
	Op string `json:"op"`
	K  string `json:"k"`
	V  []byte `json:"v,omitempty"`
}

// Store is a key-value map persisted as an append-only log: every write is
// appended as one line "<crc32c hex> <json>\n" and fsynced before it is
// acknowledged. On open the log is replayed; a torn or corrupt tail (a crash
// in the middle of a write) is cut off, and a log with many overwritten
// records is compacted (written to a temporary file, fsynced, renamed).
type Store struct {
	mu   sync.RWMutex
	dir  string
	f    *os.File
	data map[string][]byte
	recs int // records in the log
}

// Open opens (or creates) the store in dir.
func Open(dir string) (*Store, error) {
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return nil, fmt.Errorf("state directory: %w", err)
	}
	path := filepath.Join(dir, LogFile)
	f, err := os.OpenFile(path, os.O_RDWR|os.O_CREATE, 0o600)
	if err != nil {
		return nil, fmt.Errorf("open %s: %w", path, err)
	}
	data, recs, good, err := replay(f)
	if err != nil {
		f.Close()
		return nil, fmt.Errorf("read %s: %w", path, err)
	}
	st, err := f.Stat()
	if err != nil {
		f.Close()
		return nil, err
	}
	if good < st.Size() {
		// Cut a torn tail so new records follow the last complete one.
		if err := f.Truncate(good); err != nil {
			f.Close()
			return nil, fmt.Errorf("truncate torn tail of %s: %w", path, err)
		}
		if err := f.Sync(); err != nil {
			f.Close()
			return nil, err
		}
	}
	if _, err := f.Seek(0, io.SeekEnd); err != nil {
		f.Close()
		return nil, err
	}
	s := &Store{dir: dir, f: f, data: data, recs: recs}
	if recs > 2*len(data)+64 {
		if err := s.compact(); err != nil {
			s.Close()
			return nil, err
		}
	}
	return s, nil
}

// replay reads the log and returns the map, the number of records and the
// offset just after the last good record.
func replay(r io.Reader) (map[string][]byte, int, int64, error) {
	data := map[string][]byte{}
	br := bufio.NewReader(r)
	var off int64
	recs := 0
	for {
		line, err := br.ReadBytes('\n')
		if errors.Is(err, io.EOF) {
			return data, recs, off, nil // a line without '\n' is a torn tail
		}
		if err != nil {
			return nil, 0, 0, err
		}
		rec, ok := decodeRecord(line)
		if !ok {
			return data, recs, off, nil
		}
		apply(data, rec)
		recs++
		off += int64(len(line))
	}
}

func decodeRecord(line []byte) (record, bool) {
	var rec record
	line = bytes.TrimSuffix(line, []byte("\n"))
	sum, body, ok := bytes.Cut(line, []byte(" "))
	if !ok || len(sum) != 8 {
		return rec, false
	}
	want, err := strconv.ParseUint(string(sum), 16, 32)
	if err != nil || crc32.Checksum(body, castagnoli) != uint32(want) {
		return rec, false
	}
	if err := json.Unmarshal(body, &rec); err != nil || (rec.Op != "put" && rec.Op != "del") {
		return rec, false
	}
	return rec, true
}

func encodeRecord(rec record) []byte {
	body, _ := json.Marshal(rec) // record always marshals
	line := make([]byte, 0, len(body)+10)
	line = fmt.Appendf(line, "%08x ", crc32.Checksum(body, castagnoli))
	line = append(line, body...)
	return append(line, '\n')
}

func apply(data map[string][]byte, rec record) {
	if rec.Op == "del" {
		delete(data, rec.K)
		return
	}
	if rec.V == nil {
		rec.V = []byte{}
	}
	data[rec.K] = rec.V
}

// write appends a record durably, then applies it.
func (s *Store) write(rec record) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.f == nil {
		return errors.New("store is closed")
	}
	if _, err := s.f.Write(encodeRecord(rec)); err != nil {
		return fmt.Errorf("append to log: %w", err)
	}
	if err := s.f.Sync(); err != nil {
		return fmt.Errorf("fsync log: %w", err)
	}
	apply(s.data, rec)
	s.recs++
	return nil
}

// Put stores value under key, durably.
func (s *Store) Put(key string, value []byte) error {
	return s.write(record{Op: "put", K: key, V: value})
}

// Delete removes key, durably.
func (s *Store) Delete(key string) error { return s.write(record{Op: "del", K: key}) }

// Get returns the value of key.
func (s *Store) Get(key string) ([]byte, bool) {
	s.mu.RLock()
	defer s.mu.RUnlock()
	v, ok := s.data[key]
	return v, ok
}

// Keys returns every key, sorted.
func (s *Store) Keys() []string {
	s.mu.RLock()
	defer s.mu.RUnlock()
	return slices.Sorted(maps.Keys(s.data))
}

// Checksum returns the hex SHA-256 of the whole store: for every key in
// sorted order, the key's length (uvarint), the key, the value's length
// (uvarint) and the value. Equal contents give equal checksums whatever the
// history of writes.
func (s *Store) Checksum() (string, int) {
	s.mu.RLock()
	defer s.mu.RUnlock()
	keys := slices.Sorted(maps.Keys(s.data))
	h := sha256.New()
	var n [binary.MaxVarintLen64]byte
	for _, k := range keys {
		v := s.data[k]
		h.Write(n[:binary.PutUvarint(n[:], uint64(len(k)))])
		h.Write([]byte(k))
		h.Write(n[:binary.PutUvarint(n[:], uint64(len(v)))])
		h.Write(v)
	}
	return hex.EncodeToString(h.Sum(nil)), len(keys)
}

// compact rewrites the log with one record per live key.
func (s *Store) compact() error {
	s.mu.Lock()
	defer s.mu.Unlock()
	path := filepath.Join(s.dir, LogFile)
	tmp, err := os.CreateTemp(s.dir, "."+LogFile+".compact-*")
	if err != nil {
		return fmt.Errorf("compact: %w", err)
	}
	defer os.Remove(tmp.Name())
	w := bufio.NewWriter(tmp)
	for _, k := range slices.Sorted(maps.Keys(s.data)) {
		w.Write(encodeRecord(record{Op: "put", K: k, V: s.data[k]}))
	}
	if err := w.Flush(); err != nil {
		tmp.Close()
		return fmt.Errorf("compact: %w", err)
	}
	if err := tmp.Sync(); err != nil {
		tmp.Close()
		return fmt.Errorf("compact: fsync: %w", err)
	}
	if err := os.Rename(tmp.Name(), path); err != nil {
		tmp.Close()
		return fmt.Errorf("compact: %w", err)
	}
	if d, err := os.Open(s.dir); err == nil {
		d.Sync()
		d.Close()
	}
	s.f.Close()
	s.f = tmp
	if _, err := tmp.Seek(0, io.SeekEnd); err != nil {
		return err
	}
	s.recs = len(s.data)
	return nil
}

// Close closes the log.
func (s *Store) Close() error {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.f == nil {
		return nil
	}
	err := s.f.Close()
	s.f = nil
	return err
}
