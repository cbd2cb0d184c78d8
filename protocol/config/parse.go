package config

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"syscall"
)

// Dir and File name the configuration file relative to a project
// directory: .remocal/config.json.
const (
	Dir  = ".remocal"
	File = "config.json"
)

// ErrNotFound is returned (wrapped) by Find when no directory from the
// starting one up to the root holds a configuration file.
var ErrNotFound = errors.New("no " + Dir + "/" + File + " found")

// Problem is one thing wrong with a configuration file.
type Problem struct {
	// Path is the JSON path of the offending value or key, such as
	// $.network.incoming.mode; "" for syntax errors.
	Path string
	// Line and Column locate the problem in the original file, 1-based,
	// the column counted in characters; 0 when unknown.
	Line, Column int
	// Message says what is wrong and what is expected.
	Message string
}

// String renders the problem as "LINE:COL: PATH: MESSAGE", leaving out the
// parts that are unknown.
func (p Problem) String() string {
	var b strings.Builder
	if p.Line > 0 {
		fmt.Fprintf(&b, "%d:%d: ", p.Line, p.Column)
	}
	if p.Path != "" {
		b.WriteString(p.Path + ": ")
	}
	b.WriteString(p.Message)
	return b.String()
}

// Error lists every problem found in one configuration file, so a user can
// fix them all in one pass instead of one per run.
type Error struct {
	// Source names the file, as given to Parse or Load.
	Source   string
	Problems []Problem
}

// Error renders one line per problem, "SOURCE:LINE:COL: PATH: MESSAGE", the
// form compilers use so editors and terminals can jump to the spot.
func (e *Error) Error() string {
	lines := make([]string, len(e.Problems))
	for i, p := range e.Problems {
		switch {
		case e.Source != "" && p.Line > 0:
			lines[i] = e.Source + ":" + p.String()
		case e.Source != "":
			lines[i] = e.Source + ": " + p.String()
		default:
			lines[i] = p.String()
		}
	}
	return strings.Join(lines, "\n")
}

// Find returns the path of the nearest configuration file: dir's
// .remocal/config.json, else its parent's, and so on up to the root. Like
// git looking for .git, this lets every command work from any subdirectory
// of a project.
func Find(dir string) (string, error) {
	abs, err := filepath.Abs(dir)
	if err != nil {
		return "", err
	}
	for d := abs; ; {
		p := filepath.Join(d, Dir, File)
		st, err := os.Stat(p)
		switch {
		case err == nil && st.Mode().IsRegular():
			return p, nil
		case err == nil:
			return "", fmt.Errorf("%s is not a regular file", p)
		case !errors.Is(err, fs.ErrNotExist) && !errors.Is(err, syscall.ENOTDIR):
			return "", err
		}
		parent := filepath.Dir(d)
		if parent == d {
			return "", fmt.Errorf("%w in %s or any directory above it", ErrNotFound, abs)
		}
		d = parent
	}
}

// Load reads and parses the file at path; problems are reported with path
// as their source.
func Load(path string) (*Config, error) {
	data, err := os.ReadFile(path)
	if err != nil {
		return nil, err
	}
	return Parse(data, path)
}

// Parse reads a configuration file's contents. source names the file in
// problem reports. The error, when the contents are not a valid
// configuration, is an *Error listing every problem found.
//
// Steps: comments and trailing commas are blanked out (keeping every byte
// offset), the JSON syntax is checked, the document is validated against
// the schema, values the schema rejected are removed, the rest is decoded
// strictly into a Config, and Config's own checks run. Removing rejected
// values first lets the later steps report further problems without
// repeating the schema's.
func Parse(data []byte, source string) (*Config, error) {
	e := &Error{Source: source}
	plain, serr := stripJSONC(data)
	if serr == nil {
		serr = checkSyntax(plain)
	}
	if serr != nil {
		line, col := lineCol(data, serr.offset)
		e.Problems = []Problem{{Line: line, Column: col, Message: serr.msg}}
		return nil, e
	}
	pos := indexPositions(plain)
	var doc any
	dec := json.NewDecoder(bytes.NewReader(plain))
	dec.UseNumber()
	if err := dec.Decode(&doc); err != nil {
		// checkSyntax accepted the document, so this cannot happen.
		e.Problems = []Problem{{Message: "syntax error: " + err.Error()}}
		return nil, e
	}

	found := slices.Clone(pos.dups)
	schemaFound, err := validateSchema(doc)
	if err != nil {
		return nil, err
	}
	found = append(found, schemaFound...)
	bad := map[string]bool{}
	for _, f := range schemaFound {
		bad[f.Path] = true
	}

	var c *Config
	if root, ok := doc.(map[string]any); ok {
		// validateSchema removed what it rejected from doc.
		pruned, err := json.Marshal(root)
		if err != nil {
			return nil, err
		}
		c = new(Config)
		d := json.NewDecoder(bytes.NewReader(pruned))
		d.DisallowUnknownFields()
		if err := d.Decode(c); err != nil {
			p := decodeProblem(err)
			found = append(found, finding{Problem: p})
			bad[p.Path] = true
		}
		for _, p := range c.problems(true) {
			if !underAny(p.Path, bad) {
				found = append(found, finding{Problem: p})
			}
		}
	}
	if len(found) == 0 {
		return c, nil
	}
	e.Problems = locate(found, data, pos)
	return nil, e
}

// finding is a Problem before it is located in the file.
type finding struct {
	Problem
	// atKey points the problem at the key rather than its value: the key
	// itself is wrong (unknown, repeated, malformed).
	atKey bool
	// at is 1 + the byte offset when known up front (a repeated key, whose
	// path maps to its first occurrence); 0 otherwise.
	at int
}

// underAny reports whether path is one of bad or lies beneath one.
func underAny(path string, bad map[string]bool) bool {
	for b := range bad {
		if path == b || strings.HasPrefix(path, b+".") || strings.HasPrefix(path, b+"[") {
			return true
		}
	}
	return false
}

// decodeProblem explains a decoding failure after schema validation
// passed: a number the schema calls an integer but written with a fraction
// or exponent ("8080.0", "1e3") is the expected one.
func decodeProblem(err error) Problem {
	var te *json.UnmarshalTypeError
	if errors.As(err, &te) {
		path := "$"
		if te.Field != "" {
			for _, f := range strings.Split(te.Field, ".") {
				path = keyPath(path, f)
			}
		}
		if te.Value == "number" || strings.HasPrefix(te.Value, "number ") {
			return Problem{Path: path, Message: fmt.Sprintf("got %s, expected a whole number written without a fraction or exponent", strings.TrimPrefix(te.Value, "number "))}
		}
		return Problem{Path: path, Message: fmt.Sprintf("got %s, expected %s", te.Value, te.Type)}
	}
	return Problem{Path: "$", Message: err.Error()}
}

// locate fills in line and column from the recorded positions and sorts
// the problems by their place in the file.
func locate(found []finding, src []byte, pos *positions) []Problem {
	ps := make([]Problem, len(found))
	for i, f := range found {
		off, ok := pos.value[f.Path]
		if koff, kok := pos.key[f.Path]; kok && (f.atKey || !ok) {
			off, ok = koff, true
		}
		if f.at > 0 {
			off, ok = f.at-1, true
		}
		if ok {
			f.Line, f.Column = lineCol(src, off)
		}
		ps[i] = f.Problem
	}
	sortProblems(ps)
	return slices.Compact(ps)
}

// sortProblems orders problems as they appear in the file, those without a
// position last, by path.
func sortProblems(ps []Problem) {
	slices.SortStableFunc(ps, func(a, b Problem) int {
		switch {
		case (a.Line > 0) != (b.Line > 0):
			if a.Line > 0 {
				return -1
			}
			return 1
		case a.Line != b.Line:
			return a.Line - b.Line
		case a.Column != b.Column:
			return a.Column - b.Column
		}
		return strings.Compare(a.Path, b.Path)
	})
}
