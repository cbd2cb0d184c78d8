package docs

import (
	"fmt"
	"os"
	"path/filepath"
	"regexp"
	"strings"
)

// A doc is a Markdown file, or one section of it, whose command blocks a
// newcomer is told to paste.
type doc struct {
	file    string // relative to the module root
	section string // a "## " heading; "" for the whole file
}

func (d doc) String() string {
	if d.section == "" {
		return d.file
	}
	return d.file + " § " + d.section
}

// docs are the newcomer's path: what TestDocCommands runs, in this order
// (each in a checkout of its own, so the order only matters for time).
var docs = []doc{
	{file: "docs/kubernetes.md", section: "Examples"},
	{file: "examples/kubernetes/README.md"},
	{file: "docs/cluster.md"},
	{file: "README.md"},
}

// block is one fenced block of a doc.
type block struct {
	doc  doc
	line int    // of the opening fence, 1-based
	lang string // the fence's info string (first word)
	// mark is the doc-test comment right before the block, if any.
	mark *mark
	cmds []command
}

// command is one command line of a block (backslash continuations joined).
type command struct {
	line int    // 1-based
	text string // as written, continuations included
	key  string // text without its trailing comment, trimmed: what marks name
	how  directive
}

// directive says how the test treats a command.
type directive struct {
	kind   string // run, not run, covered, until, prints
	reason string // not run
	test   string // covered: the test's name
	pkg    string // covered: ./path of its package
	text   string // until, prints: what the output must contain
}

// mark is a <!-- doc-test ... --> comment.
type mark struct {
	line  int
	block *directive           // <!-- doc-test: DIRECTIVE -->
	cmds  map[string]directive // `COMMAND`: DIRECTIVE, one per line
	used  map[string]bool
}

// Fence languages: commands are run; everything else is not.
var (
	commandLangs = map[string]bool{"sh": true, "bash": true, "shell": true}
	// transcriptLang is for example sessions: `$ command` and its output.
	transcriptLang = "console"
)

var (
	fenceRE     = regexp.MustCompile("^ {0,3}(```+|~~~+)\\s*([^\\s`]*)")
	notRunRE    = regexp.MustCompile(`^not run: (\S.*)$`)
	coveredRE   = regexp.MustCompile(`^covered by (Test\w+) in (\./[\w./-]+)$`)
	untilRE     = regexp.MustCompile(`^until "([^"]+)", then Ctrl-C$`)
	printsRE    = regexp.MustCompile(`^prints "([^"]+)"$`)
	markLineRE  = regexp.MustCompile("^`([^`]+)`: (.+)$")
	markStartRE = regexp.MustCompile(`^\s*<!--\s*doc-test\b`)
)

func parseDirective(s string) (directive, error) {
	s = strings.TrimSpace(s)
	if m := notRunRE.FindStringSubmatch(s); m != nil {
		return directive{kind: "not run", reason: m[1]}, nil
	}
	if m := coveredRE.FindStringSubmatch(s); m != nil {
		return directive{kind: "covered", test: m[1], pkg: m[2]}, nil
	}
	if m := untilRE.FindStringSubmatch(s); m != nil {
		return directive{kind: "until", text: m[1]}, nil
	}
	if m := printsRE.FindStringSubmatch(s); m != nil {
		return directive{kind: "prints", text: m[1]}, nil
	}
	return directive{}, fmt.Errorf(`unknown doc-test directive %q: want "not run: REASON", "covered by TestName in ./pkg", "until \"TEXT\", then Ctrl-C" or "prints \"TEXT\""`, s)
}

// parseMark reads a doc-test comment (its whole text, <!-- to -->).
func parseMark(line int, text string) (*mark, error) {
	body := strings.TrimSpace(text)
	body = strings.TrimPrefix(body, "<!--")
	body = strings.TrimSuffix(body, "-->")
	body = strings.TrimSpace(body)
	body = strings.TrimPrefix(body, "doc-test")
	m := &mark{line: line, cmds: map[string]directive{}, used: map[string]bool{}}
	if rest, ok := strings.CutPrefix(body, ":"); ok {
		d, err := parseDirective(rest)
		if err != nil {
			return nil, err
		}
		if d.kind != "not run" && d.kind != "covered" {
			return nil, fmt.Errorf("a whole block can only be %q or %q, not %q: mark its commands one by one", "not run", "covered", d.kind)
		}
		m.block = &d
		return m, nil
	}
	for _, l := range strings.Split(body, "\n") {
		l = strings.TrimSpace(l)
		if l == "" {
			continue
		}
		lm := markLineRE.FindStringSubmatch(l)
		if lm == nil {
			return nil, fmt.Errorf("doc-test mark line %q: want `COMMAND`: DIRECTIVE", l)
		}
		d, err := parseDirective(lm[2])
		if err != nil {
			return nil, err
		}
		if _, dup := m.cmds[lm[1]]; dup {
			return nil, fmt.Errorf("doc-test mark names `%s` twice", lm[1])
		}
		m.cmds[lm[1]] = d
	}
	if len(m.cmds) == 0 {
		return nil, fmt.Errorf("empty doc-test mark")
	}
	return m, nil
}

// parseDoc returns the fenced blocks of d, with their commands and how
// each is treated. Errors are the doc's: a mark not followed by a block, a
// fence without a language, a mark naming no command of its block.
func parseDoc(root string, d doc) ([]block, error) {
	b, err := os.ReadFile(filepath.Join(root, d.file))
	if err != nil {
		return nil, err
	}
	lines := strings.Split(string(b), "\n")
	var (
		blocks  []block
		errs    []string
		pending *mark
		inScope = d.section == ""
		found   = d.section == ""
	)
	fail := func(line int, format string, args ...any) {
		errs = append(errs, fmt.Sprintf("%s:%d: %s", d.file, line, fmt.Sprintf(format, args...)))
	}
	for i := 0; i < len(lines); i++ {
		l := lines[i]
		if d.section != "" && strings.HasPrefix(l, "## ") {
			inScope = strings.TrimSpace(strings.TrimPrefix(l, "## ")) == d.section
			found = found || inScope
		}
		fm := fenceRE.FindStringSubmatch(l)
		if !inScope {
			if fm != nil { // skip the block: a heading-like line inside it is not a heading
				i = closeFence(lines, i, fm[1])
			}
			continue
		}
		switch {
		case markStartRE.MatchString(l):
			start := i
			text := l
			for !strings.Contains(lines[i], "-->") && i+1 < len(lines) {
				i++
				text += "\n" + lines[i]
			}
			if pending != nil {
				fail(pending.line, "doc-test mark not directly before a fenced block")
			}
			m, err := parseMark(start+1, text)
			if err != nil {
				fail(start+1, "%v", err)
				pending = nil
				continue
			}
			pending = m
		case fm != nil:
			blk := block{doc: d, line: i + 1, lang: fm[2], mark: pending}
			pending = nil
			end := closeFence(lines, i, fm[1])
			body := lines[i+1 : min(end, len(lines))]
			i = end
			if blk.lang == "" {
				fail(blk.line, "fenced block without a language: say what it is (sh, bash or shell for commands to paste, %s for an example session, text for output, or the file's format)", transcriptLang)
				continue
			}
			if commandLangs[blk.lang] {
				blk.cmds = commands(body, blk.line+1)
				for _, c := range blk.cmds {
					if strings.HasPrefix(c.text, "$ ") {
						fail(c.line, "a %s block with a `$ ` prompt: fence an example session as %s, or drop the prompt", blk.lang, transcriptLang)
					}
				}
			}
			if err := blk.apply(); err != nil {
				fail(blk.line, "%v", err)
			}
			blocks = append(blocks, blk)
		case strings.TrimSpace(l) == "":
		default:
			if pending != nil {
				fail(pending.line, "doc-test mark not directly before a fenced block")
				pending = nil
			}
		}
	}
	if pending != nil {
		fail(pending.line, "doc-test mark not directly before a fenced block")
	}
	if !found {
		fail(1, "no section %q", d.section)
	}
	if len(errs) > 0 {
		return blocks, fmt.Errorf("%s", strings.Join(errs, "\n"))
	}
	return blocks, nil
}

// closeFence returns the index of the line closing the fence opened at
// open (len(lines) if none does).
func closeFence(lines []string, open int, fence string) int {
	for j := open + 1; j < len(lines); j++ {
		t := strings.TrimSpace(lines[j])
		if strings.HasPrefix(t, fence[:1]) && strings.Trim(t, fence[:1]) == "" && len(t) >= len(fence) {
			return j
		}
	}
	return len(lines)
}

// apply decides how each command is treated from the block's mark.
func (b *block) apply() error {
	if b.mark != nil && !commandLangs[b.lang] {
		return fmt.Errorf("doc-test mark on a %q block, which is not commands", b.lang)
	}
	if len(b.cmds) == 0 {
		if b.mark != nil {
			return fmt.Errorf("doc-test mark on a block without commands")
		}
		return nil
	}
	var errs []string
	for i := range b.cmds {
		c := &b.cmds[i]
		c.how = directive{kind: "run"}
		if b.mark == nil {
			continue
		}
		if b.mark.block != nil {
			c.how = *b.mark.block
			continue
		}
		if d, ok := b.mark.cmds[c.key]; ok {
			c.how = d
			b.mark.used[c.key] = true
		}
	}
	if b.mark != nil {
		for k := range b.mark.cmds {
			if !b.mark.used[k] {
				errs = append(errs, fmt.Sprintf("doc-test mark at line %d names `%s`, which is no command of the block", b.mark.line, k))
			}
		}
	}
	if len(errs) > 0 {
		return fmt.Errorf("%s", strings.Join(errs, "; "))
	}
	return nil
}

// commands splits a shell block into commands: one per line, a line
// ending in a backslash continued on the next; blank lines and comment
// lines are not commands.
func commands(body []string, first int) []command {
	var cmds []command
	for i := 0; i < len(body); i++ {
		line := first + i
		text := body[i]
		for strings.HasSuffix(text, `\`) && i+1 < len(body) {
			i++
			text += "\n" + body[i]
		}
		t := strings.TrimSpace(text)
		if t == "" || strings.HasPrefix(t, "#") {
			continue
		}
		cmds = append(cmds, command{line: line, text: text, key: stripComment(t)})
	}
	return cmds
}

// stripComment removes a trailing shell comment: a # after whitespace,
// outside quotes.
func stripComment(s string) string {
	var quote rune
	prev := ' '
	for i, r := range s {
		switch {
		case quote != 0:
			if r == quote {
				quote = 0
			}
		case r == '\'' || r == '"':
			quote = r
		case r == '#' && (prev == ' ' || prev == '\t'):
			return strings.TrimSpace(s[:i])
		}
		prev = r
	}
	return strings.TrimSpace(s)
}

// firstWord is the program a command line starts with.
func firstWord(s string) string {
	f := strings.Fields(s)
	if len(f) == 0 {
		return ""
	}
	return f[0]
}
