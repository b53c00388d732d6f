// Package services holds the testbed's example services (kvstore, webfront,
// peer, chord: one small stdlib-only program each, in the sub-directories;
// webapp, the web system's application and portal on MariaDB), the example
// system's models (system/: services.json and services.nix, qos.yaml,
// qos-stateful.yaml, idresources.json/.nix) and the web system's database
// components (websystem/), embedded.
//
// Build compiles the programs; WriteSystem writes the models with every pkg
// pointing at the directory the programs were built into.
package services

import (
	"bytes"
	"context"
	"embed"
	"encoding/json"
	"fmt"
	"io/fs"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"strings"

	"github.com/dydisnix/dydisnix/model"
)

// System holds the example system's model files under "system/".
//
//go:embed system/*
var System embed.FS

// WebSystem holds the web system's database components under
// "websystem/": websystem/<db>/mysql-databases/<db>.sql.
//
//go:embed websystem
var WebSystem embed.FS

// WebSystemDatabases are the web system's databases, each a component
// directory of WebSystem.
var WebSystemDatabases = []string{"usersdb", "cmsdb", "homeworkdb"}

// Programs are the example service programs, by binary name.
var Programs = []string{"kvstore", "webfront", "peer", "chord", "webapp"}

// ImportPath is the Go import path of the example programs' parent.
const ImportPath = "github.com/dydisnix/dydisnix/testbed/services"

// SourceDir returns the directory of this package's source (the programs
// are built from there), or "" when the source is not on this machine.
func SourceDir() string {
	_, file, _, ok := runtime.Caller(0)
	if !ok {
		return ""
	}
	dir := filepath.Dir(file)
	if _, err := os.Stat(filepath.Join(dir, "kvstore", "main.go")); err != nil {
		return ""
	}
	return dir
}

// Build compiles every example program into dir (binaries named as in
// Programs) with the go command found on PATH. It needs the module source.
func Build(ctx context.Context, dir string) error {
	src := SourceDir()
	if src == "" {
		return fmt.Errorf("build example services: source of %s not found", ImportPath)
	}
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return fmt.Errorf("build example services: %w", err)
	}
	abs, err := filepath.Abs(dir)
	if err != nil {
		return err
	}
	args := []string{"build", "-o", abs + string(filepath.Separator)}
	for _, p := range Programs {
		args = append(args, "./"+p)
	}
	cmd := exec.CommandContext(ctx, "go", args...)
	cmd.Dir = src
	var stderr bytes.Buffer
	cmd.Stderr = &stderr
	if err := cmd.Run(); err != nil {
		return fmt.Errorf("go build example services: %v\n%s", err, stderr.String())
	}
	return nil
}

// WriteSystem writes the example system's model files into dir, with every
// service's pkg set to binDir/<program> (absolute): services.json,
// services.nix, qos.yaml, qos-stateful.yaml, idresources.json and
// idresources.nix. The files are written atomically.
func WriteSystem(dir, binDir string) error {
	bin, err := filepath.Abs(binDir)
	if err != nil {
		return err
	}
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return fmt.Errorf("write example system: %w", err)
	}
	entries, err := fs.ReadDir(System, "system")
	if err != nil {
		return err
	}
	for _, e := range entries {
		data, err := System.ReadFile("system/" + e.Name())
		if err != nil {
			return err
		}
		switch e.Name() {
		case "services.json":
			if data, err = rebaseJSON(data, bin); err != nil {
				return err
			}
		case "services.nix":
			nixBin, err := model.NixString(bin + "/")
			if err != nil {
				return fmt.Errorf("services.nix: %w", err)
			}
			// A path literal ../../../bin/x becomes the string "<bin>/x".
			text := string(data)
			for _, p := range Programs {
				text = strings.ReplaceAll(text, "../../../bin/examples/"+p+";", strings.TrimSuffix(nixBin, `"`)+p+`";`)
			}
			data = []byte(text)
		}
		if err := model.WriteFileAtomic(filepath.Join(dir, e.Name()), data, 0o644); err != nil {
			return err
		}
	}
	return nil
}

// WriteWebSystemComponents writes the web system's database components
// into dir: dir/<db>/mysql-databases/<db>.sql for every one of
// WebSystemDatabases, the component directories its mysql-database
// services' pkg name (the module names the database after the directory).
func WriteWebSystemComponents(dir string) error {
	for _, db := range WebSystemDatabases {
		rel := filepath.Join(db, "mysql-databases", db+".sql")
		data, err := WebSystem.ReadFile("websystem/" + filepath.ToSlash(rel))
		if err != nil {
			return fmt.Errorf("web system component %s: %w", db, err)
		}
		if err := os.MkdirAll(filepath.Join(dir, db, "mysql-databases"), 0o755); err != nil {
			return fmt.Errorf("web system component %s: %w", db, err)
		}
		if err := model.WriteFileAtomic(filepath.Join(dir, rel), data, 0o644); err != nil {
			return err
		}
	}
	return nil
}

func rebaseJSON(data []byte, bin string) ([]byte, error) {
	var svcs map[string]map[string]any
	dec := json.NewDecoder(bytes.NewReader(data))
	dec.UseNumber()
	if err := dec.Decode(&svcs); err != nil {
		return nil, fmt.Errorf("services.json: %w", err)
	}
	for _, s := range svcs {
		if p, ok := s["pkg"].(string); ok {
			s["pkg"] = filepath.Join(bin, filepath.Base(p))
		}
	}
	out, err := json.MarshalIndent(svcs, "", "  ")
	if err != nil {
		return nil, err
	}
	return append(out, '\n'), nil
}
