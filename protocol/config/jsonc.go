package config

import (
	"bytes"
	"encoding/json"
	"fmt"
	"strconv"
	"strings"
	"unicode/utf8"
)

// syntaxError is a problem found before the document could be read as JSON.
type syntaxError struct {
	offset int
	msg    string
}

// stripJSONC turns JSON with comments and trailing commas into plain JSON of
// exactly the same length: comments and the dropped commas become spaces and
// newlines stay where they were, so every byte offset into the result is
// also an offset into the original and positions need no mapping.
func stripJSONC(src []byte) ([]byte, *syntaxError) {
	out := bytes.Clone(src)
	if bytes.HasPrefix(out, []byte("\xef\xbb\xbf")) {
		copy(out, "   ")
	}
	blank := func(from, to int) {
		for i := from; i < to; i++ {
			if out[i] != '\n' && out[i] != '\r' {
				out[i] = ' '
			}
		}
	}
	inString := false
	for i := 0; i < len(out); {
		c := out[i]
		if c >= utf8.RuneSelf {
			r, size := utf8.DecodeRune(out[i:])
			if r == utf8.RuneError && size == 1 {
				return nil, &syntaxError{i, "the file is not valid UTF-8"}
			}
			i += size
			continue
		}
		if inString {
			switch c {
			case '\\':
				// Skip the escaped character; a multi-byte one is checked
				// by the next iteration, which cannot end the string.
				i++
				if i < len(out) && out[i] < utf8.RuneSelf {
					i++
				}
				continue
			case '"':
				inString = false
			}
			i++
			continue
		}
		switch {
		case c == '"':
			inString = true
		case c == '/' && i+1 < len(out) && out[i+1] == '/':
			end := bytes.IndexByte(out[i:], '\n')
			if end < 0 {
				end = len(out) - i
			}
			blank(i, i+end)
			i += end
			continue
		case c == '/' && i+1 < len(out) && out[i+1] == '*':
			end := bytes.Index(out[i+2:], []byte("*/"))
			if end < 0 {
				return nil, &syntaxError{i, "a /* comment is never closed with */"}
			}
			blank(i, i+2+end+2)
			i += 2 + end + 2
			continue
		case c == ',':
			// A comma is dropped only when a closing bracket follows and a
			// value precedes it, so "[,]" and "[1,,]" stay errors.
			next := skipSpaceAndComments(out, i+1)
			prev := i - 1
			for prev >= 0 && isSpace(out[prev]) {
				prev--
			}
			if next < len(out) && (out[next] == '}' || out[next] == ']') &&
				prev >= 0 && out[prev] != ',' && out[prev] != '[' && out[prev] != '{' && out[prev] != ':' {
				out[i] = ' '
			}
		}
		i++
	}
	return out, nil
}

// skipSpaceAndComments finds the next significant byte after i without
// changing anything, for the look-ahead at a comma.
func skipSpaceAndComments(b []byte, i int) int {
	for {
		i = skipSpace(b, i)
		switch {
		case bytes.HasPrefix(b[i:], []byte("//")):
			end := bytes.IndexByte(b[i:], '\n')
			if end < 0 {
				return len(b)
			}
			i += end
		case bytes.HasPrefix(b[i:], []byte("/*")):
			end := bytes.Index(b[i+2:], []byte("*/"))
			if end < 0 {
				return len(b)
			}
			i += 2 + end + 2
		default:
			return i
		}
	}
}

func isSpace(c byte) bool { return c == ' ' || c == '\t' || c == '\n' || c == '\r' }

func skipSpace(b []byte, i int) int {
	for i < len(b) && isSpace(b[i]) {
		i++
	}
	return i
}

// checkSyntax reports the first JSON syntax error of plain JSON, with the
// offset of the offending byte.
func checkSyntax(data []byte) *syntaxError {
	if skipSpace(data, 0) == len(data) {
		return &syntaxError{0, "the file is empty; expected a JSON object such as {}"}
	}
	var raw json.RawMessage
	err := json.Unmarshal(data, &raw)
	if err == nil {
		return nil
	}
	if se, ok := err.(*json.SyntaxError); ok {
		off := int(se.Offset)
		if off >= len(data) {
			return &syntaxError{len(data), "syntax error: the file ends early; an object, list or string is not closed"}
		}
		if off > 0 {
			off--
		}
		msg := "syntax error: " + se.Error()
		switch {
		case strings.Contains(msg, `'\''`):
			msg += "; JSON strings and keys take double quotes"
		case strings.HasSuffix(msg, "looking for beginning of object key string"):
			msg += "; keys must be strings in double quotes"
		case strings.HasSuffix(msg, "after object key:value pair"), strings.HasSuffix(msg, "after array element"):
			msg += "; is a comma missing before it?"
		}
		return &syntaxError{off, msg}
	}
	return &syntaxError{0, "syntax error: " + err.Error()}
}

// positions records where each value and each object key of a document
// starts, keyed by the JSON path Problem uses.
type positions struct {
	value map[string]int
	key   map[string]int
	dups  []finding
}

// indexPositions walks plain JSON that checkSyntax accepted.
func indexPositions(data []byte) *positions {
	p := &positions{value: map[string]int{}, key: map[string]int{}}
	w := walker{data: data, pos: p}
	w.value("$")
	return p
}

type walker struct {
	data []byte
	i    int
	pos  *positions
}

func (w *walker) skip() { w.i = skipSpace(w.data, w.i) }

func (w *walker) value(path string) {
	w.skip()
	if w.i >= len(w.data) {
		return
	}
	w.pos.value[path] = w.i
	switch w.data[w.i] {
	case '{':
		w.i++
		seen := map[string]bool{}
		for {
			w.skip()
			if w.i >= len(w.data) || w.data[w.i] == '}' {
				w.i++
				return
			}
			if w.data[w.i] == ',' {
				w.i++
				continue
			}
			start := w.i
			key := w.string()
			kp := keyPath(path, key)
			if seen[key] {
				w.pos.dups = append(w.pos.dups, finding{
					Problem: Problem{Path: kp, Message: fmt.Sprintf("key %q appears more than once; give each key once", key)},
					atKey:   true,
					at:      start + 1,
				})
			}
			seen[key] = true
			// A repeated key overwrites the positions of the earlier one,
			// as its value overwrites the earlier value when decoding.
			w.pos.key[kp] = start
			w.skip()
			w.i++ // ':'
			w.value(kp)
		}
	case '[':
		w.i++
		for n := 0; ; {
			w.skip()
			if w.i >= len(w.data) || w.data[w.i] == ']' {
				w.i++
				return
			}
			if w.data[w.i] == ',' {
				w.i++
				continue
			}
			w.value(indexPath(path, n))
			n++
		}
	case '"':
		w.string()
	default:
		for w.i < len(w.data) && !isSpace(w.data[w.i]) && w.data[w.i] != ',' && w.data[w.i] != '}' && w.data[w.i] != ']' {
			w.i++
		}
	}
}

// string consumes a string literal and returns its value.
func (w *walker) string() string {
	start := w.i
	w.i++
	for w.i < len(w.data) && w.data[w.i] != '"' {
		if w.data[w.i] == '\\' {
			w.i++
		}
		w.i++
	}
	w.i++
	var s string
	if w.i <= len(w.data) {
		_ = json.Unmarshal(w.data[start:w.i], &s)
	}
	return s
}

// lineCol converts a byte offset into a 1-based line and a 1-based column
// counted in characters, as editors count them.
func lineCol(src []byte, off int) (line, col int) {
	if off > len(src) {
		off = len(src)
	}
	before := src[:off]
	line = 1 + bytes.Count(before, []byte("\n"))
	lineStart := bytes.LastIndexByte(before, '\n') + 1
	col = 1 + utf8.RuneCount(before[lineStart:])
	if lineStart == 0 && bytes.HasPrefix(src, []byte("\xef\xbb\xbf")) && off >= 3 {
		col-- // the byte order mark is invisible in editors
	}
	return line, col
}

// keyPath and indexPath build the JSON paths of Problem: $.a.b for keys that
// are identifiers, $.a["8080"] for others, $.a[0] for list elements.
func keyPath(parent, key string) string {
	if isIdent(key) {
		return parent + "." + key
	}
	return parent + "[" + strconv.Quote(key) + "]"
}

func indexPath(parent string, i int) string {
	return parent + "[" + strconv.Itoa(i) + "]"
}

func isIdent(s string) bool {
	if s == "" {
		return false
	}
	for i := 0; i < len(s); i++ {
		c := s[i]
		if c == '_' || c == '$' || c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || i > 0 && c >= '0' && c <= '9' {
			continue
		}
		return false
	}
	return true
}
