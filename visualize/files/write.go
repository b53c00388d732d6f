// Package files is the documentation tools' input and output: it reads
// their models (Nix, JSON, YAML or the original's XML), writes the pages
// of package visualize to an output directory and renders diagrams with
// graphviz's dot.
package files

import (
	"bytes"
	"context"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"

	"github.com/dydisnix/dydisnix/model"
	"github.com/dydisnix/dydisnix/visualize"
)

// Dot is the graphviz command that renders diagrams; it must be on PATH
// (or be an absolute path) when an image format is asked for.
var Dot = "dot"

// Write writes each page below dir (creating the directories), every file
// atomically. When imageFormat is not "", each diagram (a page named
// visualize.DiagramFile) is then rendered with `dot -T<imageFormat> -O`,
// which writes diagram.dot.<imageFormat> beside it, as the original does.
func Write(ctx context.Context, dir string, pages []visualize.Page, imageFormat string) error {
	for _, p := range pages {
		file := filepath.Join(dir, filepath.FromSlash(p.Path))
		if err := os.MkdirAll(filepath.Dir(file), 0o755); err != nil {
			return fmt.Errorf("output directory: %w", err)
		}
		if err := model.WriteFileAtomic(file, []byte(p.Content), 0o644); err != nil {
			return err
		}
		if imageFormat != "" && filepath.Base(p.Path) == visualize.DiagramFile {
			if err := Image(ctx, file, imageFormat); err != nil {
				return err
			}
		}
	}
	return nil
}

// Image renders a DOT file with `dot -T<format> -O FILE` into
// FILE.<format>; the error carries dot's own message.
func Image(ctx context.Context, file, format string) error {
	bin, err := exec.LookPath(Dot)
	if err != nil {
		return fmt.Errorf("cannot render %s as %s: graphviz's %s is not on PATH (install graphviz, or leave out -f)", file, format, Dot)
	}
	var stderr bytes.Buffer
	cmd := exec.CommandContext(ctx, bin, "-T"+format, "-O", file)
	cmd.Stderr = &stderr
	if err := cmd.Run(); err != nil {
		msg := strings.TrimSpace(stderr.String())
		if msg == "" {
			msg = err.Error()
		}
		return fmt.Errorf("dot -T%s %s: %s", format, file, msg)
	}
	return nil
}
